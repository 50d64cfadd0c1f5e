//! `etcdserverpb.Cluster`: membership through Raft conf changes.

use std::sync::Arc;

use rustcd_proto::etcdserverpb::cluster_client::ClusterClient;
use rustcd_proto::etcdserverpb::cluster_server::Cluster;
use rustcd_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use rustcd_proto::rustcdpb;
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use rustcd_raft::eraftpb::ConfChangeType;
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::error::ServerError;
use crate::membership;

pub(crate) struct ClusterService {
    core: Arc<Core>,
}

impl ClusterService {
    pub(crate) fn new(core: Arc<Core>) -> ClusterService {
        ClusterService { core }
    }

    fn members(&self) -> Vec<Member> {
        self.core
            .shared
            .members
            .read()
            .unwrap()
            .0
            .values()
            .map(to_pb)
            .collect()
    }

    fn header(&self) -> Option<rustcd_proto::etcdserverpb::ResponseHeader> {
        Some(self.core.header(self.core.store().current_revision()))
    }

    fn check_urls(&self, urls: &[String], except: u64) -> Result<(), ServerError> {
        if urls.is_empty() || !urls.iter().all(|u| membership::valid_peer_url(u)) {
            return Err(ServerError::MemberBadUrls);
        }
        let members = self.core.shared.members.read().unwrap();
        let taken = members
            .0
            .values()
            .filter(|m| m.id != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            return Err(ServerError::PeerUrlExists);
        }
        Ok(())
    }

    /// etcd's `--strict-reconfig-check`: refuse a change after which the
    /// voting members that are up could not form a quorum. "Up" is what the
    /// peer transport sees: a connected stream (every member keeps one to
    /// every other), as etcd uses its transport's "active since".
    fn check_quorum_after(
        &self,
        voters_delta: i64,
        removing: Option<u64>,
    ) -> Result<(), ServerError> {
        if !self.core.cfg.strict_reconfig_check {
            return Ok(());
        }
        let members = self.core.shared.members.read().unwrap();
        let voters: Vec<u64> = members
            .0
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect();
        let transport = &self.core.shared.transport;
        let active = voters
            .iter()
            .filter(|id| transport.is_active(**id) && Some(**id) != removing)
            .count() as i64;
        let size = voters.len() as i64 + voters_delta;
        if active < size / 2 + 1 {
            return Err(ServerError::NotEnoughStarted);
        }
        Ok(())
    }
}

fn to_pb(m: &rustcdpb::Member) -> Member {
    Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        self.check_urls(&r.peer_ur_ls, 0)?;
        if !r.is_learner {
            self.check_quorum_after(1, None)?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let id =
            membership::new_member_id(&r.peer_ur_ls, &self.core.cfg.initial_cluster_token, now);
        let member = rustcdpb::Member {
            id,
            name: String::new(),
            peer_urls: r.peer_ur_ls,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let change = if r.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        self.core
            .propose_conf_change(change, id, Some(member.clone()))
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(to_pb(&member)),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.core.reject_learner()?;
        let id = request.into_inner().id;
        let is_learner = match self.core.shared.members.read().unwrap().0.get(&id) {
            Some(m) => m.is_learner,
            None => return Err(ServerError::MemberNotFound.into()),
        };
        if !is_learner {
            self.check_quorum_after(-1, Some(id))?;
        }
        self.core
            .propose_conf_change(ConfChangeType::RemoveNode, id, None)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        if !self
            .core
            .shared
            .members
            .read()
            .unwrap()
            .0
            .contains_key(&r.id)
        {
            return Err(ServerError::MemberNotFound.into());
        }
        self.check_urls(&r.peer_ur_ls, r.id)?;
        self.core
            .propose(Internal::MemberUpdate(rustcdpb::MemberUpdate {
                member_id: r.id,
                peer_urls: r.peer_ur_ls,
            }))
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        self.core.reject_learner()?;
        if request.into_inner().linearizable {
            self.core.linearizable_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.core.reject_learner()?;
        let r = request.into_inner();
        if !self.core.node.status().is_leader {
            // Only the leader knows whether the learner has caught up.
            let mut client = ClusterClient::new(self.core.leader_channel().await?);
            let mut resp = client.member_promote(r).await?.into_inner();
            resp.header = self.header();
            return Ok(Response::new(resp));
        }
        match self.core.shared.members.read().unwrap().0.get(&r.id) {
            None => return Err(ServerError::MemberNotFound.into()),
            Some(m) if !m.is_learner => return Err(ServerError::MemberNotLearner.into()),
            Some(_) => {}
        }
        let progress = self.core.node.progress().await;
        let leader_match = progress
            .iter()
            .find(|p| p.id == self.core.shared.member_id)
            .map_or(0, |p| p.matched);
        let learner_match = progress
            .iter()
            .find(|p| p.id == r.id)
            .map_or(0, |p| p.matched);
        // etcd's rule: a learner within 90% of the leader's log may vote.
        if (learner_match as f64) < (leader_match as f64) * 0.9 {
            return Err(ServerError::LearnerNotReady.into());
        }
        self.check_quorum_after(1, None)?;
        self.core
            .propose_conf_change(ConfChangeType::AddNode, r.id, None)
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        }))
    }
}
