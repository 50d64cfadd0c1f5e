//! One client stream's watchers (etcd's `watchStream` plus the response logic of v3rpc's
//! `serverWatchStream`), free of gRPC and of async: the service drives it.
//!
//! The stream's queue covers every revision above `covered`. A watcher whose next revision is
//! above `covered` is synced: it takes its events from queue batches. The others are unsynced
//! and catch up from the store ([`WatchStream::catchup_job`]); when a catch-up leaves a watcher
//! above `covered`, it is synced again. Since a watcher only ever takes events at or above its
//! next revision and then moves past them, nothing is delivered twice or skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message as _;
use rustcd_mvcc::Store;
use rustcd_proto::etcdserverpb::watch_create_request::FilterType;
use rustcd_proto::etcdserverpb::watch_request::RequestUnion;
use rustcd_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::Event;
use tokio::sync::mpsc;

use super::catchup::{key_of, revision_of, CatchupJob, CatchupResult, JobWatcher, Outcome};
use super::hub::{Batch, WatchHub};
use super::outbox::{OpenResponse, Outbox, MERGE_BYTES};

/// Events per catch-up read (rounded up to a whole revision).
pub(crate) const CATCHUP_EVENTS: usize = 1000;

/// etcd's `clientv3.InvalidWatchID`.
const INVALID_WATCH_ID: i64 = -1;

const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// Builds a full response header (cluster, member, raft term) at a revision.
pub(crate) type HeaderFn = Arc<dyn Fn(i64) -> ResponseHeader + Send + Sync>;

/// The keys a watcher watches, from etcd's (key, range_end) convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `range_end` empty: one key.
    Key(Vec<u8>),
    /// `range_end` = `"\0"`: every key >= this one.
    From(Vec<u8>),
    /// `[key, end)`.
    Range(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    /// As etcd: an empty key is `"\0"` (the smallest key); `key >= range_end` is an error.
    pub(crate) fn from_request(key: Vec<u8>, range_end: &[u8]) -> Result<KeyRange, &'static str> {
        let key = if key.is_empty() { vec![0] } else { key };
        match range_end {
            [] => Ok(KeyRange::Key(key)),
            [0] => Ok(KeyRange::From(key)),
            end if key.as_slice() >= end => Err(ERR_EMPTY_RANGE),
            end => Ok(KeyRange::Range(key, end.to_vec())),
        }
    }

    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Key(key) => k == key.as_slice(),
            KeyRange::From(key) => k >= key.as_slice(),
            KeyRange::Range(key, end) => k >= key.as_slice() && k < end.as_slice(),
        }
    }

    fn start(&self) -> &[u8] {
        match self {
            KeyRange::Key(k) | KeyRange::From(k) | KeyRange::Range(k, _) => k,
        }
    }

    /// The exclusive end; `None` when unbounded.
    fn end(&self) -> Option<Vec<u8>> {
        match self {
            KeyRange::Key(k) => {
                let mut e = k.clone();
                e.push(0);
                Some(e)
            }
            KeyRange::From(_) => None,
            KeyRange::Range(_, e) => Some(e.clone()),
        }
    }

    /// In etcd's wire form (key, range_end).
    fn to_wire(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeyRange::Key(k) => (k.clone(), Vec::new()),
            KeyRange::From(k) => (k.clone(), vec![0]),
            KeyRange::Range(k, e) => (k.clone(), e.clone()),
        }
    }

    /// The smallest etcd range (wire form) covering all of `ranges` (at least one).
    pub(crate) fn covering<'a>(ranges: impl Iterator<Item = &'a KeyRange>) -> (Vec<u8>, Vec<u8>) {
        let mut first: Option<&KeyRange> = None;
        let mut start: Option<&[u8]> = None;
        let mut end: Option<Option<Vec<u8>>> = None;
        let mut count = 0usize;
        for r in ranges {
            count += 1;
            first.get_or_insert(r);
            start = Some(match start {
                Some(s) if s <= r.start() => s,
                _ => r.start(),
            });
            end = Some(match (end, r.end()) {
                (None, e) => e,
                (Some(None), _) | (Some(_), None) => None,
                (Some(Some(a)), Some(b)) => Some(a.max(b)),
            });
        }
        match (count, first) {
            (1, Some(r)) => r.to_wire(),
            _ => (
                start.unwrap_or(&[0]).to_vec(),
                end.flatten().unwrap_or_else(|| vec![0]),
            ),
        }
    }
}

/// NOPUT / NODELETE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    pub no_put: bool,
    pub no_delete: bool,
}

impl Filters {
    fn from_request(filters: &[i32]) -> Filters {
        let mut f = Filters::default();
        for &t in filters {
            if t == FilterType::Noput as i32 {
                f.no_put = true;
            } else if t == FilterType::Nodelete as i32 {
                f.no_delete = true;
            }
        }
        f
    }

    /// Whether the event is delivered.
    pub(crate) fn pass(&self, e: &Event) -> bool {
        if e.r#type == EventType::Delete as i32 {
            !self.no_delete
        } else {
            !self.no_put
        }
    }
}

/// Events ready for one watcher, waiting (maybe) for `prev_kv` and then for the outbox.
#[derive(Debug)]
pub(crate) struct Pending {
    pub serial: u64,
    /// The response's header revision.
    pub revision: i64,
    pub events: Vec<Event>,
    /// `prev_kv` still has to be filled in.
    pub prev_kv: bool,
}

#[derive(Debug)]
struct Watcher {
    id: i64,
    range: KeyRange,
    /// The smallest revision whose events it still needs.
    next_rev: i64,
    filters: Filters,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// etcd's `progress[id]`: no events were sent since the last progress tick.
    progress_due: bool,
    /// Canceled by compaction. As in etcd, its id stays taken until the client cancels it.
    compacted: bool,
    /// Its last event response, if still queued: later events may join it.
    open: Option<OpenResponse>,
}

/// One client stream's watchers and pending responses.
pub(crate) struct WatchStream {
    store: Store,
    hub: Arc<WatchHub>,
    header: HeaderFn,
    /// Responses larger than this are split for watchers that asked for fragments.
    max_response_bytes: usize,
    sub_id: Option<u64>,
    /// Every batch after this revision comes through the queue.
    covered: i64,
    /// By serial (creation order).
    watchers: BTreeMap<u64, Watcher>,
    ids: HashMap<i64, u64>,
    next_id: i64,
    next_serial: u64,
    outbox: Outbox,
    progress_requested: bool,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(id) = self.sub_id {
            self.hub.unsubscribe(id);
        }
    }
}

impl WatchStream {
    pub(crate) fn new(
        store: Store,
        hub: Arc<WatchHub>,
        header: HeaderFn,
        max_response_bytes: usize,
    ) -> WatchStream {
        WatchStream {
            store,
            hub,
            header,
            max_response_bytes,
            sub_id: None,
            covered: 0,
            watchers: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            next_serial: 0,
            outbox: Outbox::default(),
            progress_requested: false,
        }
    }

    /// Joins (or re-joins, after the queue overflowed) the hub; returns the new queue. Watchers
    /// whose next revision the new queue does not cover become unsynced.
    pub(crate) fn subscribe(&mut self) -> mpsc::Receiver<Arc<Batch>> {
        if let Some(id) = self.sub_id.take() {
            self.hub.unsubscribe(id);
        }
        let sub = self.hub.subscribe();
        self.sub_id = Some(sub.id);
        self.covered = self.covered.max(sub.from);
        sub.rx
    }

    /// Handles one client request.
    pub(crate) fn handle(&mut self, req: WatchRequest) {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c),
            Some(RequestUnion::CancelRequest(c)) => self.cancel(c.watch_id),
            Some(RequestUnion::ProgressRequest(_)) => self.progress_requested = true,
            None => {}
        }
    }

    fn create(&mut self, c: WatchCreateRequest) {
        let wsrev = self.store.current_revision();
        let rejected = |reason: &str| WatchResponse {
            header: Some((self.header)(wsrev)),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        let range = match KeyRange::from_request(c.key, &c.range_end) {
            Ok(r) => r,
            Err(reason) => {
                let r = rejected(reason);
                self.outbox.push(r);
                return;
            }
        };
        let id = if c.watch_id == 0 {
            while self.ids.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.ids.contains_key(&c.watch_id) {
            let r = rejected(ERR_DUPLICATE_ID);
            self.outbox.push(r);
            return;
        } else {
            c.watch_id
        };
        let next_rev = if c.start_revision == 0 {
            wsrev + 1
        } else {
            c.start_revision.max(1)
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        self.ids.insert(id, serial);
        self.outbox.push(WatchResponse {
            header: Some((self.header)(wsrev)),
            watch_id: id,
            created: true,
            ..Default::default()
        });
        let compacted = self.store.compact_revision();
        let mut w = Watcher {
            id,
            range,
            next_rev,
            filters: Filters::from_request(&c.filters),
            prev_kv: c.prev_kv,
            fragment: c.fragment,
            progress_notify: c.progress_notify,
            progress_due: true,
            compacted: false,
            open: None,
        };
        if compacted > 0 && next_rev < compacted {
            w.compacted = true;
            let r = self.compacted_response(id, compacted);
            self.outbox.push(r);
        }
        self.watchers.insert(serial, w);
    }

    fn compacted_response(&self, id: i64, compact_revision: i64) -> WatchResponse {
        // etcd sends these with header revision 0.
        WatchResponse {
            header: Some((self.header)(0)),
            watch_id: id,
            canceled: true,
            compact_revision,
            ..Default::default()
        }
    }

    fn cancel(&mut self, id: i64) {
        let Some(serial) = self.ids.remove(&id) else {
            return;
        };
        self.watchers.remove(&serial);
        let rev = self.store.current_revision();
        self.outbox.push(WatchResponse {
            header: Some((self.header)(rev)),
            watch_id: id,
            canceled: true,
            ..Default::default()
        });
    }

    fn is_synced(&self, w: &Watcher) -> bool {
        !w.compacted && w.next_rev > self.covered
    }

    /// etcd's periodic progress notification: to each synced `progress_notify` watcher that
    /// got no events since the last tick, an empty response at the covered revision.
    pub(crate) fn progress_tick(&mut self) {
        let covered = self.covered;
        let mut due = Vec::new();
        for w in self.watchers.values_mut() {
            if !w.progress_notify || w.compacted {
                continue;
            }
            if w.progress_due && w.next_rev > covered {
                due.push(w.id);
            }
            w.progress_due = true;
        }
        for id in due {
            self.outbox.push(WatchResponse {
                header: Some((self.header)(covered)),
                watch_id: id,
                ..Default::default()
            });
        }
    }

    /// Answers a `RequestProgress` once every watcher is synced (as etcd 3.5 does since
    /// 3.5.8, so the revision never runs ahead of events still to be sent): an empty response
    /// with watch id -1 at the revision all watchers have reached.
    pub(crate) fn answer_progress_request(&mut self) {
        if !self.progress_requested {
            return;
        }
        let live: Vec<&Watcher> = self.watchers.values().filter(|w| !w.compacted).collect();
        if !live.iter().all(|w| self.is_synced(w)) {
            return;
        }
        let rev = if live.is_empty() {
            self.store.current_revision()
        } else {
            self.covered
        };
        self.progress_requested = false;
        self.outbox.push(WatchResponse {
            header: Some((self.header)(rev)),
            watch_id: INVALID_WATCH_ID,
            ..Default::default()
        });
    }

    /// Takes a queue batch: the synced watchers' events, one response per watcher and
    /// revision, in revision order. Unsynced watchers skip it (they read it from the store).
    pub(crate) fn on_batch(&mut self, batch: &Batch) -> Vec<Pending> {
        let covered = self.covered;
        let mut out: Vec<Pending> = Vec::new();
        for (&serial, w) in self.watchers.iter_mut() {
            if w.compacted || w.next_rev <= covered {
                continue;
            }
            for e in &batch.events {
                let rev = revision_of(e);
                if rev < w.next_rev || !w.range.contains(key_of(e)) || !w.filters.pass(e) {
                    continue;
                }
                match out.last_mut() {
                    Some(p) if p.serial == serial && p.revision == rev => p.events.push(e.clone()),
                    _ => out.push(Pending {
                        serial,
                        revision: rev,
                        events: vec![e.clone()],
                        prev_kv: w.prev_kv,
                    }),
                }
            }
            w.next_rev = w.next_rev.max(batch.revision + 1);
        }
        self.covered = self.covered.max(batch.revision);
        // Revision order; within a revision, watcher creation order (stable sort).
        out.sort_by_key(|p| p.revision);
        out
    }

    /// A job reading history for the unsynced watchers, if there are any.
    pub(crate) fn catchup_job(&self) -> Option<CatchupJob> {
        let watchers: Vec<JobWatcher> = self
            .watchers
            .iter()
            .filter(|(_, w)| !w.compacted && w.next_rev <= self.covered)
            .map(|(&serial, w)| JobWatcher {
                serial,
                range: w.range.clone(),
                next_rev: w.next_rev,
                filters: w.filters,
                prev_kv: w.prev_kv,
            })
            .collect();
        (!watchers.is_empty()).then(|| CatchupJob {
            store: self.store.clone(),
            watchers,
            limit: CATCHUP_EVENTS,
        })
    }

    /// Takes a catch-up result: sends its events, moves watchers past `up_to`, cancels the
    /// compacted ones. Watchers canceled meanwhile are skipped.
    pub(crate) fn apply_catchup(&mut self, result: CatchupResult) {
        let mut pending = Vec::new();
        for (serial, outcome) in result.outcomes {
            let Some(w) = self.watchers.get_mut(&serial) else {
                continue;
            };
            match outcome {
                Outcome::Compacted(rev) => {
                    w.compacted = true;
                    let id = w.id;
                    let r = self.compacted_response(id, rev);
                    self.outbox.push(r);
                }
                Outcome::Events(p) => {
                    w.next_rev = w.next_rev.max(result.up_to + 1);
                    if !p.events.is_empty() {
                        pending.push(p);
                    }
                }
            }
        }
        self.push_pending(pending);
    }

    /// Queues responses for pending events (their `prev_kv` filled in already).
    pub(crate) fn push_pending(&mut self, pending: Vec<Pending>) {
        for p in pending {
            let Some(w) = self.watchers.get_mut(&p.serial) else {
                continue;
            };
            if w.compacted {
                continue;
            }
            w.progress_due = false;
            let resp = WatchResponse {
                header: Some((self.header)(p.revision)),
                watch_id: w.id,
                events: p.events,
                ..Default::default()
            };
            if w.fragment {
                for r in fragments(resp, self.max_response_bytes) {
                    self.outbox.push(r);
                }
            } else {
                let max = MERGE_BYTES.min(self.max_response_bytes);
                self.outbox.push_events(&mut w.open, resp, max);
            }
        }
    }

    /// Responses waiting to be sent.
    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Whether enough waits to be sent that the stream should take no new batches or
    /// catch-ups.
    pub(crate) fn outbox_full(&self) -> bool {
        self.outbox.is_full()
    }

    pub(crate) fn pop_response(&mut self) -> Option<WatchResponse> {
        self.outbox.pop()
    }

    /// The revision the queue covers (tests).
    #[cfg(test)]
    pub(crate) fn covered(&self) -> i64 {
        self.covered
    }
}

/// Whether any pending response still needs `prev_kv` lookups.
pub(crate) fn needs_prev_kv(pending: &[Pending]) -> bool {
    pending.iter().any(|p| p.prev_kv)
}

/// etcd's `sendFragments`: a response of at least `max` bytes with two or more events is split
/// into several, each as large as possible below `max` (but at least one event), all but the
/// last marked `fragment`.
pub(crate) fn fragments(resp: WatchResponse, max: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut base = resp;
    let events = std::mem::take(&mut base.events);
    base.fragment = true;
    let base_len = base.encoded_len();
    let event_len = |e: &Event| {
        let n = e.encoded_len();
        1 + prost::encoding::encoded_len_varint(n as u64) + n
    };
    let mut out = Vec::new();
    let mut cur = base.clone();
    let mut cur_len = base_len;
    for e in events {
        let n = event_len(&e);
        if !cur.events.is_empty() && cur_len + n >= max {
            out.push(std::mem::replace(&mut cur, base.clone()));
            cur_len = base_len;
        }
        cur_len += n;
        cur.events.push(e);
    }
    cur.fragment = false;
    out.push(cur);
    out
}
