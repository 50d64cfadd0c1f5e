//! The watch engine against a real store and hub, driven step by step (no gRPC, no timers).

use std::sync::Arc;

use rustcd_mvcc::Store;
use rustcd_proto::etcdserverpb::watch_request::RequestUnion;
use rustcd_proto::etcdserverpb::{
    ResponseHeader, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;

use super::catchup::fill_pending_prev_kv;
use super::hub::{Batch, WatchHub, QUEUE_BATCHES};
use super::stream::{fragments, needs_prev_kv, KeyRange, WatchStream};

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    hub: Arc<WatchHub>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let hub = Arc::new(WatchHub::new(store.current_revision()));
        Env {
            _dir: dir,
            store,
            hub,
        }
    }

    /// One commit of one txn per entry of `txns`, each txn a list of puts (value `Some`) and
    /// deletes (`None`); notifies the hub as apply does. Returns the revision after.
    fn commit(&self, txns: &[&[(&str, Option<&str>)]]) -> i64 {
        let mut b = self.store.begin_batch().unwrap();
        for ops in txns {
            let mut t = b.txn();
            for (k, v) in ops.iter() {
                match v {
                    Some(v) => {
                        t.put(k.as_bytes(), v.as_bytes(), 0).unwrap();
                    }
                    None => {
                        t.delete_range(k.as_bytes(), &[], false).unwrap();
                    }
                }
            }
            t.end();
        }
        let events = b.commit(false).unwrap();
        let rev = self.store.current_revision();
        self.hub.notify(rev, events);
        rev
    }

    fn put(&self, k: &str, v: &str) -> i64 {
        self.commit(&[&[(k, Some(v))]])
    }

    fn compact(&self, rev: i64) {
        let mut b = self.store.begin_batch().unwrap();
        b.compact(rev).unwrap();
        let events = b.commit(false).unwrap();
        self.hub.notify(self.store.current_revision(), events);
    }

    fn stream(&self) -> (WatchStream, mpsc::Receiver<Arc<Batch>>) {
        self.stream_max(usize::MAX)
    }

    fn stream_max(&self, max: usize) -> (WatchStream, mpsc::Receiver<Arc<Batch>>) {
        let header = Arc::new(|revision| ResponseHeader {
            revision,
            ..Default::default()
        });
        let mut ws = WatchStream::new(self.store.clone(), self.hub.clone(), header, max);
        let rx = ws.subscribe();
        (ws, rx)
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            start_revision: start,
            ..Default::default()
        })),
    }
}

fn create_with(f: impl FnOnce(&mut WatchCreateRequest)) -> WatchRequest {
    let mut c = WatchCreateRequest::default();
    f(&mut c);
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn cancel(id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: id,
        })),
    }
}

/// Runs the stream as the service would until nothing is left to do; returns what it sent.
fn drain(
    env: &Env,
    ws: &mut WatchStream,
    rx: &mut mpsc::Receiver<Arc<Batch>>,
) -> Vec<WatchResponse> {
    feed(env, ws, rx);
    std::iter::from_fn(|| ws.pop_response()).collect()
}

/// Runs the stream until nothing is left to do but sending: as a client that does not read.
fn feed(env: &Env, ws: &mut WatchStream, rx: &mut mpsc::Receiver<Arc<Batch>>) {
    loop {
        let mut progressed = false;
        loop {
            match rx.try_recv() {
                Ok(b) => {
                    let mut p = ws.on_batch(&b);
                    if needs_prev_kv(&p) {
                        fill_pending_prev_kv(&env.store, &mut p).unwrap();
                    }
                    ws.push_pending(p);
                    progressed = true;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    *rx = ws.subscribe();
                    progressed = true;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        if let Some(job) = ws.catchup_job() {
            ws.apply_catchup(job.run().unwrap());
            progressed = true;
        }
        ws.answer_progress_request();
        if !progressed {
            break;
        }
    }
}

/// (watch id, type, key, value, mod revision) of every event, in order.
fn events(rs: &[WatchResponse]) -> Vec<(i64, &'static str, String, String, i64)> {
    let mut out = Vec::new();
    for r in rs {
        for e in &r.events {
            let kv = e.kv.as_ref().unwrap();
            let t = if e.r#type == EventType::Delete as i32 {
                "DELETE"
            } else {
                "PUT"
            };
            out.push((
                r.watch_id,
                t,
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.mod_revision,
            ));
        }
    }
    out
}

fn ev(
    id: i64,
    t: &'static str,
    k: &str,
    v: &str,
    rev: i64,
) -> (i64, &'static str, String, String, i64) {
    (id, t, k.to_string(), v.to_string(), rev)
}

#[test]
fn key_ranges_follow_etcd_conventions() {
    assert_eq!(
        KeyRange::from_request(Vec::new(), &[]).unwrap(),
        KeyRange::Key(vec![0])
    );
    assert_eq!(
        KeyRange::from_request(b"a".to_vec(), &[0]).unwrap(),
        KeyRange::From(b"a".to_vec())
    );
    assert_eq!(
        KeyRange::from_request(b"b".to_vec(), b"a"),
        Err("mvcc: watcher range is empty")
    );
    assert_eq!(
        KeyRange::from_request(b"a".to_vec(), b"a"),
        Err("mvcc: watcher range is empty")
    );
    let r = KeyRange::from_request(b"a".to_vec(), b"c").unwrap();
    assert!(r.contains(b"a") && r.contains(b"bzz") && !r.contains(b"c"));
    let ranges = [
        KeyRange::Key(b"m".to_vec()),
        KeyRange::Range(b"b".to_vec(), b"d".to_vec()),
    ];
    assert_eq!(
        KeyRange::covering(ranges.iter()),
        (b"b".to_vec(), b"m\0".to_vec())
    );
    let ranges = [KeyRange::Key(b"m".to_vec()), KeyRange::From(b"x".to_vec())];
    assert_eq!(KeyRange::covering(ranges.iter()), (b"m".to_vec(), vec![0]));
    let ranges = [KeyRange::Key(b"m".to_vec())];
    assert_eq!(KeyRange::covering(ranges.iter()), (b"m".to_vec(), vec![]));
}

#[test]
fn live_events_by_key_prefix_from_key_and_filters() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("a", "", 0));
    ws.handle(create("b", "c", 0));
    ws.handle(create("c", "\0", 0));
    ws.handle(create_with(|c| {
        c.key = b"a".to_vec();
        c.filters = vec![0]; // NOPUT
    }));
    let created = drain(&env, &mut ws, &mut rx);
    assert_eq!(created.len(), 4);
    assert!(created.iter().all(|r| r.created && !r.canceled));
    assert_eq!(
        created.iter().map(|r| r.watch_id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(created
        .iter()
        .all(|r| r.header.as_ref().unwrap().revision == 1));

    // A client that keeps up: it reads after every commit.
    let mut rs = Vec::new();
    env.put("a", "1"); // 2
    rs.extend(drain(&env, &mut ws, &mut rx));
    env.put("b/1", "x"); // 3
    rs.extend(drain(&env, &mut ws, &mut rx));
    env.commit(&[&[("a", Some("2")), ("d", Some("4"))]]); // 4: one txn
    rs.extend(drain(&env, &mut ws, &mut rx));
    env.commit(&[&[("a", None)]]); // 5
    rs.extend(drain(&env, &mut ws, &mut rx));
    env.put("ab", "no"); // 6
    rs.extend(drain(&env, &mut ws, &mut rx));
    assert_eq!(
        events(&rs),
        vec![
            ev(0, "PUT", "a", "1", 2),
            ev(1, "PUT", "b/1", "x", 3),
            ev(0, "PUT", "a", "2", 4),
            ev(2, "PUT", "d", "4", 4),
            ev(0, "DELETE", "a", "", 5),
            ev(3, "DELETE", "a", "", 5),
        ]
    );
    // Read as they come: one response per watcher and revision; header = the revision.
    for r in &rs {
        let rev = r.header.as_ref().unwrap().revision;
        assert!(r
            .events
            .iter()
            .all(|e| e.kv.as_ref().unwrap().mod_revision == rev));
    }
}

#[test]
fn one_txn_arrives_in_one_response_even_across_batches() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "\0", 0));
    drain(&env, &mut ws, &mut rx);
    // Two txns in one apply batch, each writing two keys.
    env.commit(&[
        &[("k1", Some("a")), ("k2", Some("b"))],
        &[("k3", Some("c")), ("k1", None)],
    ]);
    let mut pending = ws.on_batch(&rx.try_recv().unwrap());
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.revision, p.events.len()))
            .collect::<Vec<_>>(),
        vec![(2, 2), (3, 2)],
        "one pending response per txn"
    );
    // Queued together, they go out together, header at the newer revision.
    ws.push_pending(std::mem::take(&mut pending));
    let rs = std::iter::from_fn(|| ws.pop_response()).collect::<Vec<_>>();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].events.len(), 4);
    assert_eq!(rs[0].header.as_ref().unwrap().revision, 3);
}

#[test]
fn history_replay_then_live_without_gap_or_duplicate() {
    let env = Env::new();
    for i in 0..2500 {
        env.put(&format!("k{}", i % 7), &format!("v{i}"));
    }
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "l", 2));
    // Writes race the catch-up: a job is taken, more is committed (and queued), then the job's
    // result arrives, then the queue is drained.
    let mut all = Vec::new();
    let mut i = 2500;
    loop {
        let job = ws.catchup_job();
        env.put(&format!("k{}", i % 7), &format!("v{i}"));
        i += 1;
        if let Some(job) = job {
            ws.apply_catchup(job.run().unwrap());
        }
        while let Ok(b) = rx.try_recv() {
            let p = ws.on_batch(&b);
            ws.push_pending(p);
        }
        all.extend(std::iter::from_fn(|| ws.pop_response()));
        if ws.catchup_job().is_none() {
            break;
        }
        assert!(i < 2600, "catch-up does not converge");
    }
    env.put("k0", "last");
    all.extend(drain(&env, &mut ws, &mut rx));
    let got: Vec<i64> = events(&all).iter().map(|e| e.4).collect();
    let want: Vec<i64> = (2..=env.store.current_revision()).collect();
    assert_eq!(got, want);
    assert_eq!(events(&all).last().unwrap().3, "last");
}

#[test]
fn a_full_queue_drops_the_stream_which_catches_up_and_rejoins() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    let (mut other, mut other_rx) = env.stream();
    ws.handle(create("", "\0", 0));
    other.handle(create("", "\0", 0));
    drain(&env, &mut ws, &mut rx);
    drain(&env, &mut other, &mut other_rx);
    let mut got = Vec::new();
    for i in 0..(QUEUE_BATCHES * 3) {
        env.put(&format!("k{i}"), "v");
        if i % 10 == 0 {
            // `other` keeps up; `ws` is not read at all.
            got.extend(drain(&env, &mut other, &mut other_rx));
        }
    }
    assert_eq!(env.hub.live_streams(), 1, "the slow stream was dropped");
    got.extend(drain(&env, &mut other, &mut other_rx));
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(env.hub.live_streams(), 2, "the slow stream rejoined");
    let want: Vec<i64> = (2..=env.store.current_revision()).collect();
    let revs = |rs: &[WatchResponse]| events(rs).iter().map(|e| e.4).collect::<Vec<_>>();
    assert_eq!(revs(&rs), want);
    assert_eq!(revs(&got), want);
    // And it is live again.
    env.put("after", "v");
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(events(&rs).len(), 1);
    assert_eq!(ws.covered(), env.hub.notified_revision());
}

#[test]
fn a_compacted_start_revision_is_created_then_canceled() {
    let env = Env::new();
    for i in 0..10 {
        env.put("k", &i.to_string());
    }
    env.compact(6);
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "", 3));
    ws.handle(create("k", "", 6));
    let mut rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(rs.len(), 4, "{rs:?}");
    assert!(rs[0].created && !rs[0].canceled && rs[0].watch_id == 0);
    assert!(rs[1].canceled && rs[1].watch_id == 0);
    assert_eq!(rs[1].compact_revision, 6);
    assert_eq!(rs[1].header.as_ref().unwrap().revision, 0);
    assert!(rs[2].created && rs[2].watch_id == 1);
    // Watch 1 gets what compaction kept at 6 onwards.
    env.put("k", "x");
    rs.extend(drain(&env, &mut ws, &mut rx));
    assert_eq!(
        events(&rs).iter().map(|e| e.4).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10, 11, 12]
    );
    // The compacted watch's id stays taken until the client cancels it.
    ws.handle(create_with(|c| {
        c.key = b"k".to_vec();
        c.watch_id = 5;
    }));
    ws.handle(create("k", "", 0));
    ws.handle(cancel(0));
    ws.handle(cancel(0));
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(rs.len(), 3, "{rs:?}");
    assert_eq!((rs[0].watch_id, rs[0].created), (5, true));
    assert_eq!((rs[1].watch_id, rs[1].created), (2, true));
    assert_eq!((rs[2].watch_id, rs[2].canceled), (0, true));
}

#[test]
fn an_unsynced_watcher_overtaken_by_compaction_is_canceled() {
    let env = Env::new();
    for i in 0..50 {
        env.put("k", &i.to_string());
    }
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "", 2));
    let job = ws.catchup_job().unwrap();
    env.compact(40);
    ws.apply_catchup(job.run().unwrap());
    let rs = drain(&env, &mut ws, &mut rx);
    let last = rs.last().unwrap();
    assert!(last.canceled, "{rs:?}");
    assert_eq!(last.compact_revision, 40);
}

#[test]
fn watch_ids_duplicates_and_bad_ranges() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create_with(|c| {
        c.key = b"a".to_vec();
        c.watch_id = 1;
    }));
    ws.handle(create("a", "", 0)); // 0
    ws.handle(create("a", "", 0)); // 2 (1 is taken)
    ws.handle(create_with(|c| {
        c.key = b"a".to_vec();
        c.watch_id = 2;
    }));
    ws.handle(create("b", "a", 0));
    ws.handle(cancel(7));
    ws.handle(cancel(1));
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(
        rs.iter()
            .map(|r| (r.watch_id, r.created, r.canceled, r.cancel_reason.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, true, false, ""),
            (0, true, false, ""),
            (2, true, false, ""),
            (
                -1,
                true,
                true,
                "mvcc: duplicate watch ID provided on the WatchStream"
            ),
            (-1, true, true, "mvcc: watcher range is empty"),
            (1, false, true, ""),
        ]
    );
}

#[test]
fn prev_kv_for_live_and_history() {
    let env = Env::new();
    env.put("k", "1"); // 2
    env.put("k", "2"); // 3
    let (mut ws, mut rx) = env.stream();
    ws.handle(create_with(|c| {
        c.key = b"k".to_vec();
        c.prev_kv = true;
        c.start_revision = 2;
    }));
    env.commit(&[&[("k", None)]]); // 4
    env.put("k", "3"); // 5
    let rs = drain(&env, &mut ws, &mut rx);
    let prev: Vec<Option<String>> = rs
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            e.prev_kv
                .as_ref()
                .map(|p| String::from_utf8_lossy(&p.value).into_owned())
        })
        .collect();
    assert_eq!(prev, vec![None, Some("1".into()), Some("2".into()), None]);
    env.put("k", "4"); // live
    let rs = drain(&env, &mut ws, &mut rx);
    let p = rs[0].events[0].prev_kv.as_ref().unwrap();
    assert_eq!((p.value.as_slice(), p.mod_revision), (&b"3"[..], 5));
}

#[test]
fn a_future_start_revision_waits_and_never_returns_older_events() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "", 5));
    for i in 0..6 {
        env.put("k", &i.to_string());
    }
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(
        events(&rs).iter().map(|e| e.4).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
}

#[test]
fn progress_request_waits_until_every_watcher_is_synced() {
    let env = Env::new();
    for i in 0..5 {
        env.put("k", &i.to_string());
    }
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "", 2));
    ws.handle(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    });
    ws.answer_progress_request();
    assert_eq!(ws.outbox_len(), 1, "only the created response so far");
    let rs = drain(&env, &mut ws, &mut rx);
    let last = rs.last().unwrap();
    assert_eq!(last.watch_id, -1);
    assert!(last.events.is_empty());
    assert_eq!(last.header.as_ref().unwrap().revision, 6);
    assert_eq!(events(&rs).len(), 5);
}

#[test]
fn progress_notify_only_for_idle_synced_watchers() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create_with(|c| {
        c.key = b"k".to_vec();
        c.progress_notify = true;
    }));
    drain(&env, &mut ws, &mut rx);
    ws.progress_tick();
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(rs.len(), 1);
    assert_eq!((rs[0].watch_id, rs[0].events.len()), (0, 0));
    env.put("k", "v");
    drain(&env, &mut ws, &mut rx);
    ws.progress_tick(); // events were sent since the last tick: elided
    assert_eq!(drain(&env, &mut ws, &mut rx).len(), 0);
    ws.progress_tick();
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(rs[0].header.as_ref().unwrap().revision, 2);
}

#[test]
fn fragments_split_at_the_limit_and_keep_every_event() {
    let big = |i: usize| Event {
        r#type: EventType::Put as i32,
        kv: Some(KeyValue {
            key: format!("k{i}").into_bytes(),
            value: vec![b'x'; 1000],
            mod_revision: 9,
            ..Default::default()
        }),
        prev_kv: None,
    };
    let resp = WatchResponse {
        header: Some(ResponseHeader {
            revision: 9,
            ..Default::default()
        }),
        watch_id: 3,
        events: (0..10).map(big).collect(),
        ..Default::default()
    };
    use prost::Message as _;
    let parts = fragments(resp.clone(), 3500);
    assert_eq!(parts.len(), 4);
    assert!(parts[..3]
        .iter()
        .all(|p| p.fragment && p.encoded_len() < 3500));
    assert!(!parts[3].fragment);
    let all: Vec<Event> = parts.iter().flat_map(|p| p.events.clone()).collect();
    assert_eq!(all, resp.events);
    assert_eq!(fragments(resp.clone(), 1 << 20), vec![resp.clone()]);
    // A single event is never split, however large.
    let mut one = resp;
    one.events.truncate(1);
    assert_eq!(fragments(one.clone(), 10), vec![one]);
}

#[test]
fn hub_after_restore_makes_streams_catch_up() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("k", "", 0));
    drain(&env, &mut ws, &mut rx);
    // Writes that reach the store without notifications (as a snapshot install would).
    let mut b = env.store.begin_batch().unwrap();
    b.txn().put(b"k", b"snap", 0).unwrap();
    b.commit(false).unwrap();
    env.hub.restored(env.store.current_revision());
    let rs = drain(&env, &mut ws, &mut rx);
    assert_eq!(events(&rs), vec![ev(0, "PUT", "k", "snap", 2)]);
}

#[test]
fn queued_responses_of_a_watcher_coalesce_but_never_past_a_control_response() {
    let env = Env::new();
    let (mut ws, mut rx) = env.stream();
    ws.handle(create("a", "", 0));
    ws.handle(create("b", "", 0));
    ws.handle(create_with(|c| {
        c.key = b"f".to_vec();
        c.fragment = true;
    }));
    assert_eq!(
        drain(&env, &mut ws, &mut rx).len(),
        3,
        "three created responses"
    );

    // Nothing sent meanwhile: each watcher's events share one response, header at the newest.
    let r1 = env.put("a", "1");
    let r2 = env.put("b", "1");
    let r3 = env.put("a", "2");
    let r4 = env.put("f", "1");
    let r5 = env.put("f", "2");
    let rs = drain(&env, &mut ws, &mut rx);
    let ids: Vec<i64> = rs.iter().map(|r| r.watch_id).collect();
    assert_eq!(
        ids,
        vec![0, 1, 2, 2],
        "fragmenting watchers keep one response per revision"
    );
    assert_eq!(rs[0].header.as_ref().unwrap().revision, r3);
    assert_eq!(
        events(&rs),
        vec![
            ev(0, "PUT", "a", "1", r1),
            ev(0, "PUT", "a", "2", r3),
            ev(1, "PUT", "b", "1", r2),
            ev(2, "PUT", "f", "1", r4),
            ev(2, "PUT", "f", "2", r5),
        ]
    );

    // A control response queued in between keeps the later events behind it.
    let r6 = env.put("a", "3");
    feed(&env, &mut ws, &mut rx);
    ws.handle(cancel(1));
    let r7 = env.put("a", "4");
    let rs = drain(&env, &mut ws, &mut rx);
    let shape: Vec<(i64, bool, usize)> = rs
        .iter()
        .map(|r| (r.watch_id, r.canceled, r.events.len()))
        .collect();
    assert_eq!(shape, vec![(0, false, 1), (1, true, 0), (0, false, 1)]);
    assert_eq!(
        events(&rs),
        vec![ev(0, "PUT", "a", "3", r6), ev(0, "PUT", "a", "4", r7)]
    );

    // A response already taken for sending takes no more events.
    let r8 = env.put("a", "5");
    feed(&env, &mut ws, &mut rx);
    let first = ws.pop_response().unwrap();
    let r9 = env.put("a", "6");
    let rest = drain(&env, &mut ws, &mut rx);
    assert_eq!(events(&[first]), vec![ev(0, "PUT", "a", "5", r8)]);
    assert_eq!(events(&rest), vec![ev(0, "PUT", "a", "6", r9)]);
}
