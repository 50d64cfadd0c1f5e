//! Disk latency histograms under etcd's metric names, for the server's `/metrics`.
//!
//! Hand-written rather than the prometheus crate: the server renders its few metrics as
//! text itself, and two fixed histograms need only atomic counters. Process-wide, as etcd's
//! (one member per process).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// etcd's buckets for disk latencies (`prometheus.ExponentialBuckets(0.001, 2, 14)`): 1 ms
/// to 8.192 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// A Prometheus histogram of durations in seconds.
pub struct DurationHistogram {
    name: &'static str,
    help: &'static str,
    /// Observations per bucket (not cumulative); the last one is `+Inf` only.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    const fn new(name: &'static str, help: &'static str) -> DurationHistogram {
        DurationHistogram {
            name,
            help,
            counts: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", self.help);
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// WAL `fdatasync` calls (with the write before them, as etcd measures its WAL sync).
pub static WAL_FSYNC: DurationHistogram = DurationHistogram::new(
    "etcd_disk_wal_fsync_duration_seconds",
    "The latency distributions of fsync called by WAL.",
);

/// Commits of the store (redb write transactions; one per apply batch).
pub static BACKEND_COMMIT: DurationHistogram = DurationHistogram::new(
    "etcd_disk_backend_commit_duration_seconds",
    "The latency distributions of commit called by backend.",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_inf() {
        let h = DurationHistogram::new("h", "help");
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("# TYPE h histogram\n"));
        assert!(out.contains("h_bucket{le=\"0.001\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"0.002\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"0.004\"} 2\n"));
        assert!(out.contains("h_bucket{le=\"8.192\"} 2\n"));
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("h_sum 20.0035\n"));
        assert!(out.contains("h_count 3\n"));
    }
}
