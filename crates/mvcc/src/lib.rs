//! etcd's revisioned key space (the `mvcc` package of etcd 3.5), persisted in a redb file.
//!
//! # Model
//!
//! Every write gets a *revision* `(main, sub)`: all writes of one etcd txn share one main
//! revision (the store's revision + 1) and are numbered by sub revision in the order they were
//! made. A txn that writes nothing does not move the revision. An empty store is at revision 1,
//! so the first write is revision 2, as in etcd. Each key carries etcd's `create_revision`,
//! `mod_revision` and `version` (1 on creation, +1 per put, restarting after a delete).
//!
//! * [`Store::read`] gives a [`ReadTxn`]: a snapshot of the last commit (a redb read
//!   transaction), which never blocks the writer. [`ReadTxn::range`] implements etcd's `Range`
//!   (revision, limit/more/count, sort, min/max filters, keys_only, count_only) exactly as
//!   etcd 3.5's `applierV3backend.Range` over `mvcc.rangeKeys`; [`ReadTxn::events_since`] reads
//!   history for watchers.
//! * [`Store::begin_batch`] gives the single [`WriteBatch`] (a redb write transaction) used by
//!   the apply loop. It holds any number of etcd write txns ([`WriteBatch::txn`] →
//!   [`TxnWrite`]: `range`, `put`, `delete_range`), compactions, server meta writes and the raft
//!   consistent index, all committed atomically by [`WriteBatch::commit`], which returns the
//!   batch's watch events.
//!
//! # Storage
//!
//! Three tables do the work (see `DESIGN.md` next to this crate's `Cargo.toml` for the byte
//! formats and crash behaviour):
//!
//! * `kv`, the key index: `(user key, main, sub)` → the prost-encoded `mvccpb::KeyValue` of a
//!   put without its key and value, or zero bytes for a tombstone. Key K at revision R is K's
//!   greatest row with `main <= R`; reads find it with one seek, and range reads skip from key to
//!   key with seeks rather than scanning long histories.
//! * `rev`: `(main, sub)` → a tombstone flag, the user key and a put's value: the
//!   revision-ordered log that holds the values (appended in order, like etcd's
//!   revision-keyed bucket) and is used by compaction and `events_since`.
//! * `meta`: schema marker, current revision, compact revision, physical compaction cursor,
//!   consistent index. The server's own keys live in a separate `app_meta` table.
//!
//! There is no in-memory index: redb's copy-on-write B-trees give snapshot reads directly, so
//! opening a store of any size is immediate (no index rebuild) and memory use does not grow with
//! the key space.
//!
//! # Compaction
//!
//! [`WriteBatch::compact`] makes history below a revision unreadable at once (etcd semantics:
//! each key keeps its newest version at or below the compact revision, unless it is a
//! deletion). Physically removing the rows is spread over the following batches, a bounded
//! amount per commit, from a persisted cursor, so a large compaction never stalls the apply loop;
//! [`Store::compaction_pending`] reports unfinished work. Nothing observable through reads or
//! history depends on that progress.
//!
//! # Durability
//!
//! `commit(true)` is an fsynced redb commit. `commit(false)` (redb `Durability::None`) is visible
//! at once but only reaches the disk with the next durable commit or a clean close; a crash
//! reverts the file to the last durable commit, consistent index included, so the server replays
//! the raft log from there.

mod error;
mod hash;
mod range;
mod schema;
mod snapshot;
mod store;
mod write;

pub use error::{Error, Result};
pub use store::{ReadTxn, RowCounts, Store};
pub use write::{TxnWrite, WriteBatch};
