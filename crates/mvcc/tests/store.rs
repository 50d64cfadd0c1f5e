//! Behaviour of the store on disk: revisions, versions, txns, ranges, compaction, events,
//! persistence and error handling.

mod common;

use common::{all, keys, kv, req, TestStore};
use rustcd_mvcc::{Error, RowCounts, Store};
use rustcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rustcd_proto::etcdserverpb::RangeRequest;
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};

fn put_event(kv: KeyValue) -> Event {
    Event {
        r#type: EventType::Put as i32,
        kv: Some(kv),
        prev_kv: None,
    }
}

fn delete_event(key: &str, rev: i64) -> Event {
    Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue {
            key: key.as_bytes().to_vec(),
            mod_revision: rev,
            ..Default::default()
        }),
        prev_kv: None,
    }
}

#[test]
fn new_store_is_at_revision_one() {
    let t = TestStore::new();
    assert_eq!(t.store.current_revision(), 1);
    assert_eq!(t.store.compact_revision(), 0);
    assert_eq!(t.store.consistent_index(), (0, 0));
    let r = t.store.read().unwrap();
    assert_eq!(r.revision(), 1);
    assert_eq!(r.compact_revision(), 0);
    let resp = r.range(&all()).unwrap();
    assert_eq!(resp.count, 0);
    assert!(resp.kvs.is_empty());
    assert!(!resp.more);
    assert!(resp.header.is_none());
    assert_eq!(t.store.get_meta("anything").unwrap(), None);
}

#[test]
fn versions_across_delete_and_recreate() {
    let t = TestStore::new();
    assert_eq!(t.put("foo", "a"), 2);
    assert_eq!(t.get("foo"), Some(kv("foo", "a", 2, 2, 1, 0)));
    assert_eq!(t.put_lease("foo", "b", 7), 3);
    assert_eq!(t.get("foo"), Some(kv("foo", "b", 2, 3, 2, 7)));
    let deleted = t.delete("foo", "");
    assert_eq!(deleted, vec![kv("foo", "b", 2, 3, 2, 7)]);
    assert_eq!(t.store.current_revision(), 4);
    assert_eq!(t.get("foo"), None);
    assert_eq!(t.put("foo", "c"), 5);
    assert_eq!(t.get("foo"), Some(kv("foo", "c", 5, 5, 1, 0)));
    assert_eq!(t.put("foo", "d"), 6);
    assert_eq!(t.get("foo"), Some(kv("foo", "d", 5, 6, 2, 0)));

    // History.
    assert_eq!(t.get_at("foo", 1).unwrap(), None);
    assert_eq!(
        t.get_at("foo", 2).unwrap(),
        Some(kv("foo", "a", 2, 2, 1, 0))
    );
    assert_eq!(
        t.get_at("foo", 3).unwrap(),
        Some(kv("foo", "b", 2, 3, 2, 7))
    );
    assert_eq!(t.get_at("foo", 4).unwrap(), None);
    assert_eq!(
        t.get_at("foo", 5).unwrap(),
        Some(kv("foo", "c", 5, 5, 1, 0))
    );
    assert_eq!(t.get_at("foo", 7), Err(Error::FutureRev));
    assert_eq!(
        t.get_at("foo", 0).unwrap(),
        Some(kv("foo", "d", 5, 6, 2, 0))
    );
    assert_eq!(
        t.get_at("foo", -3).unwrap(),
        Some(kv("foo", "d", 5, 6, 2, 0))
    );
}

#[test]
fn put_returns_previous_kv() {
    let t = TestStore::new();
    let mut b = t.batch();
    let mut tx = b.txn();
    assert_eq!(tx.put(b"k", b"1", 0).unwrap(), None);
    tx.end();
    let mut tx = b.txn();
    assert_eq!(
        tx.put(b"k", b"2", 5).unwrap(),
        // Without its value: that costs a lookup per put (see TxnWrite::put).
        Some(kv("k", "", 2, 2, 1, 0))
    );
    tx.end();
    b.commit(true).unwrap();
}

#[test]
fn txn_writes_share_one_revision_with_sub_revisions() {
    let t = TestStore::new();
    t.put("a", "0");
    let mut b = t.batch();
    assert_eq!(b.revision(), 2);
    let mut tx = b.txn();
    // Before writing, a txn reads at the batch revision.
    assert_eq!(tx.range(&req("a", "")).unwrap().kvs.len(), 1);
    tx.put(b"x", b"1", 0).unwrap();
    tx.put(b"y", b"2", 0).unwrap();
    // Reads inside the txn see its own writes.
    let seen = tx.range(&req("x", "z")).unwrap();
    assert_eq!(keys(&seen), ["x", "y"]);
    // A second put of the same key in the txn bumps the version, keeps create.
    tx.put(b"x", b"3", 0).unwrap();
    let x = tx.range(&req("x", "")).unwrap().kvs.remove(0);
    assert_eq!(x, kv("x", "3", 3, 3, 2, 0));
    // Reading at the txn's own revision works, beyond it is a future revision.
    let mut q = req("x", "");
    q.revision = 3;
    assert_eq!(tx.range(&q).unwrap().kvs.len(), 1);
    q.revision = 4;
    assert_eq!(tx.range(&q), Err(Error::FutureRev));
    // Delete then re-create within the txn: the key starts over.
    let d = tx.delete_range(b"a", b"", true).unwrap();
    assert_eq!(d, vec![kv("a", "0", 2, 2, 1, 0)]);
    assert!(tx.range(&req("a", "")).unwrap().kvs.is_empty());
    tx.put(b"a", b"new", 0).unwrap();
    assert_eq!(tx.end(), 3);
    assert_eq!(b.revision(), 3);

    // A second txn in the same batch sees the first and writes at the next revision.
    let mut tx = b.txn();
    assert_eq!(
        tx.range(&req("x", "")).unwrap().kvs[0],
        kv("x", "3", 3, 3, 2, 0)
    );
    tx.put(b"x", b"4", 0).unwrap();
    assert_eq!(tx.end(), 4);

    // Readers do not see the batch before it commits.
    assert_eq!(t.store.read().unwrap().revision(), 2);
    assert!(t.get("x").is_none());

    let events = b.commit(true).unwrap();
    assert_eq!(
        events,
        vec![
            put_event(kv("x", "1", 3, 3, 1, 0)),
            put_event(kv("y", "2", 3, 3, 1, 0)),
            put_event(kv("x", "3", 3, 3, 2, 0)),
            delete_event("a", 3),
            put_event(kv("a", "new", 3, 3, 1, 0)),
            put_event(kv("x", "4", 3, 4, 3, 0)),
        ]
    );
    assert_eq!(t.store.current_revision(), 4);
    assert_eq!(t.get("a"), Some(kv("a", "new", 3, 3, 1, 0)));
    assert_eq!(t.get_at("x", 3).unwrap(), Some(kv("x", "3", 3, 3, 2, 0)));

    // The history at revision 3 shows each write with its sub revision order.
    let ev = t
        .store
        .read()
        .unwrap()
        .events_since(3, &[0], &[0], 0)
        .unwrap();
    assert_eq!(ev, events);
}

#[test]
fn writing_nothing_keeps_the_revision() {
    let t = TestStore::new();
    t.put("a", "1");
    let mut b = t.batch();
    let mut tx = b.txn();
    assert!(tx.delete_range(b"zzz", b"", false).unwrap().is_empty());
    assert!(tx.delete_range(b"b", b"c", false).unwrap().is_empty());
    assert_eq!(tx.end(), 2);
    let tx = b.txn();
    assert_eq!(tx.range(&all()).unwrap().count, 1);
    drop(tx);
    assert_eq!(b.revision(), 2);
    assert!(b.commit(true).unwrap().is_empty());
    assert_eq!(t.store.current_revision(), 2);
    // Deleting an already deleted key writes nothing either.
    t.delete("a", "");
    assert_eq!(t.store.current_revision(), 3);
    assert!(t.delete("a", "").is_empty());
    assert_eq!(t.store.current_revision(), 3);
}

#[test]
fn dropping_a_txn_ends_it() {
    let t = TestStore::new();
    let mut b = t.batch();
    {
        let mut tx = b.txn();
        tx.put(b"a", b"1", 0).unwrap();
    }
    assert_eq!(b.revision(), 2);
    let mut tx = b.txn();
    tx.put(b"b", b"1", 0).unwrap();
    assert_eq!(tx.end(), 3);
    b.commit(false).unwrap();
    assert_eq!(t.store.current_revision(), 3);
}

#[test]
fn delete_range_forms() {
    let t = TestStore::new();
    for k in ["a", "b", "c", "d", "e"] {
        t.put(k, k);
    }
    // [b, d)
    let d = t.delete("b", "d");
    assert_eq!(
        d.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        [b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        t.store.current_revision(),
        7,
        "one revision for the whole range"
    );
    // "\0" = every key >= d.
    let d = t.delete("d", "\0");
    assert_eq!(d.len(), 2);
    assert_eq!(keys(&t.range(&all()).unwrap()), ["a"]);
    let ev = t
        .store
        .read()
        .unwrap()
        .events_since(8, b"a", b"\0", 0)
        .unwrap();
    assert_eq!(ev, vec![delete_event("d", 8), delete_event("e", 8)]);
}

fn sample() -> TestStore {
    // Key   create mod version value
    // a     2      9   3       "z"
    // b     3      3   1       "y"
    // c     4      7   2       "x"
    // d     5      5   1       "x"
    // e (deleted at 10)
    // f     11     11  1       "w"
    let t = TestStore::new();
    t.put("a", "1"); // 2
    t.put("b", "y"); // 3
    t.put("c", "1"); // 4
    t.put("d", "x"); // 5
    t.put("e", "1"); // 6
    t.put("c", "x"); // 7
    t.put("a", "2"); // 8
    t.put("a", "z"); // 9
    t.delete("e", ""); // 10
    t.put("f", "w"); // 11
    assert_eq!(t.store.current_revision(), 11);
    t
}

fn q(f: impl FnOnce(&mut RangeRequest)) -> RangeRequest {
    let mut r = req("a", "z");
    f(&mut r);
    r
}

#[test]
fn range_key_forms() {
    let t = sample();
    assert_eq!(keys(&t.range(&req("c", "")).unwrap()), ["c"]);
    assert_eq!(keys(&t.range(&req("e", "")).unwrap()), Vec::<String>::new());
    assert_eq!(keys(&t.range(&req("b", "d")).unwrap()), ["b", "c"]);
    assert_eq!(keys(&t.range(&req("c", "\0")).unwrap()), ["c", "d", "f"]);
    assert_eq!(keys(&t.range(&all()).unwrap()), ["a", "b", "c", "d", "f"]);
    // range_end <= key: nothing.
    assert_eq!(t.range(&req("d", "b")).unwrap().count, 0);
    assert_eq!(t.range(&req("d", "d")).unwrap().count, 0);
    // Prefix-style range.
    t.put("ca", "1");
    t.put("cb", "1");
    assert_eq!(keys(&t.range(&req("c", "d")).unwrap()), ["c", "ca", "cb"]);
    assert_eq!(keys(&t.range(&req("ca", "cb")).unwrap()), ["ca"]);
}

#[test]
fn range_at_past_revisions() {
    let t = sample();
    let at = |rev| {
        let mut r = all();
        r.revision = rev;
        t.range(&r)
    };
    assert_eq!(keys(&at(1).unwrap()), Vec::<String>::new());
    assert_eq!(keys(&at(6).unwrap()), ["a", "b", "c", "d", "e"]);
    assert_eq!(at(6).unwrap().kvs[2], kv("c", "1", 4, 4, 1, 0));
    assert_eq!(keys(&at(10).unwrap()), ["a", "b", "c", "d"]);
    assert_eq!(at(8).unwrap().kvs[0], kv("a", "2", 2, 8, 2, 0));
    assert_eq!(at(12), Err(Error::FutureRev));
}

#[test]
fn range_limit_count_more() {
    let t = sample();
    let r = t.range(&q(|r| r.limit = 2)).unwrap();
    assert_eq!(keys(&r), ["a", "b"]);
    assert_eq!(r.count, 5);
    assert!(r.more);
    let r = t.range(&q(|r| r.limit = 5)).unwrap();
    assert_eq!(r.kvs.len(), 5);
    assert!(!r.more);
    let r = t.range(&q(|r| r.limit = -1)).unwrap();
    assert_eq!(r.kvs.len(), 5);
    assert!(!r.more);
    let r = t.range(&q(|r| r.count_only = true)).unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 5);
    assert!(!r.more);
    let r = t
        .range(&q(|r| {
            r.count_only = true;
            r.limit = 1
        }))
        .unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 5);
    assert!(!r.more, "count_only never reports more");
    let r = t.range(&q(|r| r.keys_only = true)).unwrap();
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(r.kvs[0], kv("a", "", 2, 9, 3, 0));
}

#[test]
fn range_filters_apply_after_count() {
    let t = sample();
    let r = t.range(&q(|r| r.min_mod_revision = 7)).unwrap();
    assert_eq!(keys(&r), ["a", "c", "f"]);
    assert_eq!(r.count, 5, "count is taken before the filters");
    let r = t.range(&q(|r| r.max_mod_revision = 5)).unwrap();
    assert_eq!(keys(&r), ["b", "d"]);
    let r = t.range(&q(|r| r.min_create_revision = 4)).unwrap();
    assert_eq!(keys(&r), ["c", "d", "f"]);
    let r = t.range(&q(|r| r.max_create_revision = 3)).unwrap();
    assert_eq!(keys(&r), ["a", "b"]);
    let r = t
        .range(&q(|r| {
            r.min_create_revision = 3;
            r.max_create_revision = 5;
            r.min_mod_revision = 4;
        }))
        .unwrap();
    assert_eq!(keys(&r), ["c", "d"]);
    // With a filter everything is fetched first, then truncated to the limit.
    let r = t
        .range(&q(|r| {
            r.min_mod_revision = 5;
            r.limit = 2;
        }))
        .unwrap();
    assert_eq!(keys(&r), ["a", "c"]);
    assert!(r.more);
    assert_eq!(r.count, 5);
    let r = t
        .range(&q(|r| {
            r.min_mod_revision = 9;
            r.limit = 2;
        }))
        .unwrap();
    assert_eq!(keys(&r), ["a", "f"]);
    assert!(!r.more);
}

#[test]
fn range_sorting() {
    let t = sample();
    let sorted = |order: SortOrder, target: SortTarget, limit: i64| {
        keys(
            &t.range(&q(|r| {
                r.sort_order = order as i32;
                r.sort_target = target as i32;
                r.limit = limit;
            }))
            .unwrap(),
        )
    };
    use SortOrder::*;
    use SortTarget::*;
    assert_eq!(sorted(Ascend, Key, 0), ["a", "b", "c", "d", "f"]);
    assert_eq!(sorted(Descend, Key, 0), ["f", "d", "c", "b", "a"]);
    assert_eq!(sorted(Descend, Key, 2), ["f", "d"]);
    assert_eq!(sorted(None, Key, 2), ["a", "b"]);
    // Ties keep key order, descending too.
    assert_eq!(sorted(Ascend, Version, 0), ["b", "d", "f", "c", "a"]);
    assert_eq!(sorted(Descend, Version, 0), ["a", "c", "b", "d", "f"]);
    assert_eq!(sorted(Ascend, Create, 0), ["a", "b", "c", "d", "f"]);
    assert_eq!(sorted(Descend, Create, 0), ["f", "d", "c", "b", "a"]);
    assert_eq!(sorted(Ascend, Mod, 0), ["b", "d", "c", "a", "f"]);
    assert_eq!(sorted(Descend, Mod, 3), ["f", "a", "c"]);
    assert_eq!(sorted(Ascend, Value, 0), ["f", "c", "d", "b", "a"]);
    assert_eq!(sorted(Descend, Value, 0), ["a", "b", "c", "d", "f"]);
    // Order NONE with a target other than KEY sorts ascending...
    assert_eq!(sorted(None, Mod, 0), ["b", "d", "c", "a", "f"]);
    // ...but, as in etcd, only the first limit+1 keys (by key) are fetched and sorted.
    let r = t
        .range(&q(|r| {
            r.sort_order = None as i32;
            r.sort_target = Mod as i32;
            r.limit = 2;
        }))
        .unwrap();
    assert_eq!(keys(&r), ["b", "c"]);
    assert!(r.more);
    // With an explicit order everything is fetched before the sort.
    let r = t
        .range(&q(|r| {
            r.sort_order = Ascend as i32;
            r.sort_target = Mod as i32;
            r.limit = 2;
        }))
        .unwrap();
    assert_eq!(keys(&r), ["b", "d"]);
    assert!(r.more);
    assert_eq!(r.count, 5);
}

#[test]
fn compaction_errors_and_reads() {
    let t = sample();
    assert_eq!(t.compact(12), Err(Error::FutureRev));
    t.compact(7).unwrap();
    assert_eq!(t.store.compact_revision(), 7);
    assert_eq!(t.compact(7), Err(Error::Compacted));
    assert_eq!(t.compact(3), Err(Error::Compacted));
    assert_eq!(t.get_at("a", 6), Err(Error::Compacted));
    let r = t.store.read().unwrap();
    assert_eq!(r.compact_revision(), 7);
    assert_eq!(r.events_since(6, &[0], &[0], 0), Err(Error::Compacted));
    // At the compact revision itself everything is still readable.
    let mut q7 = all();
    q7.revision = 7;
    let at7 = r.range(&q7).unwrap();
    assert_eq!(keys(&at7), ["a", "b", "c", "d", "e"]);
    assert_eq!(at7.kvs[0], kv("a", "1", 2, 2, 1, 0));
    assert_eq!(at7.kvs[2], kv("c", "x", 4, 7, 2, 0));
    // And later revisions are unaffected.
    let mut q9 = all();
    q9.revision = 9;
    assert_eq!(r.range(&q9).unwrap().kvs[0], kv("a", "z", 2, 9, 3, 0));
    assert_eq!(keys(&r.range(&all()).unwrap()), ["a", "b", "c", "d", "f"]);
    // Compacting to the current revision.
    t.compact(11).unwrap();
    assert_eq!(t.get_at("a", 10), Err(Error::Compacted));
    assert_eq!(keys(&t.range(&all()).unwrap()), ["a", "b", "c", "d", "f"]);
}

#[test]
fn compaction_of_a_new_store_accepts_zero_once() {
    let t = TestStore::new();
    t.compact(0).unwrap();
    assert_eq!(t.store.compact_revision(), 0);
    assert_eq!(t.compact(0), Err(Error::Compacted));
    assert_eq!(t.compact(2), Err(Error::FutureRev));
    t.compact(1).unwrap();
    assert_eq!(t.store.compact_revision(), 1);
}

#[test]
fn compaction_removes_rows() {
    let t = TestStore::new();
    for i in 0..10 {
        t.put("a", &i.to_string()); // 2..=11
    }
    t.put("b", "1"); // 12
    t.delete("b", ""); // 13
    t.put("c", "1"); // 14
    t.delete("c", ""); // 15
    t.put("c", "2"); // 16
    let rows = |t: &TestStore| t.store.read().unwrap().row_counts().unwrap();
    assert_eq!(rows(&t), RowCounts { kv: 15, rev: 15 });

    t.compact(5).unwrap();
    // a keeps its version at 5 and the 6 after it.
    assert_eq!(rows(&t), RowCounts { kv: 12, rev: 12 });
    t.compact(13).unwrap();
    // a: one row (11); b: put and tombstone gone; c: all three rows above 13 stay.
    assert_eq!(rows(&t), RowCounts { kv: 4, rev: 4 });
    t.compact(16).unwrap();
    // a: 11; c: 16.
    assert_eq!(rows(&t), RowCounts { kv: 2, rev: 2 });
    let r = t.store.read().unwrap();
    assert_eq!(
        r.range(&all()).unwrap().kvs,
        vec![kv("a", "9", 2, 11, 10, 0), kv("c", "2", 16, 16, 1, 0)]
    );
    // History from the compact revision on: only what survived.
    let ev = r.events_since(16, &[0], &[0], 0).unwrap();
    assert_eq!(ev, vec![put_event(kv("c", "2", 16, 16, 1, 0))]);
    // Writes after compaction continue the version chain.
    drop(r);
    t.put("a", "x");
    assert_eq!(t.get("a"), Some(kv("a", "x", 2, 17, 11, 0)));
}

#[test]
fn compaction_within_a_batch() {
    let t = TestStore::new();
    let mut b = t.batch();
    for i in 0..3 {
        let mut tx = b.txn();
        tx.put(b"k", i.to_string().as_bytes(), 0).unwrap();
        tx.end();
    }
    assert_eq!(b.revision(), 4);
    b.compact(3).unwrap();
    assert_eq!(b.compact_revision(), 3);
    assert_eq!(b.compact(3), Err(Error::Compacted));
    let tx = b.txn();
    let mut q = req("k", "");
    q.revision = 2;
    assert_eq!(tx.range(&q), Err(Error::Compacted));
    q.revision = 3;
    assert_eq!(tx.range(&q).unwrap().kvs[0].value, b"1");
    drop(tx);
    b.commit(true).unwrap();
    assert_eq!(t.store.compact_revision(), 3);
    assert_eq!(
        t.store.read().unwrap().row_counts().unwrap(),
        RowCounts { kv: 2, rev: 2 }
    );
}

#[test]
fn events_since_filters_and_limits() {
    let t = TestStore::new();
    let mut b = t.batch();
    let mut tx = b.txn();
    tx.put(b"a", b"1", 0).unwrap();
    tx.put(b"b", b"1", 0).unwrap();
    tx.put(b"c", b"1", 0).unwrap();
    tx.end(); // 2
    let mut tx = b.txn();
    tx.put(b"b", b"2", 0).unwrap();
    tx.end(); // 3
    let mut tx = b.txn();
    tx.delete_range(b"a", b"c", false).unwrap();
    tx.end(); // 4
    b.commit(true).unwrap();
    let r = t.store.read().unwrap();
    let all_events = r.events_since(0, &[0], &[0], 0).unwrap();
    assert_eq!(all_events.len(), 6);
    assert_eq!(r.events_since(1, &[0], &[0], 0).unwrap(), all_events);
    assert_eq!(
        r.events_since(3, b"b", b"", 0).unwrap(),
        vec![put_event(kv("b", "2", 2, 3, 2, 0)), delete_event("b", 4)]
    );
    assert_eq!(r.events_since(2, b"c", b"d", 0).unwrap().len(), 1);
    assert!(r.events_since(5, &[0], &[0], 0).unwrap().is_empty());
    // The limit never splits a revision.
    let ev = r.events_since(2, &[0], &[0], 1).unwrap();
    assert_eq!(ev.len(), 3);
    let ev = r.events_since(2, &[0], &[0], 4).unwrap();
    assert_eq!(ev.len(), 4);
    let ev = r.events_since(2, &[0], &[0], 5).unwrap();
    assert_eq!(ev.len(), 6);
    let ev = r.events_since(3, &[0], &[0], 1).unwrap();
    assert_eq!(ev, vec![put_event(kv("b", "2", 2, 3, 2, 0))]);
}

#[test]
fn read_snapshots_are_isolated() {
    let t = TestStore::new();
    t.put("a", "1");
    let before = t.store.read().unwrap();
    t.put("a", "2");
    t.put("b", "1");
    assert_eq!(before.revision(), 2);
    assert_eq!(
        before.range(&all()).unwrap().kvs,
        vec![kv("a", "1", 2, 2, 1, 0)]
    );
    let mut q = all();
    q.revision = 3;
    assert_eq!(before.range(&q), Err(Error::FutureRev));
    assert_eq!(t.store.read().unwrap().revision(), 4);
    // A snapshot outlives the Store handle.
    let snap = t.store.read().unwrap();
    drop(t.store);
    assert_eq!(snap.range(&all()).unwrap().count, 2);
}

#[test]
fn only_one_batch_at_a_time() {
    let t = TestStore::new();
    let b = t.batch();
    match t.store.begin_batch() {
        Err(Error::Storage(m)) => assert!(m.contains("another write batch"), "{m}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    drop(b);
    t.store.begin_batch().unwrap();
}

#[test]
fn abandoned_batch_changes_nothing() {
    let t = TestStore::new();
    t.put("a", "1");
    {
        let mut b = t.batch();
        let mut tx = b.txn();
        tx.put(b"a", b"2", 0).unwrap();
        tx.end();
        b.set_consistent_index(10, 2);
        b.put_meta("m", b"v").unwrap();
        b.compact(2).unwrap();
    }
    assert_eq!(t.store.current_revision(), 2);
    assert_eq!(t.store.compact_revision(), 0);
    assert_eq!(t.store.consistent_index(), (0, 0));
    assert_eq!(t.get("a"), Some(kv("a", "1", 2, 2, 1, 0)));
    assert_eq!(t.store.get_meta("m").unwrap(), None);
    let t = t.reopen();
    assert_eq!(t.store.current_revision(), 2);
    assert_eq!(t.store.consistent_index(), (0, 0));
}

#[test]
fn meta_and_consistent_index_commit_with_the_batch() {
    let t = TestStore::new();
    let mut b = t.batch();
    b.put_meta("term", b"\x01\x02").unwrap();
    assert_eq!(b.get_meta("term").unwrap(), Some(b"\x01\x02".to_vec()));
    assert_eq!(t.store.get_meta("term").unwrap(), None);
    b.set_consistent_index(42, 3);
    let mut tx = b.txn();
    tx.put(b"k", b"v", 0).unwrap();
    tx.end();
    assert_eq!(t.store.consistent_index(), (0, 0));
    b.commit(true).unwrap();
    assert_eq!(t.store.consistent_index(), (42, 3));
    assert_eq!(
        t.store.get_meta("term").unwrap(),
        Some(b"\x01\x02".to_vec())
    );
    assert_eq!(
        t.store.read().unwrap().get_meta("term").unwrap(),
        Some(b"\x01\x02".to_vec())
    );
    // Meta keys cannot collide with the store's own bookkeeping.
    let mut b = t.batch();
    b.put_meta("current_rev", b"garbage").unwrap();
    b.put_meta("schema", b"garbage").unwrap();
    b.commit(true).unwrap();
    // A batch without set_consistent_index keeps the previous one.
    t.put("k", "w");
    assert_eq!(t.store.consistent_index(), (42, 3));
    let t = t.reopen();
    assert_eq!(t.store.consistent_index(), (42, 3));
    assert_eq!(t.store.current_revision(), 3);
    assert_eq!(
        t.store.get_meta("schema").unwrap(),
        Some(b"garbage".to_vec())
    );
}

#[test]
fn reopen_keeps_everything() {
    let t = sample();
    t.compact(5).unwrap();
    let mut b = t.batch();
    b.set_consistent_index(100, 7);
    b.put_meta("cluster", b"abc").unwrap();
    b.commit(true).unwrap();
    let before = t.range(&all()).unwrap();
    let mut q6 = all();
    q6.revision = 6;
    let before6 = t.range(&q6).unwrap();
    let ev_before = t
        .store
        .read()
        .unwrap()
        .events_since(5, &[0], &[0], 0)
        .unwrap();

    let t = t.reopen();
    assert_eq!(t.store.current_revision(), 11);
    assert_eq!(t.store.compact_revision(), 5);
    assert_eq!(t.store.consistent_index(), (100, 7));
    assert_eq!(t.store.get_meta("cluster").unwrap(), Some(b"abc".to_vec()));
    assert_eq!(t.range(&all()).unwrap(), before);
    assert_eq!(t.range(&q6).unwrap(), before6);
    assert_eq!(
        t.store
            .read()
            .unwrap()
            .events_since(5, &[0], &[0], 0)
            .unwrap(),
        ev_before
    );
    assert_eq!(t.get_at("a", 4), Err(Error::Compacted));
    // And writing goes on from there.
    assert_eq!(t.put("g", "1"), 12);
}

#[test]
fn non_durable_commit_survives_a_clean_close() {
    // redb keeps Durability::None commits in memory until a durable commit; closing the
    // database cleanly (dropping the last Store handle) makes them durable.
    let t = TestStore::new();
    t.put("a", "1");
    let mut b = t.batch();
    let mut tx = b.txn();
    tx.put(b"b", b"2", 0).unwrap();
    tx.end();
    b.set_consistent_index(9, 1);
    b.commit(false).unwrap();
    // Visible at once.
    assert_eq!(t.get("b"), Some(kv("b", "2", 3, 3, 1, 0)));
    let t = t.reopen();
    assert_eq!(t.store.current_revision(), 3);
    assert_eq!(t.store.consistent_index(), (9, 1));
    assert_eq!(t.get("b"), Some(kv("b", "2", 3, 3, 1, 0)));
}

#[test]
fn many_versions_and_historical_reads() {
    // Exercises the walk's switch from scanning a key's rows to seeking over them.
    let t = TestStore::new();
    let mut b = t.batch();
    for round in 0..20 {
        for k in ["a", "b", "c"] {
            if k == "b" && round % 3 == 2 {
                let mut tx = b.txn();
                tx.delete_range(k.as_bytes(), b"", false).unwrap();
                tx.end();
            } else {
                let mut tx = b.txn();
                tx.put(k.as_bytes(), format!("{k}{round}").as_bytes(), 0)
                    .unwrap();
                tx.end();
            }
        }
    }
    b.commit(true).unwrap();
    let r = t.store.read().unwrap();
    for rev in 1..=r.revision() {
        let mut q = all();
        q.revision = rev;
        let got = r.range(&q).unwrap();
        for kv in &got.kvs {
            // Each key read at `rev` is the newest write at or before it.
            assert!(kv.mod_revision <= rev);
            let mut single = req(std::str::from_utf8(&kv.key).unwrap(), "");
            single.revision = rev;
            assert_eq!(r.range(&single).unwrap().kvs, vec![kv.clone()]);
        }
        // Revisions: round*3 + {2: a, 3: b, 4: c}.
        let round = (rev - 2) / 3;
        let step = (rev - 2) % 3;
        if rev >= 2 {
            let a = &got.kvs[0];
            assert_eq!(a.key, b"a");
            assert_eq!(a.mod_revision, round * 3 + 2);
            assert_eq!(a.version, round + 1);
        }
        let b_live = got.kvs.iter().any(|kv| kv.key == b"b");
        let b_written = rev >= 3;
        let b_deleted_last = if step >= 1 {
            round % 3 == 2
        } else {
            round >= 1 && (round - 1) % 3 == 2
        };
        assert_eq!(b_live, b_written && !b_deleted_last, "rev {rev}");
    }
}

#[test]
fn garbage_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    std::fs::write(&path, &garbage).unwrap();
    match Store::open(&path) {
        Err(Error::Corrupt(m)) => assert!(m.contains(&path.display().to_string()), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A short file.
    std::fs::write(&path, b"hello").unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Corrupt(_))));
}

#[test]
fn damaged_store_file_does_not_panic() {
    let t = sample();
    let path = t.path();
    drop(t.store);
    // Overwrite the middle of the file: the header may survive, pages do not.
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 4..] {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Whatever redb makes of it, opening must not panic; it may fail as Corrupt.
    match Store::open(&path) {
        Ok(_) | Err(Error::Corrupt(_)) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
    // Destroying the header must be reported as corrupt.
    for b in &mut bytes[..4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Corrupt(_))));
}

#[test]
fn foreign_redb_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
            w.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        w.commit().unwrap();
    }
    match Store::open(&path) {
        Err(Error::Corrupt(m)) => {
            assert!(m.contains(&path.display().to_string()), "{m}");
            assert!(m.contains("rustcd"), "{m}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A "meta" table with other types, or a wrong schema version.
    let path2 = dir.path().join("db2");
    {
        let db = redb::Database::create(&path2).unwrap();
        let w = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("meta");
            w.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        w.commit().unwrap();
    }
    assert!(matches!(Store::open(&path2), Err(Error::Corrupt(_))));
    let path3 = dir.path().join("db3");
    {
        let db = redb::Database::create(&path3).unwrap();
        let w = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            w.open_table(def)
                .unwrap()
                .insert("schema", b"rustcd-mvcc/999".as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    match Store::open(&path3) {
        Err(Error::Corrupt(m)) => assert!(m.contains("unsupported schema"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn open_errors_that_are_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("db");
    assert!(matches!(Store::open(&missing), Err(Error::Storage(_))));
    // The file is locked while open.
    let path = dir.path().join("db");
    let _s = Store::open(&path).unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Storage(_))));
}

#[test]
fn empty_file_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    std::fs::write(&path, b"").unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn db_sizes() {
    let t = TestStore::new();
    let value = vec![b'x'; 10_000];
    let mut b = t.batch();
    for i in 0..200 {
        let mut tx = b.txn();
        tx.put(format!("key{i}").as_bytes(), &value, 0).unwrap();
        tx.end();
    }
    b.commit(true).unwrap();
    let size = t.store.db_size();
    let in_use = t.store.db_size_in_use();
    assert!(size >= 2_000_000, "size {size}");
    assert!(in_use >= 2_000_000, "in use {in_use}");
    assert!(in_use <= size, "in use {in_use} > size {size}");
    // After compacting away most data, the estimate drops (it is recomputed after compaction).
    let mut b = t.batch();
    let mut tx = b.txn();
    tx.delete_range(b"key", b"kez", false).unwrap();
    tx.end();
    let rev = b.revision();
    b.compact(rev).unwrap();
    b.commit(true).unwrap();
    let after = t.store.db_size_in_use();
    assert!(after < in_use / 4, "in use after compaction {after}");
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send_sync::<rustcd_mvcc::ReadTxn>();
    send::<rustcd_mvcc::WriteBatch>();
    send_sync::<Error>();
}

#[test]
fn compaction_steps_weigh_large_values_by_size() {
    // A step's budget counts 4 KiB pages, not rows: with 40 KiB values (11 units a row) a
    // budget of 100 looks at and removes a handful of rows, where 100 small rows would fit.
    let t = TestStore::new();
    let big = "x".repeat(40 * 1024);
    for i in 0..20 {
        t.put(&format!("k{i}"), &big); // revisions 2..=21
        t.put(&format!("k{i}"), "small"); // revisions 22.. interleaved
    }
    let rows = |t: &TestStore| t.store.read().unwrap().row_counts().unwrap().kv;
    assert_eq!(rows(&t), 40);
    t.store.set_compaction_budget(100);
    let rev = t.store.current_revision();
    t.compact(rev).unwrap();
    let removed = 40 - rows(&t);
    assert!(
        (1..=9).contains(&removed),
        "a 100-unit step removed {removed} rows of 40 KiB"
    );
    assert!(t.store.compaction_pending());
    let mut batches = 1;
    while t.store.compaction_pending() {
        t.batch().commit(false).unwrap();
        batches += 1;
        assert!(batches < 100);
    }
    assert_eq!(rows(&t), 20);
    assert_eq!(t.get("k3").map(|kv| kv.value), Some(b"small".to_vec()));
}

#[test]
fn compaction_is_spread_over_batches() {
    let t = TestStore::new();
    t.store.set_compaction_budget(2);
    for i in 0..3 {
        t.put("k", &i.to_string()); // 2, 3, 4
    }
    let rows = |t: &TestStore| t.store.read().unwrap().row_counts().unwrap().kv;
    t.compact(4).unwrap();
    // One rev entry looked at leaves room to remove one of the two old rows.
    assert!(t.store.compaction_pending());
    assert_eq!(rows(&t), 2);
    // Reads are unaffected by the pending work.
    assert_eq!(t.get_at("k", 3), Err(Error::Compacted));
    assert_eq!(t.get("k"), Some(kv("k", "2", 2, 4, 3, 0)));
    let r = t.store.read().unwrap();
    assert_eq!(
        r.events_since(4, &[0], &[0], 0).unwrap(),
        vec![put_event(kv("k", "2", 2, 4, 3, 0))]
    );
    drop(r);
    // The cursor survives a restart, and an empty batch finishes the job.
    let t = t.reopen();
    t.store.set_compaction_budget(4);
    assert!(t.store.compaction_pending());
    t.batch().commit(false).unwrap();
    assert!(!t.store.compaction_pending());
    assert_eq!(rows(&t), 1);

    // A big compaction with a tiny budget: many batches, same final state as one go.
    let t2 = TestStore::new();
    let mut b = t2.batch();
    for i in 0..50 {
        let mut tx = b.txn();
        tx.put(format!("k{}", i % 7).as_bytes(), b"v", 0).unwrap();
        if i % 5 == 4 {
            tx.delete_range(format!("k{}", i % 3).as_bytes(), b"", false)
                .unwrap();
        }
        tx.end();
    }
    b.commit(true).unwrap();
    t2.store.set_compaction_budget(1);
    t2.compact(40).unwrap();
    let mut batches = 1;
    while t2.store.compaction_pending() {
        // Interleave writes, another compaction and history reads with the pending work.
        if batches == 5 {
            t2.put("k0", "late");
        }
        if batches == 8 {
            let rev = t2.store.current_revision() - 3;
            t2.compact(rev).unwrap();
        } else {
            t2.batch().commit(false).unwrap();
        }
        batches += 1;
        assert!(batches < 500);
    }
    assert!(batches > 10, "{batches}");
    let t3 = TestStore::new();
    let mut b = t3.batch();
    for i in 0..50 {
        let mut tx = b.txn();
        tx.put(format!("k{}", i % 7).as_bytes(), b"v", 0).unwrap();
        if i % 5 == 4 {
            tx.delete_range(format!("k{}", i % 3).as_bytes(), b"", false)
                .unwrap();
        }
        tx.end();
    }
    b.commit(true).unwrap();
    t3.compact(40).unwrap();
    t3.put("k0", "late");
    let rev = t2.store.compact_revision();
    t3.compact(rev).unwrap();
    assert!(!t3.store.compaction_pending());
    assert_eq!(
        t2.store.read().unwrap().row_counts().unwrap(),
        t3.store.read().unwrap().row_counts().unwrap()
    );
    assert_eq!(t2.range(&all()).unwrap(), t3.range(&all()).unwrap());
}
