//! Reads from the store for watchers, on the blocking pool: history for unsynced watchers
//! (etcd's `syncWatchers`) and `prev_kv` lookups.

use rustcd_mvcc::{ReadTxn, Store};
use rustcd_proto::etcdserverpb::RangeRequest;
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};

use super::stream::{Filters, KeyRange, Pending};

/// What a catch-up needs to know of one unsynced watcher.
#[derive(Clone, Debug)]
pub(crate) struct JobWatcher {
    pub serial: u64,
    pub range: KeyRange,
    pub next_rev: i64,
    pub filters: Filters,
    pub prev_kv: bool,
}

/// One bounded history read for a stream's unsynced watchers.
pub(crate) struct CatchupJob {
    pub store: Store,
    pub watchers: Vec<JobWatcher>,
    /// Stop after about this many events (never inside a revision).
    pub limit: usize,
}

/// What became of one watcher of a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Its next revision is below this compact revision: cancel it.
    Compacted(i64),
    /// Its events (maybe none) up to the result's `up_to`.
    Events(Pending),
}

/// The result of a [`CatchupJob`].
#[derive(Debug)]
pub(crate) struct CatchupResult {
    /// Every watcher not compacted has now seen everything up to this revision.
    pub up_to: i64,
    pub outcomes: Vec<(u64, Outcome)>,
}

impl CatchupJob {
    /// Reads one chunk of history from a store snapshot. Watchers share one pass over the
    /// revision log from the smallest next revision, over the smallest range covering all of
    /// theirs; each then takes the events at or after its own next revision in its range.
    pub(crate) fn run(self) -> rustcd_mvcc::Result<CatchupResult> {
        let rt = self.store.read()?;
        let compacted = rt.compact_revision();
        let mut outcomes = Vec::with_capacity(self.watchers.len());
        let mut live = Vec::with_capacity(self.watchers.len());
        for w in self.watchers {
            if compacted > 0 && w.next_rev < compacted {
                outcomes.push((w.serial, Outcome::Compacted(compacted)));
            } else {
                live.push(w);
            }
        }
        let Some(start) = live.iter().map(|w| w.next_rev).min() else {
            return Ok(CatchupResult {
                up_to: rt.revision(),
                outcomes,
            });
        };
        let (key, end) = KeyRange::covering(live.iter().map(|w| &w.range));
        let events = rt.events_since(start, &key, &end, self.limit)?;
        let up_to = match events.last() {
            Some(last) if events.len() >= self.limit => revision_of(last),
            _ => rt.revision(),
        };
        for w in live {
            let mut evs: Vec<Event> = events
                .iter()
                .filter(|e| {
                    revision_of(e) >= w.next_rev && w.range.contains(key_of(e)) && w.filters.pass(e)
                })
                .cloned()
                .collect();
            if w.prev_kv {
                fill_prev_kv(&rt, &mut evs);
            }
            let pending = Pending {
                serial: w.serial,
                revision: up_to,
                events: evs,
                prev_kv: false,
            };
            outcomes.push((w.serial, Outcome::Events(pending)));
        }
        Ok(CatchupResult { up_to, outcomes })
    }
}

/// Fills `prev_kv` of the pending responses that asked for it, from one store snapshot.
pub(crate) fn fill_pending_prev_kv(
    store: &Store,
    pending: &mut [Pending],
) -> rustcd_mvcc::Result<()> {
    let rt = store.read()?;
    for p in pending.iter_mut().filter(|p| p.prev_kv) {
        fill_prev_kv(&rt, &mut p.events);
        p.prev_kv = false;
    }
    Ok(())
}

/// etcd's lookup: the key's value at the event's revision - 1, except for a create (nothing
/// before it). Left unset when that revision is compacted.
fn fill_prev_kv(rt: &ReadTxn, events: &mut [Event]) {
    for e in events.iter_mut() {
        if is_create(e) {
            continue;
        }
        let Some(kv) = &e.kv else { continue };
        let req = RangeRequest {
            key: kv.key.clone(),
            revision: kv.mod_revision - 1,
            ..Default::default()
        };
        if let Ok(r) = rt.range(&req) {
            e.prev_kv = r.kvs.into_iter().next();
        }
    }
}

fn is_create(e: &Event) -> bool {
    e.r#type == EventType::Put as i32
        && e.kv
            .as_ref()
            .is_some_and(|kv| kv.create_revision == kv.mod_revision)
}

pub(crate) fn revision_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

pub(crate) fn key_of(e: &Event) -> &[u8] {
    e.kv.as_ref()
        .map_or(&[][..], |kv: &KeyValue| kv.key.as_slice())
}
