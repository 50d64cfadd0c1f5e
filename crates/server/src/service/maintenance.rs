//! `etcdserverpb.Maintenance`: Status, Alarm, MoveLeader; the rest answer
//! `Unimplemented` until they are built.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::maintenance_server::Maintenance;
use rustcd_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::error::ServerError;

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
        let _ = request.into_inner();
        // No alarm can be raised yet (no quota enforcement, no corruption
        // check), so the list is always empty.
        Ok(Response::new(AlarmResponse {
            header: Some(self.core.header(self.core.store().current_revision())),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let st = self.core.node.status();
        let store = self.core.store();
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
            db_size_in_use: store.db_size_in_use() as i64,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented("defragment is not implemented yet"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("hash is not implemented yet"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented("hashkv is not implemented yet"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("snapshot is not implemented yet"))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
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
