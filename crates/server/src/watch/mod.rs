//! etcd's watch machinery (the `mvcc` watchable store plus the v3rpc watch stream), in four
//! parts:
//!
//! * [`hub`]: the registry apply feeds. After each commit, apply hands the batch's events and
//!   the new revision to [`WatchHub::notify`], which pushes one shared `Arc` of the batch into
//!   each live stream's bounded queue with `try_send`: O(streams) pointer pushes on the Raft
//!   thread, never a wait. A stream whose queue is full is dropped from the hub (etcd's
//!   "victim"); it notices when its queue runs dry and subscribes again.
//! * [`stream`]: one client stream's watchers and their state. A watcher is *synced* when every
//!   event it still needs will come through the stream's queue (its next revision is above the
//!   last revision the queue covered); otherwise it is *unsynced* and catches up from the store
//!   with `ReadTxn::events_since` in bounded chunks ([`catchup`], run on the blocking pool),
//!   then rejoins. Each watcher keeps the revision it needs next, and every event below it is
//!   skipped, so the hand-over between history and live events has no gap and no duplicate.
//!   Watchers whose next revision was compacted are canceled with the compact revision.
//! * [`outbox`]: a stream's responses waiting to be sent; while they wait, a watcher's next
//!   events join its queued response, so a backed-up stream sends fewer, larger responses.
//! * `service::watch`: the gRPC `Watch` RPC, one task per stream multiplexing client requests,
//!   queue batches, catch-up results and the bounded output.
//!
//! Memory per stream is bounded: at most [`hub::QUEUE_BATCHES`] batches (shared with every
//! other stream), one catch-up chunk of [`stream::CATCHUP_EVENTS`] events, and an outbox that
//! stops taking new work at [`outbox::OUTBOX_BYTES`] (plus the one batch or chunk that crossed
//! it).

pub(crate) mod catchup;
pub(crate) mod hub;
pub(crate) mod outbox;
pub(crate) mod stream;

pub(crate) use hub::WatchHub;

#[cfg(test)]
mod tests;
