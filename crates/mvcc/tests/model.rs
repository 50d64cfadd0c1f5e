//! Property test: random sequences of batches (txns of puts / delete ranges / ranges,
//! compactions), snapshot ranges at random revisions with random options, history reads and
//! reopens, run against the store on disk and against a naive in-memory model of etcd 3.5's
//! semantics. Answers, events, errors and physical row counts must match exactly.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rustcd_mvcc::{Error, Store};
use rustcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rustcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug, Default)]
struct Model {
    /// Every stored row: (key, main, sub) → the KeyValue of a put, or None for a tombstone.
    rows: BTreeMap<(Vec<u8>, i64, i64), Option<KeyValue>>,
    rev: i64,
    /// -1 = never compacted.
    compact: i64,
    consistent_index: (u64, u64),
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

impl Model {
    fn new() -> Model {
        Model {
            rev: 1,
            compact: -1,
            ..Default::default()
        }
    }

    /// The live KeyValue of `key` at `rev`.
    fn get(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        self.rows
            .iter()
            .rfind(|((k, main, _), _)| k == key && *main <= rev)
            .and_then(|(_, v)| v.clone())
    }

    fn keys(&self) -> BTreeSet<Vec<u8>> {
        self.rows.keys().map(|(k, _, _)| k.clone()).collect()
    }

    fn live(&self, start: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.keys()
            .into_iter()
            .filter(|k| in_range(k, start, end))
            .filter_map(|k| self.get(&k, rev))
            .collect()
    }

    /// etcd 3.5 Range, straight from etcdserver/apply.go + mvcc rangeKeys.
    fn range(&self, req: &RangeRequest, cur: i64, compact: i64) -> Result<RangeResponse, Error> {
        if req.revision > cur {
            return Err(Error::FutureRev);
        }
        let rev = if req.revision <= 0 { cur } else { req.revision };
        if rev < compact {
            return Err(Error::Compacted);
        }
        let mut limit = req.limit;
        if req.sort_order != 0
            || req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0
        {
            limit = 0;
        }
        if limit > 0 {
            limit += 1;
        }
        let all = self.live(&req.key, &req.range_end, rev);
        let count = all.len() as i64;
        let mut kvs: Vec<KeyValue> = if req.count_only {
            vec![]
        } else if limit > 0 {
            all.into_iter().take(limit as usize).collect()
        } else {
            all
        };
        if req.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
        }
        if req.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
        }
        if req.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
        }
        if req.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
        }
        let mut order = req.sort_order;
        if req.sort_target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
            order = SortOrder::Ascend as i32;
        }
        if order != SortOrder::None as i32 {
            // Stable sort; ties stay in key order (what Go's insertion sort does for the small
            // slices used here).
            let key_of = |kv: &KeyValue| -> Vec<u8> {
                match req.sort_target {
                    0 => kv.key.clone(),
                    1 => kv.version.to_be_bytes().to_vec(),
                    2 => kv.create_revision.to_be_bytes().to_vec(),
                    3 => kv.mod_revision.to_be_bytes().to_vec(),
                    _ => kv.value.clone(),
                }
            };
            if order == SortOrder::Ascend as i32 {
                kvs.sort_by_key(key_of);
            } else {
                kvs.sort_by_key(|kv| std::cmp::Reverse(key_of(kv)));
            }
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: None,
            kvs,
            more,
            count,
        })
    }

    fn put(
        &mut self,
        main: i64,
        sub: i64,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Option<KeyValue> {
        let prev = self.get(key, i64::MAX);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(main, |p| p.create_revision),
            mod_revision: main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        self.rows.insert((key.to_vec(), main, sub), Some(kv));
        prev
    }

    fn compact(&mut self, rev: i64) -> Result<(), Error> {
        if rev <= self.compact {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRev);
        }
        for key in self.keys() {
            let old: Vec<(i64, i64)> = self
                .rows
                .keys()
                .filter(|(k, main, _)| *k == key && *main <= rev)
                .map(|(_, m, s)| (*m, *s))
                .collect();
            let Some(&(lm, ls)) = old.last() else {
                continue;
            };
            let newest_is_put = self.rows[&(key.clone(), lm, ls)].is_some();
            let n = if newest_is_put {
                old.len() - 1
            } else {
                old.len()
            };
            for &(m, s) in &old[..n] {
                self.rows.remove(&(key.clone(), m, s));
            }
        }
        self.compact = rev;
        Ok(())
    }

    fn events_since(
        &self,
        start: i64,
        key: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        if start < self.compact {
            return Err(Error::Compacted);
        }
        let mut rows: Vec<(i64, i64, &Vec<u8>, &Option<KeyValue>)> = self
            .rows
            .iter()
            .filter(|((k, main, _), _)| *main >= start && in_range(k, key, end))
            .map(|((k, m, s), v)| (*m, *s, k, v))
            .collect();
        rows.sort_by_key(|r| (r.0, r.1));
        let mut out = Vec::new();
        let mut last = None;
        for (m, _, k, v) in rows {
            if limit > 0 && out.len() >= limit && last != Some(m) {
                break;
            }
            out.push(match v {
                Some(kv) => Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv.clone()),
                    prev_kv: None,
                },
                None => Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: k.clone(),
                        mod_revision: m,
                        ..Default::default()
                    }),
                    prev_kv: None,
                },
            });
            last = Some(m);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// A revision relative to the current one when the op runs: `pick % (current + 3) - 1`, so
/// -1..=current+1 (negative/0 = current, current+1 = future).
type RevPick = u8;

fn pick_rev(pick: RevPick, current: i64) -> i64 {
    (pick as i64) % (current + 3) - 1
}

#[derive(Clone, Debug)]
struct RangeSpec {
    key: Vec<u8>,
    end: Vec<u8>,
    limit: i64,
    rev: RevPick,
    sort_order: i32,
    sort_target: i32,
    keys_only: bool,
    count_only: bool,
    /// (min mod, max mod, min create, max create) as picks; 0 = no filter.
    filters: [u8; 4],
}

impl RangeSpec {
    fn request(&self, current: i64) -> RangeRequest {
        let f = |p: u8| {
            if p == 0 {
                0
            } else {
                (p as i64) % (current + 2)
            }
        };
        RangeRequest {
            key: self.key.clone(),
            range_end: self.end.clone(),
            limit: self.limit,
            revision: pick_rev(self.rev, current),
            sort_order: self.sort_order,
            sort_target: self.sort_target,
            serializable: false,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: f(self.filters[0]),
            max_mod_revision: f(self.filters[1]),
            min_create_revision: f(self.filters[2]),
            max_create_revision: f(self.filters[3]),
        }
    }
}

#[derive(Clone, Debug)]
enum TxnOp {
    Put(Vec<u8>, Vec<u8>, i64),
    Delete(Vec<u8>, Vec<u8>),
    Range(RangeSpec),
}

#[derive(Clone, Debug)]
enum BatchOp {
    Txn(Vec<TxnOp>),
    Compact(RevPick),
    Meta(String, Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Batch {
        ops: Vec<BatchOp>,
        durable: bool,
        set_index: bool,
        commit: bool,
    },
    Range(RangeSpec),
    Events(RevPick, Vec<u8>, Vec<u8>, usize),
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["a", "b", "c", "ab", "ba", "bb", "ca", "cab"])
        .prop_map(|s| s.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(vec![]),
        2 => Just(vec![0]),
        3 => prop::sample::select(vec!["a", "b", "bb", "c", "cb", "d"]).prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn range_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![5 => key(), 2 => Just(vec![0])]
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    (
        range_key(),
        range_end(),
        prop_oneof![3 => Just(0i64), 3 => 1i64..4, 1 => Just(-1i64)],
        // Half the time the current revision (pick 0 maps to -1), else anywhere.
        prop_oneof![1 => Just(0u8), 1 => any::<u8>()],
        prop_oneof![2 => Just(0), 1 => 1..3],
        prop_oneof![2 => Just(0), 2 => 1..5],
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        prop::array::uniform4(prop_oneof![7 => Just(0u8), 1 => any::<u8>()]),
    )
        .prop_map(
            |(key, end, limit, rev, sort_order, sort_target, keys_only, count_only, filters)| {
                RangeSpec {
                    key,
                    end,
                    limit,
                    rev,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    filters,
                }
            },
        )
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => (key(), prop::sample::select(vec!["", "x", "y", "zz"]), prop_oneof![3 => Just(0i64), 1 => 1i64..3])
            .prop_map(|(k, v, l)| TxnOp::Put(k, v.as_bytes().to_vec(), l)),
        2 => (range_key(), range_end()).prop_map(|(k, e)| TxnOp::Delete(k, e)),
        1 => range_spec().prop_map(TxnOp::Range),
    ]
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        8 => prop::collection::vec(txn_op(), 0..5).prop_map(BatchOp::Txn),
        2 => any::<u8>().prop_map(BatchOp::Compact),
        1 => (prop::sample::select(vec!["m1", "m2"]), prop::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(k, v)| BatchOp::Meta(k.to_string(), v)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(batch_op(), 1..4),
            // Durable commits fsync; they behave the same otherwise, so keep them rare.
            prop::bool::weighted(0.05),
            any::<bool>(),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(ops, durable, set_index, commit)| Op::Batch { ops, durable, set_index, commit }),
        3 => range_spec().prop_map(Op::Range),
        1 => (any::<u8>(), range_key(), range_end(), prop_oneof![2 => Just(0usize), 1 => 1usize..4])
            .prop_map(|(r, k, e, l)| Op::Events(r, k, e, l)),
        1 => Just(Op::Reopen),
    ]
}

// ---------------------------------------------------------------------------------------------
// Running.

/// Physical row counts must match the model whenever no compaction work is pending.
fn check_rows(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let counts = store.read().unwrap().row_counts().unwrap();
    prop_assert_eq!(counts.kv, counts.rev);
    if !store.compaction_pending() {
        prop_assert_eq!(counts.kv, model.rows.len() as u64);
    } else {
        prop_assert!(counts.kv >= model.rows.len() as u64);
    }
    Ok(())
}

/// A few wide ranges with sort/limit/filter combinations, picked by `n`, at the current and at
/// an older revision: random range ops alone rarely see several keys with a sort and a limit.
fn sweep(store: &Store, model: &Model, n: usize) -> Result<(), TestCaseError> {
    const SPANS: [(&[u8], &[u8]); 3] = [(&[0], &[0]), (b"b", b"c"), (b"a", &[0])];
    const SORTS: [(i32, i32); 7] = [(0, 0), (2, 0), (1, 1), (0, 2), (2, 3), (1, 4), (0, 4)];
    let r = store.read().unwrap();
    for j in 0..4 {
        let i = (n * 7 + j * 11) % (SPANS.len() * SORTS.len() * 2);
        let (key, end) = SPANS[i % SPANS.len()];
        let (sort_order, sort_target) = SORTS[(i / SPANS.len()) % SORTS.len()];
        let mut req = RangeRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            limit: if i / (SPANS.len() * SORTS.len()) == 1 {
                2
            } else {
                0
            },
            sort_order,
            sort_target,
            ..Default::default()
        };
        if j == 3 {
            req.min_mod_revision = model.rev - 2;
        }
        if j >= 2 {
            req.revision = 1 + (n as i64) % model.rev;
        }
        prop_assert_eq!(
            r.range(&req),
            model.range(&req, model.rev, model.compact),
            "sweep {:?}",
            req
        );
    }
    Ok(())
}

/// `budget`: rows of physical compaction work per batch (None = the default), small values
/// spread compactions over many batches.
/// A scratch directory, in memory when possible: the model test is about semantics, and
/// hundreds of cases each creating, fsyncing and closing a file would spend most of their time
/// waiting on the disk. (Durability itself is tested on disk in `store.rs` and `crash.rs`.)
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn run(ops: Vec<Op>, budget: Option<usize>) -> Result<(), TestCaseError> {
    let dir = scratch_dir();
    let path = dir.path().join("db");
    let mut store = Store::open(&path).unwrap();
    let set_budget = |s: &Store| {
        if let Some(b) = budget {
            s.set_compaction_budget(b);
        }
    };
    set_budget(&store);
    let mut model = Model::new();
    let mut meta: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index = 0u64;
    let mut sweeps = 0usize;

    for op in ops {
        match op {
            Op::Batch {
                ops,
                durable,
                set_index,
                commit,
            } => {
                let mut m = model.clone();
                let mut m_meta = meta.clone();
                let mut m_events = Vec::new();
                let mut b = store.begin_batch().unwrap();
                for bop in ops {
                    match bop {
                        BatchOp::Txn(tops) => {
                            let main = m.rev + 1;
                            let mut sub = 0i64;
                            let mut tx = b.txn();
                            for top in tops {
                                match top {
                                    TxnOp::Put(k, v, l) => {
                                        let prev = m.put(main, sub, &k, &v, l);
                                        sub += 1;
                                        m_events.push(Event {
                                            r#type: EventType::Put as i32,
                                            kv: m.get(&k, main),
                                            prev_kv: None,
                                        });
                                        prop_assert_eq!(
                                            tx.put(&k, &v, l).unwrap(),
                                            prev.map(|p| KeyValue {
                                                value: Vec::new(),
                                                ..p
                                            })
                                        );
                                    }
                                    TxnOp::Delete(k, e) => {
                                        let live = m.live(&k, &e, main);
                                        for kv in &live {
                                            m.rows.insert((kv.key.clone(), main, sub), None);
                                            sub += 1;
                                            m_events.push(Event {
                                                r#type: EventType::Delete as i32,
                                                kv: Some(KeyValue {
                                                    key: kv.key.clone(),
                                                    mod_revision: main,
                                                    ..Default::default()
                                                }),
                                                prev_kv: None,
                                            });
                                        }
                                        let with_values = sub % 2 == 0;
                                        let got = tx.delete_range(&k, &e, with_values).unwrap();
                                        if with_values {
                                            prop_assert_eq!(got, live);
                                        } else {
                                            let no_values: Vec<KeyValue> = live
                                                .into_iter()
                                                .map(|kv| KeyValue {
                                                    value: Vec::new(),
                                                    ..kv
                                                })
                                                .collect();
                                            prop_assert_eq!(got, no_values);
                                        }
                                    }
                                    TxnOp::Range(spec) => {
                                        let cur = if sub > 0 { main } else { m.rev };
                                        let req = spec.request(cur);
                                        let want = m.range(&req, cur, m.compact);
                                        prop_assert_eq!(
                                            tx.range(&req),
                                            want,
                                            "txn range {:?}",
                                            req
                                        );
                                    }
                                }
                            }
                            let after = tx.end();
                            if sub > 0 {
                                m.rev += 1;
                            }
                            prop_assert_eq!(after, m.rev);
                        }
                        BatchOp::Compact(pick) => {
                            let rev = pick_rev(pick, m.rev);
                            prop_assert_eq!(b.compact(rev), m.compact(rev), "compact {}", rev);
                        }
                        BatchOp::Meta(k, v) => {
                            b.put_meta(&k, &v).unwrap();
                            m_meta.insert(k, v);
                        }
                    }
                    prop_assert_eq!(b.revision(), m.rev);
                }
                if set_index {
                    index += 1;
                    b.set_consistent_index(index, index / 3);
                    m.consistent_index = (index, index / 3);
                }
                if commit {
                    let events = b.commit(durable).unwrap();
                    prop_assert_eq!(events, m_events);
                    model = m;
                    meta = m_meta;
                } else {
                    drop(b);
                }
                prop_assert_eq!(store.current_revision(), model.rev);
                prop_assert_eq!(store.compact_revision(), model.compact.max(0));
                prop_assert_eq!(store.consistent_index(), model.consistent_index);
                check_rows(&store, &model)?;
                sweeps += 1;
                sweep(&store, &model, sweeps)?;
            }
            Op::Range(spec) => {
                let r = store.read().unwrap();
                prop_assert_eq!(r.revision(), model.rev);
                let req = spec.request(model.rev);
                let want = model.range(&req, model.rev, model.compact);
                prop_assert_eq!(r.range(&req), want, "range {:?}", req);
            }
            Op::Events(pick, k, e, limit) => {
                let start = pick_rev(pick, model.rev);
                let r = store.read().unwrap();
                prop_assert_eq!(
                    r.events_since(start, &k, &e, limit),
                    model.events_since(start, &k, &e, limit)
                );
            }
            Op::Reopen => {
                drop(store);
                store = Store::open(&path).unwrap();
                set_budget(&store);
                prop_assert_eq!(store.current_revision(), model.rev);
                prop_assert_eq!(store.compact_revision(), model.compact.max(0));
                prop_assert_eq!(store.consistent_index(), model.consistent_index);
                for (k, v) in &meta {
                    prop_assert_eq!(store.get_meta(k).unwrap(), Some(v.clone()));
                }
            }
        }
    }
    // Empty batches finish any pending compaction; then the rows are exactly the model's.
    let mut rounds = 0;
    while store.compaction_pending() {
        let events = store.begin_batch().unwrap().commit(false).unwrap();
        prop_assert!(events.is_empty());
        rounds += 1;
        prop_assert!(rounds < 1000, "compaction makes no progress");
    }
    check_rows(&store, &model)?;
    // Finally, every revision still readable agrees with the model, and so does the history.
    let r = store.read().unwrap();
    let start = model.compact.max(0);
    prop_assert_eq!(
        r.events_since(start, &[0], &[0], 0),
        model.events_since(start, &[0], &[0], 0)
    );
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    for rev in -1..=model.rev + 1 {
        let mut q = all.clone();
        q.revision = rev;
        prop_assert_eq!(
            r.range(&q),
            model.range(&q, model.rev, model.compact),
            "rev {}",
            rev
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(
        ops in prop::collection::vec(op(), 1..30),
        budget in prop_oneof![
            2 => Just(None),
            1 => (1usize..4).prop_map(Some),
            1 => (4usize..40).prop_map(Some),
        ],
    ) {
        run(ops, budget)?;
    }
}
