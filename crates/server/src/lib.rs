//! A rustcd member: the apply path (the one place replicated state changes),
//! linearizable reads via ReadIndex, and etcd's gRPC services.
//!
//! ```text
//! gRPC services ──propose──▶ Raft (rustcd-raft) ──committed──▶ apply ──▶ mvcc
//!       └───────read index──▶ wait applied ──▶ mvcc read txn
//! ```

mod alarm;
mod apply;
mod compactor;
pub mod config;
mod core;
mod error;
mod http;
mod lease;
mod member;
pub mod membership;
mod service;
mod txn;
mod watch;

pub use config::ServerConfig;
pub use error::ServerError;
pub use member::{restore_snapshot, Member, StartError, Stopped};
pub use service::maintenance::ETCD_VERSION;
