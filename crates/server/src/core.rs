//! State shared by the gRPC services and apply, and the two request paths:
//! propose-and-wait for writes, ReadIndex-then-read for linearizable reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prost::Message as _;
use rustcd_mvcc::Store;
use rustcd_proto::etcdserverpb::ResponseHeader;
use rustcd_proto::rustcdpb::internal_raft_request::Request;
use rustcd_proto::rustcdpb::InternalRaftRequest;
use rustcd_raft::{NodeError, NodeHandle, Transport};
use tokio::sync::{oneshot, watch};

use crate::apply::Applied;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::membership::Members;

type Waiter = oneshot::Sender<Result<Applied, ServerError>>;

/// What apply and the request paths both touch.
pub(crate) struct Shared {
    pub member_id: u64,
    pub cluster_id: u64,
    pub store: Store,
    /// Proposals of this member waiting for their entry to be applied.
    pub waiters: Mutex<HashMap<u64, Waiter>>,
    /// The applied index, published after each apply commit.
    pub applied_tx: watch::Sender<u64>,
    pub members: RwLock<Members>,
    pub transport: Arc<Transport>,
}

/// Everything a gRPC service needs.
pub(crate) struct Core {
    pub cfg: ServerConfig,
    pub shared: Arc<Shared>,
    pub node: NodeHandle,
    next_id: AtomicU64,
}

impl Core {
    pub(crate) fn new(cfg: ServerConfig, shared: Arc<Shared>, node: NodeHandle) -> Core {
        // Ids unique per member and restart: member id bits, start time, counter.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let start = ((shared.member_id & 0xffff) << 48) | ((now & 0xff_ffff_ffff) << 8);
        Core {
            cfg,
            shared,
            node,
            next_id: AtomicU64::new(start),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.shared.store
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.cfg.election_timeout
    }

    /// A response header for this member at `revision`.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            revision,
            raft_term: self.node.status().term,
        }
    }

    /// Fills the cluster fields of a header apply produced.
    pub(crate) fn fill_header(&self, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map_or(0, |h| h.revision);
        *h = Some(self.header(rev));
    }

    /// Proposes a request through Raft and waits until it is applied here.
    pub(crate) async fn propose(&self, req: Request) -> Result<Applied, ServerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = InternalRaftRequest {
            id,
            request: Some(req),
        }
        .encode_to_vec();
        if data.len() > self.cfg.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        let (tx, rx) = oneshot::channel();
        self.shared.waiters.lock().unwrap().insert(id, tx);
        let result = self.propose_and_wait(data, rx).await;
        if result.is_err() {
            self.shared.waiters.lock().unwrap().remove(&id);
        }
        result
    }

    async fn propose_and_wait(
        &self,
        data: Vec<u8>,
        rx: oneshot::Receiver<Result<Applied, ServerError>>,
    ) -> Result<Applied, ServerError> {
        let deadline = Instant::now() + self.request_timeout();
        self.retry_without_leader(|| self.node.propose(data.clone()))
            .await?;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// Runs `f`; while there is no leader (an election is under way), retries
    /// for up to one election timeout before giving up with the error.
    async fn retry_without_leader<T, F, Fut>(&self, mut f: F) -> Result<T, ServerError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, NodeError>>,
    {
        let give_up = Instant::now() + self.cfg.election_timeout;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(NodeError::NoLeader | NodeError::LeaderChanged) if Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until this member has applied everything committed before the
    /// call (etcd's linearizable read barrier, via ReadIndex).
    pub(crate) async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let index = tokio::time::timeout(
            self.request_timeout(),
            self.retry_without_leader(|| self.node.read_index()),
        )
        .await
        .map_err(|_| ServerError::Timeout)??;
        let mut applied = self.shared.applied_tx.subscribe();
        let reached = tokio::time::timeout(self.request_timeout(), async {
            applied.wait_for(|a| *a >= index).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::Timeout),
        }
    }
}
