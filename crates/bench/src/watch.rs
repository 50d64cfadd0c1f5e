//! Watch workloads: `watch` (many watchers, event delivery under puts) and
//! `watch-latency` (put-to-event latency on one key).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::SinkExt;
use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::watch_client::WatchClient;
use rustcd_proto::etcdserverpb::watch_request::RequestUnion;
use rustcd_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tonic::transport::Channel;
use tonic::Streaming;

use crate::conn::{channels, dial, find_leader, status_text, with_timeout, Global};
use crate::kv::{varint_key, Rng};
use crate::progress::Progress;
use crate::report::{Recorder, Stats};

pub struct WatchOpts {
    pub streams: usize,
    pub per_stream: usize,
    pub key_total: usize,
    pub put_rate: u64,
    pub put_total: u64,
    pub key_size: usize,
    pub key_space: u64,
    pub sequential: bool,
    pub event_timeout: Duration,
}

pub struct WatchResult {
    pub create: Stats,
    pub events: Stats,
    pub expected_events: u64,
    pub put_errors: Recorder,
}

fn create_req(key: &[u8]) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// A watch stream with its request sender kept open.
struct Stream {
    tx: mpsc::Sender<WatchRequest>,
    inbound: Streaming<WatchResponse>,
}

/// Opens a stream and creates one watch per key, one after another, timing
/// each from sending the create request to receiving `created`.
async fn open_and_create(
    ch: Channel,
    keys: &[Vec<u8>],
    rec: &mut Recorder,
    progress: &AtomicU64,
) -> Result<Stream, String> {
    let (mut tx, rx) = mpsc::channel::<WatchRequest>(keys.len() + 1);
    let mut client = WatchClient::new(ch);
    // Queue the first create before opening, so the server has something to
    // answer (some servers send response headers only with a message).
    let mut st = Instant::now();
    if let Some(k) = keys.first() {
        tx.try_send(create_req(k)).map_err(|e| e.to_string())?;
    }
    let mut inbound = client
        .watch(rx)
        .await
        .map_err(|s| status_text(&s))?
        .into_inner();
    for (j, k) in keys.iter().enumerate() {
        if j > 0 {
            st = Instant::now();
            tx.send(create_req(k)).await.map_err(|e| e.to_string())?;
        }
        loop {
            match inbound.message().await {
                Ok(Some(m)) if m.created => {
                    rec.ok(st.elapsed());
                    progress.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Some(m)) if m.canceled => {
                    return Err(format!("watch create canceled: {}", m.cancel_reason));
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Err("watch stream closed by the server".into()),
                Err(s) => return Err(status_text(&s)),
            }
        }
    }
    Ok(Stream { tx, inbound })
}

/// Parses the put sequence number carried in the value.
fn seq_of(v: &[u8]) -> Option<usize> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

pub async fn watch(g: &Global, o: WatchOpts) -> Result<WatchResult, String> {
    if o.key_space == 0 || o.key_total == 0 {
        return Err("--key-space-size and --watched-key-total must be positive".into());
    }
    let wanted = 1 + o.streams / 100;
    if g.conns.min(g.clients) < wanted {
        eprintln!(
            "warning: grpc limits 100 streams per client connection, have {} but need {wanted}",
            g.conns.min(g.clients)
        );
    }
    let chans = channels(g).await?;
    let mut rng = Rng::new(99);
    let watched: Vec<Vec<u8>> = (0..o.key_total)
        .map(|i| {
            let n = if o.sequential {
                i as u64 % o.key_space
            } else {
                rng.below(o.key_space)
            };
            varint_key(o.key_size, n)
        })
        .collect();
    // Puts go to watched[i % len]; count them per key (keys may repeat).
    let mut puts_per_key: HashMap<&[u8], u64> = HashMap::new();
    for i in 0..o.put_total as usize {
        *puts_per_key.entry(&watched[i % watched.len()]).or_insert(0) += 1;
    }

    // Phase 1: create the watchers. Watcher w watches watched[w % len];
    // stream s holds watchers s*per_stream .. (s+1)*per_stream.
    let total_watches = (o.streams * o.per_stream) as u64;
    let progress = Progress::start("watch create", total_watches, g.progress);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut expected_per_stream = Vec::new();
    for s in 0..o.streams {
        let keys: Vec<Vec<u8>> = (0..o.per_stream)
            .map(|j| watched[(s * o.per_stream + j) % watched.len()].clone())
            .collect();
        expected_per_stream.push(
            keys.iter()
                .map(|k| puts_per_key.get(k.as_slice()).copied().unwrap_or(0))
                .sum::<u64>(),
        );
        let ch = chans[s % chans.len()].clone();
        let done = progress.done.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let r = open_and_create(ch, &keys, &mut rec, &done).await;
            (r, rec)
        }));
    }
    let mut create_rec = Recorder::default();
    let mut streams = Vec::new();
    let mut first_err = None;
    for t in tasks {
        let (r, rec) = t.await.map_err(|e| e.to_string())?;
        create_rec.merge(rec);
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                create_rec.err(e.clone());
                first_err.get_or_insert(e);
            }
        }
    }
    let create = Stats::new(start.elapsed(), create_rec);
    progress.finish().await;
    if let Some(e) = first_err {
        if streams.is_empty() || e.contains("code = Unimplemented") {
            return Err(e);
        }
    }

    // Phase 2: puts, and every watcher counts its events.
    let expected_events: u64 = expected_per_stream.iter().take(streams.len()).sum();
    let progress = Progress::start("watch events", expected_events, g.progress);
    let base = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..o.put_total).map(|_| AtomicU64::new(0)).collect());
    let mut rx_tasks = Vec::new();
    for (s, st) in streams.into_iter().enumerate() {
        let expected = expected_per_stream[s];
        let (sent_at, done, timeout) = (sent_at.clone(), progress.done.clone(), o.event_timeout);
        rx_tasks.push(tokio::spawn(async move {
            let Stream { tx, mut inbound } = st;
            let mut rec = Recorder::default();
            let mut got = 0u64;
            while got < expected {
                match tokio::time::timeout(timeout, inbound.message()).await {
                    Ok(Ok(Some(m))) => {
                        let now = base.elapsed().as_nanos() as u64;
                        for ev in &m.events {
                            let seq = ev.kv.as_ref().and_then(|kv| seq_of(&kv.value));
                            match seq.and_then(|i| sent_at.get(i)) {
                                Some(t) => {
                                    let sent = t.load(Ordering::Acquire);
                                    rec.ok(Duration::from_nanos(now.saturating_sub(sent)));
                                }
                                None => rec.err("event with an unexpected value".into()),
                            }
                            got += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        if m.canceled {
                            rec.errors.insert(
                                format!("watch canceled: {}", m.cancel_reason),
                                expected - got,
                            );
                            break;
                        }
                    }
                    Ok(Ok(None)) => {
                        *rec.errors
                            .entry("watch stream closed by the server".into())
                            .or_insert(0) += expected - got;
                        break;
                    }
                    Ok(Err(s)) => {
                        *rec.errors.entry(status_text(&s)).or_insert(0) += expected - got;
                        break;
                    }
                    Err(_) => {
                        *rec.errors
                            .entry(format!("watch event not received within {timeout:?}"))
                            .or_insert(0) += expected - got;
                        break;
                    }
                }
            }
            drop(tx);
            rec
        }));
    }

    let next = Arc::new(AtomicU64::new(0));
    let watched = Arc::new(watched);
    let rate_start = Instant::now();
    let mut put_tasks = Vec::new();
    for i in 0..g.clients {
        let mut kv = KvClient::new(chans[i % chans.len()].clone());
        let (next, watched, sent_at) = (next.clone(), watched.clone(), sent_at.clone());
        let (total, rate, rt) = (o.put_total, o.put_rate, g.request_timeout);
        put_tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                if rate > 0 {
                    let at = rate_start + Duration::from_secs_f64(n as f64 / rate as f64);
                    tokio::time::sleep_until(at.into()).await;
                }
                let req = PutRequest {
                    key: watched[n as usize % watched.len()].clone(),
                    value: n.to_string().into_bytes(),
                    ..Default::default()
                };
                sent_at[n as usize].store(base.elapsed().as_nanos() as u64, Ordering::Release);
                let st = Instant::now();
                match with_timeout(rt, kv.put(req)).await {
                    Ok(_) => rec.ok(st.elapsed()),
                    Err(e) => rec.err(e),
                }
            }
            rec
        }));
    }
    let mut put_errors = Recorder::default();
    for t in put_tasks {
        put_errors.merge(t.await.map_err(|e| e.to_string())?);
    }
    let mut ev_rec = Recorder::default();
    for t in rx_tasks {
        ev_rec.merge(t.await.map_err(|e| e.to_string())?);
    }
    let events = Stats::new(base.elapsed(), ev_rec);
    progress.finish().await;
    put_errors.lats.clear();
    Ok(WatchResult {
        create,
        events,
        expected_events,
        put_errors,
    })
}

pub struct LatencyOpts {
    pub total: u64,
    pub put_rate: u64,
    pub key_size: usize,
    pub val_size: usize,
    pub event_timeout: Duration,
}

pub async fn watch_latency(g: &Global, o: LatencyOpts) -> Result<Stats, String> {
    let mut rng = Rng::new(5);
    let key = rng.bytes(o.key_size);
    let value = rng.bytes(o.val_size);
    let chans = channels(g).await?;
    let put_url = if g.target_leader {
        find_leader(g).await?.1
    } else {
        g.endpoints[g.conns % g.endpoints.len()].clone()
    };
    let mut put_client = KvClient::new(dial(&put_url, g.dial_timeout).await?);

    // One watcher per client; each forwards its event arrival times.
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Result<Duration, String>>();
    let mut senders = Vec::new();
    for i in 0..g.clients {
        let mut rec = Recorder::default();
        let done = AtomicU64::new(0);
        let st = open_and_create(
            chans[i % chans.len()].clone(),
            std::slice::from_ref(&key),
            &mut rec,
            &done,
        )
        .await?;
        let Stream { tx, mut inbound } = st;
        senders.push(tx);
        let (sent_at, lat_tx) = (sent_at.clone(), lat_tx.clone());
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        let now = base.elapsed().as_nanos() as u64;
                        for _ in &m.events {
                            let sent = sent_at.load(Ordering::Acquire);
                            let _ = lat_tx.send(Ok(Duration::from_nanos(now.saturating_sub(sent))));
                        }
                    }
                    Ok(None) => {
                        let _ = lat_tx.send(Err("watch stream closed by the server".into()));
                        break;
                    }
                    Err(s) => {
                        let _ = lat_tx.send(Err(status_text(&s)));
                        break;
                    }
                }
            }
        });
    }

    let progress = Progress::start("watch-latency", o.total, g.progress);
    let start = Instant::now();
    let mut rec = Recorder::default();
    'puts: for i in 0..o.total {
        if o.put_rate > 0 {
            let at = start + Duration::from_secs_f64(i as f64 / o.put_rate as f64);
            tokio::time::sleep_until(at.into()).await;
        }
        sent_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
        let req = PutRequest {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        };
        if let Err(e) = with_timeout(g.request_timeout, put_client.put(req)).await {
            return Err(format!("failed to put for watch latency benchmark: {e}"));
        }
        for _ in 0..g.clients {
            match tokio::time::timeout(o.event_timeout, lat_rx.recv()).await {
                Ok(Some(Ok(d))) => rec.ok(d),
                Ok(Some(Err(e))) => {
                    rec.err(e);
                    break 'puts;
                }
                Ok(None) => break 'puts,
                Err(_) => {
                    rec.err(format!(
                        "watch event not received within {:?}",
                        o.event_timeout
                    ));
                    break 'puts;
                }
            }
        }
        progress.inc();
    }
    let stats = Stats::new(start.elapsed(), rec);
    progress.finish().await;
    drop(senders);
    Ok(stats)
}
