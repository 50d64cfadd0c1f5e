//! A watch stream's responses waiting to be sent, with coalescing of event responses.
//!
//! When the client (or the network) is slower than the writes, one response per watcher and
//! revision piles up: with 1,000 watchers on a key, every put queues 1,000 responses, and
//! each costs a gRPC message to encode, frame and decode. etcd does the same for its synced
//! watchers, and batches only for "victim" watchers whose channel overflowed. Here an event
//! response still waiting in the outbox takes the watcher's next events as well (up to a size
//! cap), so a backed-up stream sends fewer, larger responses; a stream that keeps up sends
//! exactly what it sent before. Several revisions in one response is what etcd sends to
//! unsynced watchers too; clients handle it.
//!
//! Order is kept: events only ever move earlier, into a response of the same watcher, and never
//! across a control response (created, canceled, compacted, progress) queued after it, so a
//! progress notification still follows every event it covers.

use std::collections::VecDeque;

use rustcd_proto::etcdserverpb::WatchResponse;
use rustcd_proto::mvccpb::{Event, KeyValue};

/// Upper bound on the (approximate) event bytes merged into one response, well below gRPC
/// clients' default 4 MiB receive limit (python-etcd3, grpc-java).
pub(crate) const MERGE_BYTES: usize = 256 * 1024;

/// At most this many revisions in one response: etcd's `watchBatchMaxRevs`, its limit when it
/// sends several revisions in one response (to unsynced watchers).
const MERGE_REVISIONS: usize = 1000;

/// The stream takes no new batches or catch-ups while this many (approximate) bytes wait to
/// be sent: a bound on a slow stream's memory that, unlike a count of responses, leaves room
/// for a whole fan-out (one response per watcher) and for coalescing.
pub(crate) const OUTBOX_BYTES: usize = 256 * 1024;

/// What a response costs besides its events (header, ids, allocation).
const RESPONSE_OVERHEAD: usize = 128;

/// A watcher's last event response, while it can still take more events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenResponse {
    /// Position in the stream: responses pushed before it.
    seq: u64,
    /// Approximate event bytes in it.
    bytes: usize,
    /// Revisions in it.
    revisions: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Responses with their approximate size.
    queue: VecDeque<(WatchResponse, usize)>,
    /// Sum of the sizes in `queue`.
    bytes: usize,
    /// Responses popped so far: `queue[i]` has sequence number `popped + i`.
    popped: u64,
    /// Responses with a sequence number below this take no more events.
    barrier: u64,
}

impl Outbox {
    fn next_seq(&self) -> u64 {
        self.popped + self.queue.len() as u64
    }

    fn enqueue(&mut self, resp: WatchResponse, events_bytes: usize) {
        let size = RESPONSE_OVERHEAD + events_bytes;
        self.bytes += size;
        self.queue.push_back((resp, size));
    }

    /// Queues a response that nothing merges into, nor past.
    pub(crate) fn push(&mut self, resp: WatchResponse) {
        let bytes = events_bytes(&resp.events);
        self.enqueue(resp, bytes);
        self.barrier = self.next_seq();
    }

    /// Queues an event response of a watcher whose last one is `open`; merges it into that one
    /// if it is still queued, nothing was queued behind it that must stay behind its events,
    /// and the merged events stay under `max` bytes. `resp` holds one revision's events.
    pub(crate) fn push_events(
        &mut self,
        open: &mut Option<OpenResponse>,
        resp: WatchResponse,
        max: usize,
    ) {
        let bytes = events_bytes(&resp.events);
        if let Some(o) = open.as_mut() {
            if o.seq >= self.popped
                && o.seq >= self.barrier
                && o.bytes + bytes <= max
                && o.revisions < MERGE_REVISIONS
            {
                let (queued, size) = &mut self.queue[(o.seq - self.popped) as usize];
                queued.header = resp.header;
                queued.events.extend(resp.events);
                *size += bytes;
                self.bytes += bytes;
                o.bytes += bytes;
                o.revisions += 1;
                return;
            }
        }
        *open = Some(OpenResponse {
            seq: self.next_seq(),
            bytes,
            revisions: 1,
        });
        self.enqueue(resp, bytes);
    }

    pub(crate) fn pop(&mut self) -> Option<WatchResponse> {
        let (r, size) = self.queue.pop_front()?;
        self.popped += 1;
        self.bytes -= size;
        Some(r)
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the stream should stop taking new work until some responses are sent.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= OUTBOX_BYTES
    }
}

/// Events' size on the wire, roughly (keys and values dominate), without encoding them.
fn events_bytes(events: &[Event]) -> usize {
    let kv = |kv: &Option<KeyValue>| {
        kv.as_ref()
            .map_or(0, |kv| kv.key.len() + kv.value.len() + 32)
    };
    events.iter().map(|e| kv(&e.kv) + kv(&e.prev_kv) + 4).sum()
}
