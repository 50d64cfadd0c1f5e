//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use rustcd_proto::etcdserverpb::kv_server::Kv;
use rustcd_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use tonic::{Request, Response, Status};

use crate::apply::{Applied, ReadView};
use crate::core::Core;
use crate::error::ServerError;
use crate::txn;

pub(crate) struct KvService {
    core: Arc<Core>,
}

impl KvService {
    pub(crate) fn new(core: Arc<Core>) -> KvService {
        KvService { core }
    }

    async fn read_view(&self, serializable: bool) -> Result<ReadView, ServerError> {
        if !serializable {
            self.core.linearizable_barrier().await?;
        }
        Ok(ReadView(self.core.store().read()?))
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        if !r.serializable {
            self.core.reject_learner()?;
        }
        txn::check_range(&r)?;
        let view = self.read_view(r.serializable).await?;
        let mut resp = txn::apply_range(&view, &r)?;
        self.core.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        self.core.reject_learner()?;
        txn::check_put(&r)?;
        self.core.check_quota(r.key.len() + r.value.len()).await?;
        match self.core.propose(Internal::Put(r)).await? {
            Applied::Put(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        self.core.reject_learner()?;
        txn::check_delete(&r)?;
        match self.core.propose(Internal::DeleteRange(r)).await? {
            Applied::DeleteRange(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = request.into_inner();
        self.core.reject_learner()?;
        txn::check_txn(&r, self.core.cfg.max_txn_ops)?;
        if !txn::is_read_only(&r) {
            self.core
                .check_quota(prost::Message::encoded_len(&r))
                .await?;
        }
        if txn::is_read_only(&r) {
            // etcd serves read-only txns locally, like ranges.
            let mut view = self.read_view(txn::is_serializable(&r)).await?;
            let mut resp = txn::apply_txn(&mut view, &r)?;
            self.core.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self.core.propose(Internal::Txn(r)).await? {
            Applied::Txn(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = request.into_inner();
        let physical = r.physical;
        self.core.reject_learner()?;
        match self.core.propose(Internal::Compaction(r)).await? {
            Applied::Compaction(mut resp) => {
                if physical {
                    // As etcd: answer once this member has physically removed
                    // the compacted revisions (the apply thread does it in
                    // bounded steps; the client's deadline bounds the wait).
                    while self.core.store().compaction_pending() {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }
}
