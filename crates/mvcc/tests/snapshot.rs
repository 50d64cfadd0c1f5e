//! Whole-store snapshots: dump from one store, restore into another.

use rustcd_mvcc::{Error, Store};
use rustcd_proto::etcdserverpb::RangeRequest;

fn all(store: &Store) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    store
        .read()
        .unwrap()
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect()
}

#[test]
fn restore_replaces_everything_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a.db")).unwrap();
    let mut b = a.begin_batch().unwrap();
    for i in 0..50 {
        let mut t = b.txn();
        t.put(format!("k{i:02}").as_bytes(), b"v", 0).unwrap();
        t.end();
    }
    {
        let mut t = b.txn();
        t.delete_range(b"k10", b"k20", false).unwrap();
        t.end();
    }
    b.compact(5).unwrap();
    b.put_meta("members", b"m").unwrap();
    b.set_consistent_index(77, 3);
    b.commit(false).unwrap();

    let snap = a.read().unwrap();
    assert_eq!(snap.consistent_index().unwrap(), (77, 3));
    let data = snap.snapshot_data().unwrap();

    let path_b = dir.path().join("b.db");
    {
        let other = Store::open(&path_b).unwrap();
        let mut w = other.begin_batch().unwrap();
        let mut t = w.txn();
        t.put(b"stale", b"x", 0).unwrap();
        t.end();
        w.commit(true).unwrap();
        other.restore(&data).unwrap();
        assert_eq!(all(&other), all(&a));
        assert_eq!(other.current_revision(), a.current_revision());
        assert_eq!(other.compact_revision(), 5);
        assert_eq!(other.consistent_index(), (77, 3));
        assert_eq!(
            other.get_meta("members").unwrap().as_deref(),
            Some(&b"m"[..])
        );
    }
    let reopened = Store::open(&path_b).unwrap();
    assert_eq!(all(&reopened), all(&a));
    assert_eq!(reopened.consistent_index(), (77, 3));
}

#[test]
fn damaged_snapshot_data_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a.db")).unwrap();
    let mut w = a.begin_batch().unwrap();
    let mut t = w.txn();
    t.put(b"keep", b"me", 0).unwrap();
    t.end();
    w.commit(true).unwrap();
    let mut data = a.read().unwrap().snapshot_data().unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xFF;
    assert!(matches!(a.restore(&data), Err(Error::Corrupt(_))));
    assert!(matches!(a.restore(b"garbage"), Err(Error::Corrupt(_))));
    assert_eq!(all(&a).len(), 1);
}

#[test]
fn meta_prefix_listing_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a.db")).unwrap();
    let mut w = a.begin_batch().unwrap();
    w.put_meta("lease/01", b"1").unwrap();
    w.put_meta("lease/02", b"2").unwrap();
    w.put_meta("leasex", b"x").unwrap();
    w.put_meta("members", b"m").unwrap();
    w.commit(false).unwrap();
    let mut w = a.begin_batch().unwrap();
    w.delete_meta("lease/01").unwrap();
    w.delete_meta("absent").unwrap();
    w.commit(false).unwrap();
    let got = a.read().unwrap().meta_with_prefix("lease/").unwrap();
    assert_eq!(got, vec![("lease/02".to_string(), b"2".to_vec())]);
}

#[test]
fn hash_kv_ignores_what_compaction_removes_and_tracks_revision() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, compact_each_step: bool| {
        let s = Store::open(&dir.path().join(name)).unwrap();
        for i in 0..20 {
            let mut b = s.begin_batch().unwrap();
            let mut t = b.txn();
            t.put(
                format!("k{}", i % 5).as_bytes(),
                format!("v{i}").as_bytes(),
                0,
            )
            .unwrap();
            t.end();
            if compact_each_step && i == 15 {
                b.compact(10).unwrap();
            }
            b.commit(false).unwrap();
        }
        s
    };
    let a = make("a.db", false);
    let b = make("b.db", true);
    // Same history: same hash at the current revision, compacted or not...
    let mut w = a.begin_batch().unwrap();
    w.compact(10).unwrap();
    w.commit(false).unwrap();
    let (ha, ra) = a.read().unwrap().hash_kv(0).unwrap();
    let (hb, rb) = b.read().unwrap().hash_kv(0).unwrap();
    assert_eq!((ha, ra), (hb, rb));
    assert_eq!(ra, 21);
    // ...and a different one at an older revision.
    let (old, _) = a.read().unwrap().hash_kv(15).unwrap();
    assert_ne!(old, ha);
    assert!(matches!(
        a.read().unwrap().hash_kv(5),
        Err(Error::Compacted)
    ));
    assert!(matches!(
        a.read().unwrap().hash_kv(99),
        Err(Error::FutureRev)
    ));
}
