//! `lease-keepalive`: each client grants a lease (TTL 100 s) and sends
//! keepalives for it on its own LeaseKeepAlive stream, one at a time.

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

pub async fn keepalive(g: &Global, total: u64) -> Result<Stats, String> {
    let chans = channels(g).await?;
    // Grant first, so an unimplemented Lease service fails cleanly up front.
    let mut leases = Vec::new();
    for i in 0..g.clients {
        let mut c = LeaseClient::new(chans[i % chans.len()].clone());
        let r = with_timeout(
            g.request_timeout,
            c.lease_grant(LeaseGrantRequest { ttl: 100, id: 0 }),
        )
        .await?;
        let r = r.into_inner();
        if !r.error.is_empty() {
            return Err(format!("lease grant: {}", r.error));
        }
        leases.push((c, r.id));
    }
    let next = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("lease-keepalive", total, g.progress);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, id) in leases {
        let (next, done) = (next.clone(), progress.done.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(c, id, &next, total, &done).await
        }));
    }
    let mut rec = Recorder::default();
    let mut revoke = Vec::new();
    for t in tasks {
        let (r, c, id) = t.await.map_err(|e| e.to_string())?;
        rec.merge(r);
        revoke.push((c, id));
    }
    let stats = Stats::new(start.elapsed(), rec);
    progress.finish().await;
    for (mut c, id) in revoke {
        let _ = c.lease_revoke(LeaseRevokeRequest { id }).await;
    }
    Ok(stats)
}

async fn client_loop(
    mut c: LeaseClient<Channel>,
    id: i64,
    next: &AtomicU64,
    total: u64,
    done: &AtomicU64,
) -> (Recorder, LeaseClient<Channel>, i64) {
    let mut rec = Recorder::default();
    if next.fetch_add(1, Ordering::Relaxed) >= total {
        return (rec, c, id);
    }
    let (mut tx, rx) = mpsc::channel::<LeaseKeepAliveRequest>(1);
    let mut st = Instant::now();
    let _ = tx.try_send(LeaseKeepAliveRequest { id });
    let mut inbound = match c.lease_keep_alive(rx).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            rec.err(status_text(&s));
            done.fetch_add(1, Ordering::Relaxed);
            return (rec, c, id);
        }
    };
    loop {
        match inbound.message().await {
            Ok(Some(_)) => rec.ok(st.elapsed()),
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
        if next.fetch_add(1, Ordering::Relaxed) >= total {
            break;
        }
        st = Instant::now();
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            rec.err("keepalive stream closed".into());
            break;
        }
    }
    (rec, c, id)
}
