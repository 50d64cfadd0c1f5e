//! The gRPC services, one file each, as etcd lays them out.

pub(crate) mod cluster;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod maintenance;
pub(crate) mod watch;
