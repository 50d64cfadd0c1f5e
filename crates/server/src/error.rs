//! The server's errors, and the ONE place they become gRPC statuses, with
//! etcd's codes and messages (clients match on the message text).

use tonic::{Code, Status};

/// Why a request failed. Variants name etcd's errors (`rpctypes`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// A failure inside this member (storage, encoding); never etcd-visible text.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl From<rustcd_mvcc::Error> for ServerError {
    fn from(e: rustcd_mvcc::Error) -> Self {
        match e {
            rustcd_mvcc::Error::Compacted => ServerError::Compacted,
            rustcd_mvcc::Error::FutureRev => ServerError::FutureRev,
            other => ServerError::Internal(other.to_string()),
        }
    }
}

impl From<rustcd_raft::NodeError> for ServerError {
    fn from(e: rustcd_raft::NodeError) -> Self {
        match e {
            rustcd_raft::NodeError::NoLeader => ServerError::NoLeader,
            rustcd_raft::NodeError::LeaderChanged => ServerError::LeaderChanged,
            rustcd_raft::NodeError::Stopped => ServerError::Stopped,
            rustcd_raft::NodeError::TooManyRequests => ServerError::TooManyRequests,
            rustcd_raft::NodeError::Raft(m) => ServerError::Internal(m),
        }
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        use ServerError::*;
        let code = match e {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseExists | NotLeader | PeerUrlExists | MemberNotLearner | LearnerNotReady
            | NotEnoughStarted => Code::FailedPrecondition,
            MemberBadUrls => Code::InvalidArgument,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            NoLeader | LeaderChanged | Stopped | Timeout | NotSupportedForLearner => {
                Code::Unavailable
            }
            Internal(_) => Code::Unknown,
        };
        Status::new(code, e.to_string())
    }
}
