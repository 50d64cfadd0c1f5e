//! `election`: failover time. Finds the leader with Maintenance.Status,
//! SIGKILLs its process, and starts a put through the surviving members
//! every `--interval` until one succeeds. The result is the time from the
//! kill to the first successful put's response.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::PutRequest;

use crate::conn::{dial, find_leader, status_text, Global};

pub struct ElectionOpts {
    pub pids: Vec<u32>,
    pub interval: Duration,
    pub attempt_timeout: Duration,
    pub timeout: Duration,
}

pub struct ElectionResult {
    pub killed_index: usize,
    pub killed_endpoint: String,
    pub killed_pid: u32,
    pub elapsed: Duration,
    pub via_endpoint: String,
    pub attempts: u64,
    pub failures: BTreeMap<String, u64>,
}

pub async fn run(g: &Global, o: ElectionOpts) -> Result<ElectionResult, String> {
    if o.pids.len() != g.endpoints.len() {
        return Err(format!(
            "--pids has {} entries but --endpoints has {}; give one pid per endpoint, in order",
            o.pids.len(),
            g.endpoints.len()
        ));
    }
    let (idx, url) = find_leader(g).await?;
    let idx = idx.ok_or_else(|| format!("the leader ({url}) is not one of --endpoints"))?;
    let pid = o.pids[idx];
    let mut survivors = Vec::new();
    for (i, ep) in g.endpoints.iter().enumerate() {
        if i != idx {
            survivors.push((ep.clone(), KvClient::new(dial(ep, g.dial_timeout).await?)));
        }
    }
    if survivors.is_empty() {
        return Err("need at least one surviving endpoint".into());
    }

    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map_err(|e| format!("run kill: {e}"))?;
    let t0 = Instant::now();
    if !st.success() {
        return Err(format!("kill -9 {pid} failed ({st})"));
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Result<Duration, String>)>();
    let mut tick = tokio::time::interval(o.interval);
    let deadline = tokio::time::sleep(o.timeout);
    tokio::pin!(deadline);
    let mut attempts = 0u64;
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let k = attempts as usize % survivors.len();
                attempts += 1;
                let mut kv = survivors[k].1.clone();
                let (tx, at) = (tx.clone(), o.attempt_timeout);
                tokio::spawn(async move {
                    let req = PutRequest {
                        key: b"rustcd-bench/election".to_vec(),
                        value: format!("{attempts}").into_bytes(),
                        ..Default::default()
                    };
                    let r = match tokio::time::timeout(at, kv.put(req)).await {
                        Ok(Ok(_)) => Ok(t0.elapsed()),
                        Ok(Err(s)) => Err(status_text(&s)),
                        Err(_) => Err(format!("attempt timed out after {at:?}")),
                    };
                    let _ = tx.send((k, r));
                });
            }
            Some((k, r)) = rx.recv() => match r {
                Ok(elapsed) => {
                    return Ok(ElectionResult {
                        killed_index: idx,
                        killed_endpoint: url,
                        killed_pid: pid,
                        elapsed,
                        via_endpoint: survivors[k].0.clone(),
                        attempts,
                        failures,
                    });
                }
                Err(e) => *failures.entry(e).or_insert(0) += 1,
            },
            _ = &mut deadline => {
                return Err(format!(
                    "no put succeeded within {:?} of killing the leader {url} (pid {pid}); {attempts} attempts, failures: {failures:?}",
                    o.timeout
                ));
            }
        }
    }
}
