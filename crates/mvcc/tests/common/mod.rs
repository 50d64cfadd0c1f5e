#![allow(dead_code)]

use std::path::PathBuf;

use rustcd_mvcc::{Store, WriteBatch};
use rustcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rustcd_proto::mvccpb::KeyValue;

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        TestStore { dir, store }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Drops the store (closing the file) and opens the file again.
    pub fn reopen(self) -> TestStore {
        let TestStore { dir, store } = self;
        drop(store);
        let store = Store::open(&dir.path().join("db")).unwrap();
        TestStore { dir, store }
    }

    /// One batch with one txn doing one put; returns the revision after it.
    pub fn put(&self, key: &str, value: &str) -> i64 {
        self.put_lease(key, value, 0)
    }

    pub fn put_lease(&self, key: &str, value: &str, lease: i64) -> i64 {
        let mut b = self.store.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(key.as_bytes(), value.as_bytes(), lease).unwrap();
        let rev = t.end();
        b.commit(true).unwrap();
        rev
    }

    pub fn delete(&self, key: &str, end: &str) -> Vec<KeyValue> {
        let mut b = self.store.begin_batch().unwrap();
        let mut t = b.txn();
        let d = t
            .delete_range(key.as_bytes(), end.as_bytes(), true)
            .unwrap();
        t.end();
        b.commit(true).unwrap();
        d
    }

    pub fn compact(&self, rev: i64) -> rustcd_mvcc::Result<()> {
        let mut b = self.store.begin_batch().unwrap();
        b.compact(rev)?;
        b.commit(true).unwrap();
        Ok(())
    }

    pub fn batch(&self) -> WriteBatch {
        self.store.begin_batch().unwrap()
    }

    pub fn range(&self, req: &RangeRequest) -> rustcd_mvcc::Result<RangeResponse> {
        self.store.read().unwrap().range(req)
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        let r = self.range(&req(key, "")).unwrap();
        assert!(r.kvs.len() <= 1);
        r.kvs.into_iter().next()
    }

    pub fn get_at(&self, key: &str, rev: i64) -> rustcd_mvcc::Result<Option<KeyValue>> {
        let mut q = req(key, "");
        q.revision = rev;
        Ok(self.range(&q)?.kvs.into_iter().next())
    }
}

pub fn req(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn all() -> RangeRequest {
    RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    }
}

pub fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modr,
        version,
        value: value.as_bytes().to_vec(),
        lease,
    }
}
