//! What survives a crash: a child process commits durable and non-durable batches and then
//! aborts (no destructors, so redb gets no clean close); the parent reopens the file.
//!
//! redb semantics (documented in DESIGN.md): a `Durability::None` commit is visible to readers
//! immediately but only reaches the file with the next `Durability::Immediate` commit (or a clean
//! close). After a crash the store comes back exactly as of the last durable commit, including
//! the consistent index written in it, so the server replays the raft log from there.

use std::path::Path;
use std::process::Command;

use rustcd_mvcc::Store;
use rustcd_proto::etcdserverpb::RangeRequest;

const CHILD_ENV: &str = "RUSTCD_MVCC_CRASH_CHILD";

fn commit_put(store: &Store, key: &str, index: u64, durable: bool) {
    let mut b = store.begin_batch().unwrap();
    let mut tx = b.txn();
    tx.put(key.as_bytes(), b"v", 0).unwrap();
    tx.end();
    b.set_consistent_index(index, 1);
    b.commit(durable).unwrap();
}

fn keys(store: &Store) -> Vec<String> {
    let r = store
        .read()
        .unwrap()
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    r.kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

fn child(path: &Path) -> ! {
    let store = Store::open(path).unwrap();
    commit_put(&store, "durable-1", 1, true); // rev 2
    commit_put(&store, "lazy-1", 2, false); // rev 3
    commit_put(&store, "durable-2", 3, true); // rev 4: also persists rev 3
    commit_put(&store, "lazy-2", 4, false); // rev 5
    commit_put(&store, "lazy-3", 5, false); // rev 6
    assert_eq!(store.current_revision(), 6);
    assert_eq!(keys(&store).len(), 5);
    std::process::abort();
}

#[test]
fn crash_loses_only_non_durable_tail() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_loses_only_non_durable_tail",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child must abort");

    let store = Store::open(&path).unwrap();
    assert_eq!(store.current_revision(), 4);
    assert_eq!(store.consistent_index(), (3, 1));
    assert_eq!(keys(&store), ["durable-1", "durable-2", "lazy-1"]);
    // The store is fully usable after recovery and continues at the right revision.
    commit_put(&store, "after", 4, true);
    assert_eq!(store.current_revision(), 5);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(keys(&store), ["after", "durable-1", "durable-2", "lazy-1"]);
}
