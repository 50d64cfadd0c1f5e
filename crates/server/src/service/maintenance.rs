//! `etcdserverpb.Maintenance`: Status, Alarm, MoveLeader; the rest answer
//! `Unimplemented` until they are built.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::alarm_request::AlarmAction;
use rustcd_proto::etcdserverpb::maintenance_server::Maintenance;
use rustcd_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use tonic::{Request, Response, Status};

use crate::apply::Applied;
use crate::core::Core;
use crate::error::ServerError;

/// Streams a store dump as etcdctl expects a snapshot file to look (it
/// refuses one whose length is not a multiple of 512 plus a SHA-256):
/// `dump | zero padding | sha256(all before)`, in 64 KiB messages through a
/// small bounded channel, so memory stays flat whatever the store's size.
struct SnapshotSink {
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
    header: Option<rustcd_proto::etcdserverpb::ResponseHeader>,
    buf: Vec<u8>,
    sha: sha2::Sha256,
    len: u64,
}

const SNAPSHOT_CHUNK: usize = 64 * 1024;

impl SnapshotSink {
    /// Sends what is buffered; `last` marks the end of the stream
    /// (`remaining_bytes` 0; the total is not known before the dump ends).
    fn send(&mut self, last: bool) -> std::io::Result<()> {
        let blob = std::mem::take(&mut self.buf);
        let msg = SnapshotResponse {
            header: self.header,
            remaining_bytes: u64::from(!last),
            blob,
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Pads, appends the SHA-256 and sends the rest.
    fn finish(mut self) -> std::io::Result<()> {
        use sha2::Digest;
        let pad = (512 - (self.len % 512) as usize) % 512;
        std::io::Write::write_all(&mut self, &vec![0; pad])?;
        let sum = self.sha.clone().finalize();
        self.buf.extend_from_slice(&sum);
        self.send(true)
    }
}

impl std::io::Write for SnapshotSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        self.sha.update(data);
        self.len += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SNAPSHOT_CHUNK {
            self.send(false)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The etcd version rustcd reports to clients: the API it implements.
pub const ETCD_VERSION: &str = "3.5.0";

pub(crate) struct MaintenanceService {
    core: Arc<Core>,
}

impl MaintenanceService {
    pub(crate) fn new(core: Arc<Core>) -> MaintenanceService {
        MaintenanceService { core }
    }
}

type SnapshotStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        if r.action == AlarmAction::Get as i32 {
            return Ok(Response::new(AlarmResponse {
                header: Some(self.core.header(self.core.store().current_revision())),
                alarms: self.core.shared.alarms.list(r.alarm),
            }));
        }
        match self.core.propose(Internal::Alarm(r)).await? {
            Applied::Alarm(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let st = self.core.node.status();
        let store = self.core.store();
        let in_use = db_size_in_use(store).await?;
        let mut errors = Vec::new();
        if st.leader_id == 0 {
            errors.push(ServerError::NoLeader.to_string());
        }
        Ok(Response::new(StatusResponse {
            header: Some(self.core.header(store.current_revision())),
            version: ETCD_VERSION.into(),
            db_size: store.db_size() as i64,
            leader: st.leader_id,
            raft_index: st.last_index,
            raft_term: st.term,
            raft_applied_index: st.applied_index,
            errors,
            db_size_in_use: in_use as i64,
            is_learner: self.core.is_learner(),
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.core.reject_learner()?;
        // redb reuses freed pages in place, so there is nothing to rewrite
        // and no stop-the-world pause; the file is not shrunk.
        tracing::info!("defragment requested: redb reuses free pages, nothing to do");
        Ok(Response::new(DefragmentResponse {
            header: Some(self.core.header(self.core.store().current_revision())),
        }))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.core.reject_learner()?;
        let store = self.core.store().clone();
        let (hash, rev) = blocking(move || store.read()?.hash_kv(0)).await?;
        Ok(Response::new(HashResponse {
            header: Some(self.core.header(rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.core.reject_learner()?;
        let rev = request.into_inner().revision;
        let store = self.core.store().clone();
        let (hash, compact_revision, current) = blocking(move || {
            let rtx = store.read()?;
            let (hash, _) = rtx.hash_kv(rev)?;
            Ok((hash, rtx.compact_revision(), rtx.revision()))
        })
        .await?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.core.header(current)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.core.reject_learner()?;
        // rustcd's snapshot format (a logical dump with a CRC32C trailer),
        // from one read transaction: consistent, and writes go on meanwhile.
        let rtx = self.core.store().read().map_err(ServerError::from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sink = SnapshotSink {
            tx: tx.clone(),
            header: Some(self.core.header(rtx.revision())),
            buf: Vec::with_capacity(SNAPSHOT_CHUNK),
            sha: sha2::Digest::new(),
            len: 0,
        };
        tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            let r = rtx
                .write_snapshot(&mut sink)
                .map_err(|e| e.to_string())
                .and_then(|_| sink.finish().map_err(|e| e.to_string()));
            if let Err(e) = r {
                tracing::warn!(error = %e, "snapshot stream failed");
                let _ = tx.blocking_send(Err(Status::internal(e)));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        self.core.reject_learner()?;
        let st = self.core.node.status();
        if !st.is_leader {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        if !self
            .core
            .shared
            .members
            .read()
            .unwrap()
            .0
            .contains_key(&target)
        {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        self.core.node.transfer_leader(target);
        let deadline = Instant::now() + self.core.request_timeout();
        while Instant::now() < deadline {
            if self.core.node.status().leader_id == target {
                return Ok(Response::new(MoveLeaderResponse {
                    header: Some(self.core.header(self.core.store().current_revision())),
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(ServerError::Timeout.into())
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("downgrade is not supported"))
    }
}

/// The store's size in use, computed off the async workers (it can walk the
/// whole tree; on a worker it stalled client and peer traffic alike).
async fn db_size_in_use(store: &rustcd_mvcc::Store) -> Result<u64, Status> {
    let store = store.clone();
    blocking(move || Ok(store.db_size_in_use())).await
}

/// Runs a whole-store walk (hashes, size in use) on the blocking pool: on an
/// async worker it would hold up every request queued behind it.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, rustcd_mvcc::Error> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| ServerError::from(e).into()),
        Err(e) => Err(ServerError::Internal(format!("store walk failed: {e}")).into()),
    }
}
