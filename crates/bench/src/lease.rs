//! `lease-keepalive`: each client grants its own lease (TTL 100 s) and sends
//! keepalives for it on its own LeaseKeepAlive stream, one at a time; so
//! `--clients=N` means N leases and N concurrent keepalive streams (spread
//! over `--conns` connections). Request numbers come from one counter, so a
//! fast lease may get more keepalives than a slow one; the result reports how
//! many distinct leases were kept alive (a response with TTL <= 0 means the
//! server no longer knows the lease and counts as an error).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::channel::mpsc;
use futures::SinkExt;
use rustcd_proto::etcdserverpb::lease_client::LeaseClient;
use rustcd_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest};
use tonic::transport::Channel;

use crate::conn::{channels, status_text, with_timeout, Global};
use crate::progress::Progress;
use crate::report::{Recorder, Stats};

/// How many LeaseGrant (and LeaseRevoke) calls are in flight at once.
const GRANT_CONCURRENCY: usize = 64;

pub struct KeepaliveResult {
    pub stats: Stats,
    /// Leases granted (one per client).
    pub leases: u64,
    /// Leases that got at least one successful keepalive (TTL > 0).
    pub leases_kept_alive: u64,
    /// Fewest and most successful keepalives of one lease.
    pub min_per_lease: u64,
    pub max_per_lease: u64,
    /// Wall time of granting all leases.
    pub grant_secs: f64,
    /// Leases whose revoke at the end failed.
    pub revoke_errors: u64,
}

pub async fn keepalive(g: &Global, total: u64) -> Result<KeepaliveResult, String> {
    if total < g.clients as u64 {
        eprintln!(
            "warning: --total {total} is less than --clients {}: only {total} of the {} leases get a keepalive",
            g.clients, g.clients
        );
    }
    let chans = channels(g).await?;
    // Grant first (GRANT_CONCURRENCY at a time), so an unimplemented Lease
    // service fails cleanly up front and every lease exists before the clock
    // starts.
    let grant_start = Instant::now();
    let mut leases = Vec::with_capacity(g.clients);
    let rt = g.request_timeout;
    let idx: Vec<usize> = (0..g.clients).collect();
    for batch in idx.chunks(GRANT_CONCURRENCY) {
        let grants = batch.iter().map(|&i| {
            let mut c = LeaseClient::new(chans[i % chans.len()].clone());
            async move {
                let r = with_timeout(rt, c.lease_grant(LeaseGrantRequest { ttl: 100, id: 0 }))
                    .await?
                    .into_inner();
                if !r.error.is_empty() {
                    return Err(format!("lease grant: {}", r.error));
                }
                if r.id == 0 {
                    return Err("lease grant returned lease ID 0".into());
                }
                Ok((c, r.id))
            }
        });
        for r in futures::future::join_all(grants).await {
            leases.push(r?);
        }
    }
    let grant_secs = grant_start.elapsed().as_secs_f64();
    let n_leases = leases.len() as u64;
    {
        let mut ids: Vec<i64> = leases.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != leases.len() {
            return Err(format!(
                "the server granted {} distinct lease IDs for {} grants",
                ids.len(),
                leases.len()
            ));
        }
    }

    let next = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("lease-keepalive", total, g.progress);
    let start = Instant::now();
    let stop_at = g.max_duration.map(|d| start + d);
    let mut tasks = Vec::new();
    for (c, id) in leases {
        let (next, done) = (next.clone(), progress.done.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(c, id, &next, total, stop_at, &done).await
        }));
    }
    let mut rec = Recorder::default();
    let mut revoke = Vec::new();
    let (mut kept, mut min_n, mut max_n) = (0u64, u64::MAX, 0u64);
    for t in tasks {
        let (r, c, id, n_ok) = t.await.map_err(|e| e.to_string())?;
        rec.merge(r);
        if n_ok > 0 {
            kept += 1;
        }
        min_n = min_n.min(n_ok);
        max_n = max_n.max(n_ok);
        revoke.push((c, id));
    }
    let stats = Stats::new(start.elapsed(), rec);
    progress.finish().await;
    let mut revoke_errors = 0;
    for batch in revoke.chunks_mut(GRANT_CONCURRENCY) {
        let rs = batch.iter_mut().map(|(c, id)| {
            let id = *id;
            with_timeout(rt, c.lease_revoke(LeaseRevokeRequest { id }))
        });
        revoke_errors += futures::future::join_all(rs)
            .await
            .iter()
            .filter(|r| r.is_err())
            .count() as u64;
    }
    Ok(KeepaliveResult {
        stats,
        leases: n_leases,
        leases_kept_alive: kept,
        min_per_lease: if n_leases == 0 { 0 } else { min_n },
        max_per_lease: max_n,
        grant_secs,
        revoke_errors,
    })
}

/// Keeps one lease alive on its own stream until the shared counter reaches
/// `total`. Returns the recorder, the client, the lease ID and how many
/// keepalives succeeded.
async fn client_loop(
    mut c: LeaseClient<Channel>,
    id: i64,
    next: &AtomicU64,
    total: u64,
    stop_at: Option<Instant>,
    done: &AtomicU64,
) -> (Recorder, LeaseClient<Channel>, i64, u64) {
    let mut rec = Recorder::default();
    let mut n_ok = 0u64;
    if next.fetch_add(1, Ordering::Relaxed) >= total {
        return (rec, c, id, n_ok);
    }
    let (mut tx, rx) = mpsc::channel::<LeaseKeepAliveRequest>(1);
    let mut st = Instant::now();
    let _ = tx.try_send(LeaseKeepAliveRequest { id });
    let mut inbound = match c.lease_keep_alive(rx).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            rec.err(status_text(&s));
            done.fetch_add(1, Ordering::Relaxed);
            return (rec, c, id, n_ok);
        }
    };
    loop {
        match inbound.message().await {
            Ok(Some(r)) if r.id != id => {
                rec.err(format!(
                    "keepalive response for lease {:x}, sent {id:x}",
                    r.id
                ));
            }
            Ok(Some(r)) if r.ttl <= 0 => {
                rec.err("keepalive response with TTL <= 0 (lease not found)".into());
            }
            Ok(Some(_)) => {
                rec.ok(st.elapsed());
                n_ok += 1;
            }
            Ok(None) => {
                rec.err("keepalive stream closed by the server".into());
                break;
            }
            Err(s) => {
                rec.err(status_text(&s));
                break;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        if next.fetch_add(1, Ordering::Relaxed) >= total {
            break;
        }
        st = Instant::now();
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            rec.err("keepalive stream closed".into());
            break;
        }
    }
    (rec, c, id, n_ok)
}
