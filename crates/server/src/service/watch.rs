//! `etcdserverpb.Watch`: the bidirectional watch stream, as etcd 3.5 serves it.
//!
//! One task per stream multiplexes everything the stream waits on: client requests, batches
//! from its hub queue, the catch-up read in flight (on the blocking pool), sending the next
//! response, and the progress and leader timers. It takes new work (batches, catch-ups) only
//! while less than `outbox::OUTBOX_BYTES` of responses wait, so a client that does not read
//! stops its own stream from growing: its queue fills, the hub drops it, and it later catches
//! up from the store. Apply, writers and other streams never wait for it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rand::Rng as _;
use rustcd_proto::etcdserverpb::watch_server::Watch;
use rustcd_proto::etcdserverpb::{WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::core::Core;
use crate::error::ServerError;
use crate::watch::catchup::{fill_pending_prev_kv, CatchupResult};
use crate::watch::stream::{self, needs_prev_kv, HeaderFn};

/// gRPC framing on top of `--max-request-bytes` (etcd's `grpcOverheadBytes`); responses of
/// watchers that asked for fragments are split at this total.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Responses handed to gRPC but not yet written to the connection.
const OUT_CHANNEL: usize = 16;

/// Client requests are not read while this many responses wait (a client that sends without
/// reading is slowed by HTTP/2 flow control rather than growing the outbox).
const REQUEST_GATE: usize = 1024;

/// etcd's `minWatchProgressInterval`.
const MIN_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// etcd cancels require-leader streams after this many election timeouts without a leader.
const MAX_NO_LEADER_TICKS: u32 = 3;

/// gRPC metadata the Go client sets with `clientv3.WithRequireLeader` (etcdctl always does).
const REQUIRE_LEADER_KEY: &str = "hasleader";

pub(crate) struct WatchService {
    core: Arc<Core>,
}

impl WatchService {
    pub(crate) fn new(core: Arc<Core>) -> WatchService {
        WatchService { core }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v == "true");
        if require_leader && self.core.node.status().leader_id == 0 {
            return Err(ServerError::NoLeader.into());
        }
        let (tx, rx) = mpsc::channel(OUT_CHANNEL);
        tokio::spawn(serve(
            self.core.clone(),
            request.into_inner(),
            tx,
            require_leader,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// etcd's `GetProgressReportInterval`: the configured interval (at least 100 ms) plus up to
/// a tenth of it as jitter, so streams created together do not notify together.
fn progress_interval(configured: Duration) -> Duration {
    let base = if configured.is_zero() {
        Duration::from_secs(600)
    } else {
        configured.max(MIN_PROGRESS_INTERVAL)
    };
    let jitter_max = (base.as_nanos() / 10).max(1) as u64;
    base + Duration::from_nanos(rand::rng().random_range(0..jitter_max))
}

async fn join<T>(h: &mut Option<JoinHandle<T>>) -> Result<T, JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Ends the stream with an error status (if the client still takes it).
async fn fail(out: &mpsc::Sender<Result<WatchResponse, Status>>, status: Status) {
    let _ = tokio::time::timeout(Duration::from_secs(5), out.send(Err(status))).await;
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "watch stream: {what}");
    ServerError::Internal(format!("{what}: {e}")).into()
}

async fn serve(
    core: Arc<Core>,
    mut requests: Streaming<WatchRequest>,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    require_leader: bool,
) {
    let header_core = core.clone();
    let header: HeaderFn = Arc::new(move |rev| header_core.header(rev));
    let mut ws = stream::WatchStream::new(
        core.store().clone(),
        core.shared.watch_hub.clone(),
        header,
        core.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES,
    );
    let mut queue = ws.subscribe();
    let mut inflight: Option<JoinHandle<rustcd_mvcc::Result<CatchupResult>>> = None;

    let period = progress_interval(core.cfg.watch_progress_notify_interval);
    let mut progress = interval_at(Instant::now() + period, period);
    progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let election = core.cfg.election_timeout.max(Duration::from_millis(1));
    let mut leader_check = interval_at(Instant::now() + election, election);
    leader_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut no_leader_ticks = 0;
    let mut reading = true;

    loop {
        ws.answer_progress_request();
        if inflight.is_none() && !ws.outbox_full() {
            if let Some(job) = ws.catchup_job() {
                inflight = Some(tokio::task::spawn_blocking(move || job.run()));
            }
        }
        let open = !ws.outbox_full();
        tokio::select! {
            _ = out.closed() => return,
            permit = out.reserve(), if ws.outbox_len() > 0 => {
                let Ok(permit) = permit else { return };
                if let Some(r) = ws.pop_response() {
                    permit.send(Ok(r));
                }
            }
            done = join(&mut inflight), if inflight.is_some() => {
                inflight = None;
                match done {
                    Ok(Ok(r)) => ws.apply_catchup(r),
                    Ok(Err(e)) => return fail(&out, internal("reading history", e)).await,
                    Err(e) => return fail(&out, internal("history reader", e)).await,
                }
            }
            batch = queue.recv(), if open => match batch {
                Some(batch) => {
                    let mut pending = ws.on_batch(&batch);
                    drop(batch);
                    if needs_prev_kv(&pending) {
                        let store = core.store().clone();
                        let filled = tokio::task::spawn_blocking(move || {
                            fill_pending_prev_kv(&store, &mut pending).map(|()| pending)
                        })
                        .await;
                        pending = match filled {
                            Ok(Ok(p)) => p,
                            Ok(Err(e)) => return fail(&out, internal("reading prev_kv", e)).await,
                            Err(e) => return fail(&out, internal("prev_kv reader", e)).await,
                        };
                    }
                    ws.push_pending(pending);
                }
                // The hub dropped this stream (its queue was full): catch up and rejoin.
                None => queue = ws.subscribe(),
            },
            req = requests.next(), if reading && ws.outbox_len() < REQUEST_GATE => match req {
                Some(Ok(r)) => ws.handle(r),
                // Half-closed by the client: as etcd, keep sending until it goes away.
                None => reading = false,
                Some(Err(status)) => {
                    tracing::debug!(%status, "watch stream: receiving from the client failed");
                    return;
                }
            },
            _ = progress.tick() => ws.progress_tick(),
            _ = leader_check.tick(), if require_leader => {
                if core.node.status().leader_id == 0 {
                    no_leader_ticks += 1;
                } else {
                    no_leader_ticks = 0;
                }
                if no_leader_ticks >= MAX_NO_LEADER_TICKS {
                    return fail(&out, ServerError::NoLeader.into()).await;
                }
            }
        }
    }
}
