//! Fault testing for rustcd: real member processes, clients recording a
//! history over etcd's gRPC API, faults injected on a schedule (kill -9,
//! SIGSTOP, network partitions in network namespaces, membership changes, a
//! full disk), then a linearizability check of the history, a final read of
//! every key, HashKV agreement across members and a watcher's completeness.
//! See `docs/fault-testing.md`.

pub mod cluster;
pub mod linearizability;
pub mod workload;
