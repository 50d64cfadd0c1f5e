//! etcd's v3 wire API, written from etcd 3.5's field numbers, plus rustcd's
//! internal messages (what goes into the Raft log, and the peer transport).
//!
//! The package, service and field numbers are the wire contract with etcd
//! clients; everything else in these protos is ours.

#![allow(clippy::all, clippy::pedantic)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// rustcd's own messages: the Raft log entry payload and the peer transport.
pub mod rustcdpb {
    tonic::include_proto!("rustcdpb");
}
