//! The gRPC services, one file each, as etcd lays them out.

pub(crate) mod cluster;
pub(crate) mod kv;
pub(crate) mod maintenance;
