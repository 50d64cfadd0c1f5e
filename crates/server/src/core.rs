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

use crate::alarm::Alarms;
use crate::apply::Applied;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::lease::Lessor;
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
    /// Watch streams apply notifies after each commit.
    pub watch_hub: Arc<crate::watch::WatchHub>,
    pub lessor: Lessor,
    pub alarms: Alarms,
    /// Set when a conf change removed this member from the cluster.
    pub removed: watch::Sender<bool>,
    /// Members removed from the cluster; their messages are refused.
    pub removed_ids: RwLock<std::collections::BTreeSet<u64>>,
}

/// Everything a gRPC service needs.
pub(crate) struct Core {
    pub cfg: ServerConfig,
    pub shared: Arc<Shared>,
    pub node: NodeHandle,
    next_id: AtomicU64,
    /// A client connection to the current leader (by id), for requests only
    /// the leader can answer (lease keep-alive and time-to-live).
    leader_channel: tokio::sync::Mutex<Option<(u64, tonic::transport::Channel)>>,
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
            leader_channel: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether this member is a learner (a non-voting member catching up).
    pub(crate) fn is_learner(&self) -> bool {
        self.shared
            .members
            .read()
            .unwrap()
            .0
            .get(&self.shared.member_id)
            .is_some_and(|m| m.is_learner)
    }

    /// etcd serves only Status and serializable Range on a learner.
    pub(crate) fn reject_learner(&self) -> Result<(), ServerError> {
        if self.is_learner() {
            return Err(ServerError::NotSupportedForLearner);
        }
        Ok(())
    }

    /// A gRPC channel to the leader's first client URL. Right after an
    /// election or a start the leader may not have published its client URLs
    /// yet: wait for them for up to one election timeout.
    pub(crate) async fn leader_channel(&self) -> Result<tonic::transport::Channel, ServerError> {
        let give_up = Instant::now() + self.cfg.election_timeout.max(Duration::from_secs(1));
        let (leader, url) = loop {
            let leader = self.node.status().leader_id;
            let url = self
                .shared
                .members
                .read()
                .unwrap()
                .0
                .get(&leader)
                .and_then(|m| m.client_urls.first().cloned());
            match url {
                Some(url) if leader != 0 => break (leader, url),
                _ if Instant::now() >= give_up => return Err(ServerError::NoLeader),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let mut cached = self.leader_channel.lock().await;
        if let Some((id, ch)) = cached.as_ref() {
            if *id == leader {
                return Ok(ch.clone());
            }
        }
        let ch = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .map_err(|_| ServerError::NoLeader)?;
        *cached = Some((leader, ch.clone()));
        Ok(ch)
    }

    /// A fresh lease id, positive, unique with high probability (etcd picks
    /// the id on the proposing member too, so all members apply the same).
    pub(crate) fn new_lease_id(&self) -> i64 {
        loop {
            let id = (rand::random::<u64>() >> 1) as i64;
            if id != 0 && !self.shared.lessor.exists(id) {
                return id;
            }
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

    /// Proposes a membership change through Raft and waits until it is
    /// applied here. `member` is the member being added (its id is set).
    pub(crate) async fn propose_conf_change(
        &self,
        change: rustcd_raft::eraftpb::ConfChangeType,
        node_id: u64,
        member: Option<rustcd_proto::rustcdpb::Member>,
    ) -> Result<(), ServerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ctx = rustcd_proto::rustcdpb::ConfChangeContext {
            request_id: id,
            member,
        };
        let mut cc = rustcd_raft::eraftpb::ConfChangeV2::default();
        cc.set_changes(vec![raft_proto::new_conf_change_single(node_id, change)].into());
        cc.context = ctx.encode_to_vec().into();
        let (tx, rx) = oneshot::channel();
        self.shared.waiters.lock().unwrap().insert(id, tx);
        let deadline = Instant::now() + self.request_timeout();
        let result = async {
            self.retry_without_leader(|| self.node.propose_conf_change(cc.clone()))
                .await?;
            match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(r)) => r.map(|_| ()),
                Ok(Err(_)) => Err(ServerError::Stopped),
                Err(_) => Err(ServerError::Timeout),
            }
        }
        .await;
        if result.is_err() {
            self.shared.waiters.lock().unwrap().remove(&id);
        }
        result
    }

    /// etcd's quota check before a write that grows the store: past
    /// `--quota-backend-bytes` (default 2 GiB), raise a NOSPACE alarm for
    /// this member and refuse. rustcd counts the bytes in use, not the file
    /// size, so freed space counts without a defrag.
    pub(crate) async fn check_quota(&self, cost: usize) -> Result<(), ServerError> {
        const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;
        let quota = match self.cfg.quota_backend_bytes {
            0 => DEFAULT_QUOTA,
            q => q,
        };
        if self.shared.alarms.no_space() {
            return Err(ServerError::NoSpace);
        }
        // The file size bounds the size in use and costs nothing; only a
        // file past the quota needs the (tree-walking) size in use.
        if self.store().db_size() + cost as u64 <= quota {
            return Ok(());
        }
        let store = self.store().clone();
        let in_use = tokio::task::spawn_blocking(move || store.db_size_in_use())
            .await
            .map_err(|e| ServerError::Internal(format!("computing db size in use: {e}")))?;
        if in_use + cost as u64 <= quota {
            return Ok(());
        }
        tracing::warn!(quota, "database space exceeded; raising NOSPACE alarm");
        let _ = self
            .propose(Request::Alarm(rustcd_proto::etcdserverpb::AlarmRequest {
                action: rustcd_proto::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
                member_id: self.shared.member_id,
                alarm: rustcd_proto::etcdserverpb::AlarmType::Nospace as i32,
            }))
            .await;
        Err(ServerError::NoSpace)
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
        // A ReadIndex round normally takes one heartbeat round trip; one
        // lost with a message or a leader change is asked again rather than
        // waited out for the whole request timeout.
        let deadline = Instant::now() + self.request_timeout();
        let attempt = (self.cfg.heartbeat_interval * 3).max(Duration::from_millis(100));
        let index = loop {
            match tokio::time::timeout(
                attempt,
                self.retry_without_leader(|| self.node.read_index()),
            )
            .await
            {
                Ok(r) => break r?,
                Err(_) if Instant::now() + attempt < deadline => continue,
                Err(_) => return Err(ServerError::Timeout),
            }
        };
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
