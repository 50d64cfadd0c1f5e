//! The peer transport: Raft messages between members over one long-lived
//! gRPC client stream per peer (served on `--listen-peer-urls`).
//!
//! Each peer has its own bounded queue and task, so a slow, paused or dead
//! peer only ever fills its own queue: the Raft loop never waits on the
//! network. Messages that do not fit are dropped and the peer is reported
//! unreachable; Raft retransmits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rustcd_proto::rustcdpb::raft_transport_client::RaftTransportClient;
use rustcd_proto::rustcdpb::raft_transport_server::RaftTransport;
use rustcd_proto::rustcdpb::{MembersRequest, MembersResponse, RaftMessageBatch, SendResult};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::node::Inbox;

const PEER_QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

struct Peer {
    urls: Vec<String>,
    tx: mpsc::Sender<Message>,
    /// Whether the stream to the peer is connected right now.
    active: Arc<AtomicBool>,
}

/// Sends Raft messages to the other members.
pub struct Transport {
    id: u64,
    cluster_id: Arc<AtomicU64>,
    runtime: tokio::runtime::Handle,
    inbox: Inbox,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Called when a peer says this member was removed from the cluster.
    on_removed: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

impl Transport {
    pub fn new(
        id: u64,
        cluster_id: u64,
        runtime: tokio::runtime::Handle,
        inbox: Inbox,
    ) -> Arc<Transport> {
        Arc::new(Transport {
            id,
            cluster_id: Arc::new(AtomicU64::new(cluster_id)),
            runtime,
            inbox,
            peers: Mutex::new(HashMap::new()),
            on_removed: Arc::default(),
        })
    }

    /// Sets what to do when a peer reports this member removed.
    pub fn on_removed(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_removed.set(Box::new(f));
    }

    /// Starts (or restarts with new URLs) the sender for member `id`.
    pub fn add_peer(&self, id: u64, urls: Vec<String>) {
        if id == self.id || urls.is_empty() {
            return;
        }
        let mut peers = self.peers.lock().unwrap();
        if peers.get(&id).is_some_and(|p| p.urls == urls) {
            return;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let active = Arc::new(AtomicBool::new(false));
        let task = PeerTask {
            from: self.id,
            to: id,
            urls: urls.clone(),
            cluster_id: self.cluster_id.clone(),
            inbox: self.inbox.clone(),
            active: active.clone(),
            on_removed: self.on_removed.clone(),
        };
        self.runtime.spawn(task.run(rx));
        // Replacing the entry drops the old sender, which ends the old task.
        peers.insert(id, Peer { urls, tx, active });
    }

    /// Whether the stream to member `id` is connected now (etcd's
    /// "active since" for `--strict-reconfig-check`). This member counts as
    /// active.
    pub fn is_active(&self, id: u64) -> bool {
        id == self.id
            || self
                .peers
                .lock()
                .unwrap()
                .get(&id)
                .is_some_and(|p| p.active.load(Ordering::Relaxed))
    }

    /// Stops sending to member `id`.
    pub fn remove_peer(&self, id: u64) {
        self.peers.lock().unwrap().remove(&id);
    }

    /// Queues messages for their peers without blocking.
    pub fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let peers = self.peers.lock().unwrap();
        for m in msgs {
            let to = m.to;
            let is_snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let queued = peers.get(&to).is_some_and(|p| p.tx.try_send(m).is_ok());
            if !queued {
                self.inbox.unreachable(to, is_snapshot);
            }
        }
    }
}

struct PeerTask {
    from: u64,
    to: u64,
    urls: Vec<String>,
    cluster_id: Arc<AtomicU64>,
    inbox: Inbox,
    active: Arc<AtomicBool>,
    on_removed: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

impl PeerTask {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut attempt = 0usize;
        let mut backoff = Duration::from_millis(50);
        loop {
            let url = &self.urls[attempt % self.urls.len()];
            attempt += 1;
            let channel = match tonic::transport::Endpoint::from_shared(url.clone()) {
                Ok(ep) => {
                    ep.connect_timeout(Duration::from_secs(1))
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(2))
                        .keep_alive_timeout(Duration::from_secs(5))
                        .connect()
                        .await
                }
                Err(e) => {
                    tracing::error!(peer = %format!("{:x}", self.to), url, error = %e, "invalid peer URL");
                    return;
                }
            };
            let channel = match channel {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(peer = %format!("{:x}", self.to), url, error = %e, "peer unreachable");
                    if !self.drop_queued(&mut rx) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            tracing::info!(peer = %format!("{:x}", self.to), url, "peer stream connected");
            self.active.store(true, Ordering::Relaxed);
            let go_on = self.stream(channel, &mut rx).await;
            self.active.store(false, Ordering::Relaxed);
            if !go_on {
                return;
            }
        }
    }

    /// Streams queued messages until the connection fails (true) or the peer
    /// is removed (false).
    async fn stream(
        &self,
        channel: tonic::transport::Channel,
        rx: &mut mpsc::Receiver<Message>,
    ) -> bool {
        let mut client = RaftTransportClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let (tx, srx) = mpsc::channel::<RaftMessageBatch>(64);
        let call = client.send(ReceiverStream::new(srx));
        tokio::pin!(call);
        loop {
            tokio::select! {
                res = &mut call => {
                    if let Err(e) = res {
                        if e.code() == tonic::Code::PermissionDenied && e.message() == REMOVED_MESSAGE {
                            tracing::warn!(peer = %format!("{:x}", self.to), "{REMOVED_MESSAGE}");
                            if let Some(f) = self.on_removed.get() {
                                f();
                            }
                        } else {
                            tracing::warn!(peer = %format!("{:x}", self.to), error = %e, "peer stream closed");
                        }
                    }
                    self.inbox.unreachable(self.to, false);
                    return true;
                }
                m = rx.recv() => {
                    let Some(m) = m else { return false };
                    let mut msgs = vec![m];
                    while msgs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => msgs.push(m),
                            Err(_) => break,
                        }
                    }
                    let snapshots: Vec<u64> = msgs
                        .iter()
                        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
                        .map(|m| m.to)
                        .collect();
                    let batch = RaftMessageBatch {
                        cluster_id: self.cluster_id.load(Ordering::Relaxed),
                        from: self.from,
                        messages: msgs
                            .iter()
                            .map(|m| m.write_to_bytes().expect("encode raft message"))
                            .collect(),
                    };
                    if tx.send(batch).await.is_err() {
                        for to in snapshots {
                            self.inbox.snapshot_status(to, false);
                        }
                        return true;
                    }
                    for to in snapshots {
                        self.inbox.snapshot_status(to, true);
                    }
                }
            }
        }
    }

    /// While the peer is down, queued messages are stale: drop them so they
    /// do not pile up. Returns false if the peer was removed.
    fn drop_queued(&self, rx: &mut mpsc::Receiver<Message>) -> bool {
        loop {
            match rx.try_recv() {
                Ok(m) => {
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        self.inbox.snapshot_status(self.to, false);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    self.inbox.unreachable(self.to, false);
                    return true;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }
}

/// What the peer service needs to know of the cluster (the server's member
/// set): who is in it, and who was removed from it.
pub trait PeerDirectory: Send + Sync + 'static {
    fn members(&self) -> MembersResponse;
    fn is_removed(&self, id: u64) -> bool;
}

/// What a peer is told when it was removed from the cluster; a member that
/// hears it stops (etcd answers such a peer with HTTP 410 Gone).
const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// The receiving side: the `RaftTransport` gRPC service on the peer listener.
pub struct PeerService {
    cluster_id: u64,
    inbox: Inbox,
    directory: Arc<dyn PeerDirectory>,
}

impl PeerService {
    pub fn new(cluster_id: u64, inbox: Inbox, directory: Arc<dyn PeerDirectory>) -> PeerService {
        PeerService {
            cluster_id,
            inbox,
            directory,
        }
    }
}

#[tonic::async_trait]
impl RaftTransport for PeerService {
    async fn send(
        &self,
        request: Request<Streaming<RaftMessageBatch>>,
    ) -> Result<Response<SendResult>, Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            if batch.cluster_id != self.cluster_id {
                tracing::warn!(
                    local = %format!("{:x}", self.cluster_id),
                    remote = %format!("{:x}", batch.cluster_id),
                    from = %format!("{:x}", batch.from),
                    "request cluster ID mismatch"
                );
                return Err(Status::failed_precondition("cluster ID mismatch"));
            }
            if self.directory.is_removed(batch.from) {
                return Err(Status::permission_denied(REMOVED_MESSAGE));
            }
            for raw in batch.messages {
                match Message::parse_from_bytes(&raw) {
                    Ok(m) => self.inbox.step(m),
                    Err(e) => {
                        return Err(Status::invalid_argument(format!("bad raft message: {e}")));
                    }
                }
            }
        }
        Ok(Response::new(SendResult {}))
    }

    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        Ok(Response::new(self.directory.members()))
    }
}
