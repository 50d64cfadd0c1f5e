//! rustcd's Raft layer: the raft-rs ready loop, the WAL, snapshots and the
//! peer transport. It knows nothing of keys: the server plugs in a
//! [`StateMachine`] that applies committed entries.

mod applier;
mod logger;
pub mod metrics;
mod node;
pub mod transport;
pub mod wal;

pub use node::{
    inbox, Committed, Inbox, InboxReceiver, Node, NodeConfig, NodeError, NodeHandle, NodeStatus,
    PeerProgress, SnapshotSource, StateMachine,
};
pub use raft::eraftpb;
pub use transport::{PeerDirectory, PeerService, Transport};
