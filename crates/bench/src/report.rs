//! Latency statistics and their text / JSON rendering, following etcd's
//! `pkg/report`: Summary, response time histogram, latency distribution,
//! error distribution.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What one client task collected: successful latencies (seconds) and
/// failures by error text.
#[derive(Default)]
pub struct Recorder {
    pub lats: Vec<f64>,
    pub errors: HashMap<String, u64>,
}

impl Recorder {
    pub fn ok(&mut self, d: Duration) {
        self.lats.push(d.as_secs_f64());
    }

    pub fn err(&mut self, e: String) {
        *self.errors.entry(e).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.lats.extend(other.lats);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
    }
}

pub const PCTLS: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

pub struct Stats {
    /// Wall time of the whole run.
    pub total: f64,
    pub slowest: f64,
    pub fastest: f64,
    pub average: f64,
    pub stddev: f64,
    /// Successful requests per second of wall time.
    pub rps: f64,
    /// Sorted successful latencies.
    pub lats: Vec<f64>,
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    pub fn new(total: Duration, rec: Recorder) -> Stats {
        let mut lats = rec.lats;
        let total = total.as_secs_f64();
        let n = lats.len() as f64;
        let average = if lats.is_empty() {
            0.0
        } else {
            lats.iter().sum::<f64>() / n
        };
        let stddev = if lats.is_empty() {
            0.0
        } else {
            (lats
                .iter()
                .map(|l| (l - average) * (l - average))
                .sum::<f64>()
                / n)
                .sqrt()
        };
        lats.sort_by(|a, b| a.total_cmp(b));
        Stats {
            total,
            slowest: lats.last().copied().unwrap_or(0.0),
            fastest: lats.first().copied().unwrap_or(0.0),
            average,
            stddev,
            rps: if total > 0.0 { n / total } else { 0.0 },
            lats,
            errors: rec.errors.into_iter().collect(),
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// etcd's percentile rule: the first sample at or above the rank.
    pub fn percentiles(&self) -> [f64; 8] {
        let mut data = [0.0; 8];
        let n = self.lats.len();
        let mut j = 0;
        for i in 0..n {
            if j >= PCTLS.len() {
                break;
            }
            let current = i as f64 * 100.0 / n as f64;
            while j < PCTLS.len() && current >= PCTLS[j] {
                data[j] = self.lats[i];
                j += 1;
            }
        }
        data
    }

    pub fn text(&self, precise: bool) -> String {
        let f = |x: f64| {
            if precise {
                format!("{x}")
            } else {
                format!("{x:.4}")
            }
        };
        let mut s = String::new();
        if !self.lats.is_empty() {
            s += "\nSummary:\n";
            s += &format!("  Total:\t{} secs.\n", f(self.total));
            s += &format!("  Slowest:\t{} secs.\n", f(self.slowest));
            s += &format!("  Fastest:\t{} secs.\n", f(self.fastest));
            s += &format!("  Average:\t{} secs.\n", f(self.average));
            s += &format!("  Stddev:\t{} secs.\n", f(self.stddev));
            s += &format!("  Requests/sec:\t{}\n", f(self.rps));
            s += &self.histogram(&f);
            s += "\nLatency distribution:\n";
            for (p, v) in PCTLS.iter().zip(self.percentiles()) {
                if v > 0.0 {
                    s += &format!("  {p}% in {} secs.\n", f(v));
                }
            }
        }
        if !self.errors.is_empty() {
            s += "\nError distribution:\n";
            for (e, n) in &self.errors {
                s += &format!("  [{n}]\t{e}\n");
            }
        }
        s
    }

    fn histogram(&self, f: &dyn Fn(f64) -> String) -> String {
        const BC: usize = 10;
        let mut buckets = [0f64; BC + 1];
        let mut counts = [0usize; BC + 1];
        let bs = (self.slowest - self.fastest) / BC as f64;
        for (i, b) in buckets.iter_mut().enumerate().take(BC) {
            *b = self.fastest + bs * i as f64;
        }
        buckets[BC] = self.slowest;
        let mut bi = 0;
        let mut max = 0;
        let mut i = 0;
        while i < self.lats.len() {
            if self.lats[i] <= buckets[bi] {
                i += 1;
                counts[bi] += 1;
                max = max.max(counts[bi]);
            } else if bi < BC {
                bi += 1;
            } else {
                break;
            }
        }
        let mut s = String::from("\nResponse time histogram:\n");
        for i in 0..=BC {
            let bar = (counts[i] * 40).checked_div(max).unwrap_or(0);
            s += &format!(
                "  {} [{}]\t|{}\n",
                f(buckets[i]),
                counts[i],
                "∎".repeat(bar)
            );
        }
        s
    }

    /// Flat JSON fields, each name prefixed with `prefix`.
    pub fn json_fields(&self, prefix: &str, out: &mut Vec<(String, Json)>) {
        let mut put = |k: &str, v: Json| out.push((format!("{prefix}{k}"), v));
        put("requests", Json::Int(self.lats.len() as u64));
        put("errors", Json::Int(self.error_count()));
        put("total_secs", Json::Num(self.total));
        put("slowest_secs", Json::Num(self.slowest));
        put("fastest_secs", Json::Num(self.fastest));
        put("average_secs", Json::Num(self.average));
        put("stddev_secs", Json::Num(self.stddev));
        put("requests_per_sec", Json::Num(self.rps));
        for (p, v) in PCTLS.iter().zip(self.percentiles()) {
            put(
                &format!("p{}_secs", p.to_string().replace('.', "_")),
                Json::Num(v),
            );
        }
        let kinds: Vec<String> = self
            .errors
            .iter()
            .map(|(e, n)| format!("[{n}] {e}"))
            .collect();
        put("error_kinds", Json::Str(kinds.join("; ")));
    }
}

pub enum Json {
    Num(f64),
    Int(u64),
    Str(String),
    Bool(bool),
}

/// Renders one flat JSON object.
pub fn json_object(fields: &[(String, Json)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s += &json_string(k);
        s.push(':');
        match v {
            Json::Num(x) if x.is_finite() => s += &format!("{x}"),
            Json::Num(_) => s += "null",
            Json::Int(x) => s += &x.to_string(),
            Json::Str(x) => s += &json_string(x),
            Json::Bool(x) => s += if *x { "true" } else { "false" },
        }
    }
    s.push('}');
    s
}

pub fn json_string(x: &str) -> String {
    let mut s = String::with_capacity(x.len() + 2);
    s.push('"');
    for c in x.chars() {
        match c {
            '"' => s += "\\\"",
            '\\' => s += "\\\\",
            '\n' => s += "\\n",
            '\r' => s += "\\r",
            '\t' => s += "\\t",
            c if (c as u32) < 0x20 => s += &format!("\\u{:04x}", c as u32),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_percentiles() {
        let mut r = Recorder::default();
        for i in 1..=1000 {
            r.ok(Duration::from_millis(i));
        }
        r.err("boom".into());
        r.err("boom".into());
        let s = Stats::new(Duration::from_secs(2), r);
        assert_eq!(s.error_count(), 2);
        assert!((s.rps - 500.0).abs() < 1e-9);
        assert!((s.fastest - 0.001).abs() < 1e-12);
        assert!((s.slowest - 1.0).abs() < 1e-12);
        let p = s.percentiles();
        assert!((p[2] - 0.501).abs() < 1e-9, "{p:?}");
        assert!((p[7] - 0.9995).abs() < 0.002, "{p:?}");
        let t = s.text(false);
        assert!(t.contains("Requests/sec:\t500.0000"), "{t}");
        assert!(t.contains("[2]\tboom"), "{t}");
        assert!(t.contains("99.9% in"), "{t}");
    }

    #[test]
    fn json_is_flat_and_escaped() {
        let mut f = vec![("command".to_string(), Json::Str("a\"b\n".into()))];
        f.push(("x".into(), Json::Num(f64::NAN)));
        f.push(("ok".into(), Json::Bool(true)));
        assert_eq!(
            json_object(&f),
            r#"{"command":"a\"b\n","x":null,"ok":true}"#
        );
        let s = Stats::new(Duration::from_secs(1), Recorder::default());
        let mut v = Vec::new();
        s.json_fields("", &mut v);
        let j = json_object(&v);
        assert!(j.contains("\"p99_9_secs\":0"), "{j}");
    }
}
