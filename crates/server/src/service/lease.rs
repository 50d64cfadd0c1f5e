//! `etcdserverpb.Lease`: grant and revoke go through Raft from any member;
//! keep-alive and time-to-live are answered by the leader, to which other
//! members forward them (as etcd forwards over its peer port).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::lease_client::LeaseClient;
use rustcd_proto::etcdserverpb::lease_server::Lease;
use rustcd_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::apply::Applied;
use crate::core::Core;
use crate::error::ServerError;
use crate::lease::MAX_LEASE_TTL;

/// How often the leader records every lease's remaining TTL through Raft, so
/// a new leader (or a restarted cluster) resumes from it rather than from
/// the full TTL. etcd's default is 5 minutes behind an experimental flag;
/// rustcd always checkpoints, more often, and at most this many per entry.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
const CHECKPOINT_BATCH: usize = 1000;

pub(crate) struct LeaseService {
    core: Arc<Core>,
}

impl LeaseService {
    pub(crate) fn new(core: Arc<Core>) -> LeaseService {
        LeaseService { core }
    }
}

/// A keep-alive stream to the leader, shared by all the keep-alives of one
/// client stream that lands on a follower (a stream per keep-alive would pile
/// up reset HTTP/2 streams until the connection is torn down).
struct Forward {
    leader: u64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

/// One keep-alive: renewed here on the leader, else forwarded to it.
async fn keep_alive_once(
    core: &Core,
    id: i64,
    forward: &mut Option<Forward>,
) -> Result<LeaseKeepAliveResponse, Status> {
    let header = Some(core.header(core.store().current_revision()));
    if core.shared.lessor.is_primary() {
        *forward = None;
        let ttl = match core.shared.lessor.renew(id) {
            Ok(ttl) => ttl,
            Err(ServerError::LeaseNotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        return Ok(LeaseKeepAliveResponse { header, id, ttl });
    }
    let leader = core.node.status().leader_id;
    if forward.as_ref().is_some_and(|f| f.leader != leader) {
        *forward = None;
    }
    if forward.is_none() {
        let mut client = LeaseClient::new(core.leader_channel().await?);
        let (tx, rx) = mpsc::channel(16);
        let stream = client
            .lease_keep_alive(ReceiverStream::new(rx))
            .await?
            .into_inner();
        *forward = Some(Forward {
            leader,
            tx,
            rx: stream,
        });
    }
    let f = forward.as_mut().expect("just set");
    let result = async {
        f.tx.send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Status::from(ServerError::LeaderChanged))?;
        f.rx.message()
            .await?
            .ok_or_else(|| Status::from(ServerError::LeaderChanged))
    }
    .await;
    match result {
        Ok(mut r) => {
            r.header = header;
            Ok(r)
        }
        Err(e) => {
            *forward = None;
            Err(e)
        }
    }
}

type KeepAliveStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.core.reject_learner()?;
        let mut r = request.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(ServerError::LeaseTtlTooLarge.into());
        }
        self.core.check_quota(16).await?;
        if r.id == 0 {
            r.id = self.core.new_lease_id();
        }
        match self.core.propose(Internal::LeaseGrant(r)).await? {
            Applied::LeaseGrant(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        match self.core.propose(Internal::LeaseRevoke(r)).await? {
            Applied::LeaseRevoke(mut resp) => {
                self.core.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(other.unexpected()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.core.reject_learner()?;
        let mut requests = request.into_inner();
        let core = self.core.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut forward = None;
            while let Some(req) = requests.next().await {
                let resp = match req {
                    Ok(req) => keep_alive_once(&core, req.id, &mut forward).await,
                    Err(e) => Err(e),
                };
                let stop = resp.is_err();
                if tx.send(resp).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        let header = Some(self.core.header(self.core.store().current_revision()));
        if !self.core.shared.lessor.is_primary() {
            let mut client = LeaseClient::new(self.core.leader_channel().await?);
            let mut resp = client.lease_time_to_live(r).await?.into_inner();
            resp.header = header;
            return Ok(Response::new(resp));
        }
        let resp = match self.core.shared.lessor.time_to_live(r.id, r.keys) {
            Some(t) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: t.remaining,
                granted_ttl: t.granted,
                keys: t.keys,
            },
            // etcd answers an unknown lease with TTL -1, not an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.core.reject_learner()?;
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.core.header(self.core.store().current_revision())),
            leases: self
                .core
                .shared
                .lessor
                .ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

/// The leader's lease duties: follow leadership, revoke expired leases
/// through Raft, checkpoint remaining TTLs.
pub(crate) async fn run_lessor(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let revoking: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut last_checkpoint = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let lessor = &core.shared.lessor;
        let leader = core.node.status().is_leader;
        if leader && !lessor.is_primary() {
            tracing::info!("promoting lessor: this member leads");
            lessor.promote(core.cfg.election_timeout);
            last_checkpoint = Instant::now();
        } else if !leader && lessor.is_primary() {
            tracing::info!("demoting lessor: this member no longer leads");
            lessor.demote();
        }
        if !lessor.is_primary() {
            continue;
        }
        for id in lessor.expired() {
            if !revoking.lock().unwrap().insert(id) {
                continue;
            }
            let (core, revoking) = (core.clone(), revoking.clone());
            tokio::spawn(async move {
                match core
                    .propose(Internal::LeaseRevoke(LeaseRevokeRequest { id }))
                    .await
                {
                    Ok(_) => tracing::info!(lease = %format!("{id:x}"), "revoked expired lease"),
                    Err(e) => {
                        tracing::warn!(lease = %format!("{id:x}"), error = %e, "revoking expired lease failed")
                    }
                }
                revoking.lock().unwrap().remove(&id);
            });
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            last_checkpoint = Instant::now();
            let remaining = lessor.remaining();
            for chunk in remaining.chunks(CHECKPOINT_BATCH) {
                let req = LeaseCheckpointRequest {
                    checkpoints: chunk
                        .iter()
                        .map(|(id, ttl)| LeaseCheckpoint {
                            id: *id,
                            remaining_ttl: *ttl,
                        })
                        .collect(),
                };
                let core = core.clone();
                tokio::spawn(async move {
                    if let Err(e) = core.propose(Internal::LeaseCheckpoint(req)).await {
                        tracing::debug!(error = %e, "lease checkpoint failed");
                    }
                });
            }
        }
    }
}
