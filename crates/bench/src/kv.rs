//! The unary KV workloads: put, range, txn-put. `--clients` tasks share
//! `--conns` connections (client i uses connection i mod conns) and take
//! request numbers from one counter until `--total` are issued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::request_op::Request;
use rustcd_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use crate::conn::{channels, with_timeout, Global};
use crate::progress::Progress;
use crate::report::{Recorder, Stats};

/// splitmix64: plenty for picking keys and filling values.
pub struct Rng(u64);

impl Rng {
    pub fn new(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// etcd's benchmark key: Go's `binary.PutVarint(k, n)` into a zeroed
/// `size`-byte buffer (truncated if it does not fit).
pub fn varint_key(size: usize, n: u64) -> Vec<u8> {
    let mut k = vec![0u8; size];
    let x = n as i64;
    let mut ux = ((x << 1) ^ (x >> 63)) as u64;
    let mut i = 0;
    while i < size {
        if ux < 0x80 {
            k[i] = ux as u8;
            break;
        }
        k[i] = (ux as u8) | 0x80;
        ux >>= 7;
        i += 1;
    }
    k
}

pub enum Work {
    Put {
        key_size: usize,
        val: Vec<u8>,
        key_space: u64,
        sequential: bool,
    },
    Range {
        key: Vec<u8>,
        end: Vec<u8>,
        serializable: bool,
    },
    TxnPut {
        key_size: usize,
        val: Vec<u8>,
        ops: u64,
        key_space: u64,
    },
}

/// Spaces request starts `1/rate` apart (a token bucket of burst 1).
struct Limiter {
    start: Instant,
    interval: f64,
    slot: AtomicU64,
}

impl Limiter {
    async fn wait(&self) {
        let s = self.slot.fetch_add(1, Ordering::Relaxed);
        let at = self.start + Duration::from_secs_f64(s as f64 * self.interval);
        tokio::time::sleep_until(at.into()).await;
    }
}

pub async fn run(
    g: &Global,
    label: &str,
    total: u64,
    rate: u64,
    work: Work,
) -> Result<Stats, String> {
    let chans = channels(g).await?;
    let work = Arc::new(work);
    let next = Arc::new(AtomicU64::new(0));
    let limiter = (rate > 0).then(|| {
        Arc::new(Limiter {
            start: Instant::now(),
            interval: 1.0 / rate as f64,
            slot: AtomicU64::new(0),
        })
    });
    let progress = Progress::start(label, total, g.progress);
    let start = Instant::now();
    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let stop_at = g.max_duration.map(|d| start + d);
    let log_requests = g.latency_log.is_some();
    let mut tasks = Vec::with_capacity(g.clients);
    for i in 0..g.clients {
        let kv = KvClient::new(chans[i % chans.len()].clone());
        let (work, next, limiter, done) = (
            work.clone(),
            next.clone(),
            limiter.clone(),
            progress.done.clone(),
        );
        let rt = g.request_timeout;
        tasks.push(tokio::spawn(async move {
            let limits = Limits {
                total,
                stop_at,
                limiter: limiter.as_deref(),
                rt,
                base: start,
                log_requests,
            };
            client_loop(i as u64, kv, &work, &next, limits, &done).await
        }));
    }
    let mut rec = Recorder::default();
    let mut log = Vec::new();
    for t in tasks {
        let (r, l) = t.await.map_err(|e| format!("client task failed: {e}"))?;
        rec.merge(r);
        log.extend(l.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    progress.finish().await;
    if let Some(path) = &g.latency_log {
        write_log(path, start_unix, log)?;
    }
    Ok(Stats::new(elapsed, rec))
}

struct Limits<'a> {
    total: u64,
    stop_at: Option<Instant>,
    limiter: Option<&'a Limiter>,
    rt: Option<Duration>,
    /// Start of the run: request start times in the latency log are
    /// offsets from it.
    base: Instant,
    log_requests: bool,
}

/// One request in the `--latency-log` file.
struct LogEntry {
    start: Duration,
    latency: Duration,
    ok: bool,
}

/// Writes `--latency-log`: a header line, then one line per request sorted
/// by start: `start_unix_secs latency_secs ok` (ok is 1 or 0; a failed
/// request's latency is the time until it failed).
fn write_log(path: &str, base_unix: f64, mut entries: Vec<LogEntry>) -> Result<(), String> {
    use std::io::Write;
    entries.sort_by_key(|e| e.start);
    let f = std::fs::File::create(path).map_err(|e| format!("--latency-log {path}: {e}"))?;
    let mut w = std::io::BufWriter::new(f);
    let mut out = || -> std::io::Result<()> {
        writeln!(w, "# start_unix_secs latency_secs ok")?;
        for e in &entries {
            writeln!(
                w,
                "{:.6} {:.6} {}",
                base_unix + e.start.as_secs_f64(),
                e.latency.as_secs_f64(),
                u8::from(e.ok)
            )?;
        }
        w.flush()
    };
    out().map_err(|e| format!("--latency-log {path}: {e}"))
}

async fn client_loop(
    id: u64,
    mut kv: KvClient<Channel>,
    work: &Work,
    next: &AtomicU64,
    limits: Limits<'_>,
    done: &AtomicU64,
) -> (Recorder, Option<Vec<LogEntry>>) {
    let Limits {
        total,
        stop_at,
        limiter,
        rt,
        base,
        log_requests,
    } = limits;
    let mut rng = Rng::new(id + 1);
    let mut rec = Recorder::default();
    let mut log = log_requests.then(Vec::new);
    loop {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            break;
        }
        if let Some(l) = limiter {
            l.wait().await;
        }
        let (st, result) = match work {
            Work::Put {
                key_size,
                val,
                key_space,
                sequential,
            } => {
                let k = if *sequential {
                    n % key_space
                } else {
                    rng.below(*key_space)
                };
                let req = PutRequest {
                    key: varint_key(*key_size, k),
                    value: val.clone(),
                    ..Default::default()
                };
                let st = Instant::now();
                (
                    st,
                    with_timeout(rt, kv.put(req)).await.map(|_| st.elapsed()),
                )
            }
            Work::Range {
                key,
                end,
                serializable,
            } => {
                let req = RangeRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    serializable: *serializable,
                    ..Default::default()
                };
                let st = Instant::now();
                (
                    st,
                    with_timeout(rt, kv.range(req)).await.map(|_| st.elapsed()),
                )
            }
            Work::TxnPut {
                key_size,
                val,
                ops,
                key_space,
            } => {
                let success = (0..*ops)
                    .map(|j| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: varint_key(*key_size, (n * ops + j) % key_space),
                            value: val.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let req = TxnRequest {
                    compare: vec![],
                    success,
                    failure: vec![],
                };
                let st = Instant::now();
                (
                    st,
                    with_timeout(rt, kv.txn(req)).await.map(|_| st.elapsed()),
                )
            }
        };
        if let Some(log) = log.as_mut() {
            let lat = match &result {
                Ok(d) => *d,
                Err(_) => st.elapsed(),
            };
            log.push(LogEntry {
                start: st.saturating_duration_since(base),
                latency: lat,
                ok: result.is_ok(),
            });
        }
        match result {
            Ok(d) => rec.ok(d),
            Err(e) => rec.err(e),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    (rec, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_varint_keys() {
        // Go: binary.PutVarint(k, 0) -> [0], 1 -> [2], 64 -> [0x80, 0x01].
        assert_eq!(varint_key(8, 0), vec![0; 8]);
        assert_eq!(varint_key(8, 1), vec![2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(varint_key(4, 64), vec![0x80, 0x01, 0, 0]);
        assert_eq!(varint_key(1, 64), vec![0x80]);
        let keys: std::collections::HashSet<_> = (0..100_000).map(|i| varint_key(8, i)).collect();
        assert_eq!(keys.len(), 100_000);
    }

    #[test]
    fn rng_spreads() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[r.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(r.bytes(13).len(), 13);
    }
}
