//! The registry of live watch streams, fed by apply (etcd's `watchableStore.notify`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rustcd_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Capacity of a stream's queue, in batches (etcd's `chanBufLen`).
pub(crate) const QUEUE_BATCHES: usize = 128;

/// The events of one apply commit. Batches reach a stream in commit order and are contiguous:
/// a batch holds every event of the revisions after the previous batch's `revision` up to and
/// including its own.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The store revision after the commit (the last event's revision).
    pub revision: i64,
    /// The commit's events in revision order.
    pub events: Vec<Event>,
}

/// A stream's place in the hub: batches after revision `from` arrive on `rx`, in order, until
/// the queue overflows; then `rx` yields `None` once drained and the stream subscribes again.
pub(crate) struct Subscription {
    pub id: u64,
    pub from: i64,
    pub rx: mpsc::Receiver<Arc<Batch>>,
}

/// The hub apply notifies after each commit. Cheap for apply: one lock and one `try_send` of
/// an `Arc` per live stream.
pub(crate) struct WatchHub {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The revision of the last commit apply notified.
    notified: i64,
    next_id: u64,
    streams: HashMap<u64, mpsc::Sender<Arc<Batch>>>,
}

impl WatchHub {
    /// A hub for a store at `revision`.
    pub(crate) fn new(revision: i64) -> WatchHub {
        WatchHub {
            inner: Mutex::new(Inner {
                notified: revision,
                next_id: 1,
                streams: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain data, always left consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by apply right after a commit that left the store at `revision`, with the
    /// commit's events. Never blocks: a stream whose queue is full is dropped from the hub and
    /// catches up from the store.
    pub(crate) fn notify(&self, revision: i64, events: Vec<Event>) {
        let mut inner = self.lock();
        inner.notified = inner.notified.max(revision);
        if events.is_empty() {
            return;
        }
        let batch = Arc::new(Batch { revision, events });
        inner
            .streams
            .retain(|id, tx| match tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(
                        stream = id,
                        revision,
                        "watch stream fell behind; it catches up from the store"
                    );
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            });
    }

    /// Called by apply after the store was replaced by a snapshot at `revision`: every stream
    /// is dropped from the hub, so its watchers catch up from the new store when it subscribes
    /// again (etcd moves all synced watchers to unsynced on restore).
    pub(crate) fn restored(&self, revision: i64) {
        let mut inner = self.lock();
        inner.notified = revision;
        inner.streams.clear();
    }

    /// Registers a stream: every batch after the returned `from` revision arrives on its queue.
    pub(crate) fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.streams.insert(id, tx);
        Subscription {
            id,
            from: inner.notified,
            rx,
        }
    }

    /// Removes a stream (a no-op if the hub already dropped it).
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.lock().streams.remove(&id);
    }

    /// The revision of the last commit apply notified.
    #[cfg(test)]
    pub(crate) fn notified_revision(&self) -> i64 {
        self.lock().notified
    }

    /// How many streams are live (diagnostics, tests).
    #[cfg(test)]
    pub(crate) fn live_streams(&self) -> usize {
        self.lock().streams.len()
    }
}
