//! Clients that record a history (etcd's KV API over gRPC), a watcher that
//! records every event, and the end-of-test checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rustcd_proto::etcdserverpb::watch_client::WatchClient;
use rustcd_proto::etcdserverpb::{
    request_op, response_op, watch_request, Compare, DeleteRangeRequest, HashKvRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use rustcd_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::cluster::{channel, now_ns, Cluster};
use crate::linearizability::{self, Call, Op, Outcome, State, Value};

/// The key prefix every fault test writes under.
pub const PREFIX: &str = "/faults/";

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub clients: usize,
    pub keys: usize,
    /// Per-operation deadline; past it the operation is indeterminate.
    pub op_timeout: Duration,
    /// Bytes appended to every written value (for the disk test).
    pub value_padding: usize,
    /// Pause between two operations of one client.
    pub think: Duration,
    pub seed: u64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            clients: 10,
            keys: 5,
            op_timeout: Duration::from_secs(2),
            value_padding: 0,
            think: Duration::from_millis(2),
            seed: rand::random(),
        }
    }
}

pub fn key_name(k: usize) -> String {
    format!("{PREFIX}k{k}")
}

fn encode(v: Value, padding: usize) -> Vec<u8> {
    let mut s = v.to_string().into_bytes();
    if padding > 0 {
        s.push(b'|');
        s.resize(s.len() + padding, b'x');
    }
    s
}

/// A stored value back to the number the client wrote; a value that is not
/// one of ours becomes `u64::MAX` (which no client writes, so the checker
/// reports it as read from nowhere).
fn decode(b: &[u8]) -> Value {
    let end = b.iter().position(|c| *c == b'|').unwrap_or(b.len());
    std::str::from_utf8(&b[..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Counts of what happened, per call kind.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ok: BTreeMap<&'static str, u64>,
    pub failed: BTreeMap<&'static str, u64>,
    pub indeterminate: BTreeMap<&'static str, u64>,
    /// A few distinct error texts seen, for the report.
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    fn add(&mut self, call: Call, outcome: Outcome) {
        let k = match call {
            Call::Read => "read",
            Call::Put(_) => "put",
            Call::Cas { .. } => "cas",
            Call::Delete => "delete",
        };
        let m = match outcome {
            Outcome::Ok { .. } | Outcome::CasFailed { .. } => &mut self.ok,
            Outcome::Failed => &mut self.failed,
            Outcome::Indeterminate => &mut self.indeterminate,
        };
        *m.entry(k).or_default() += 1;
    }

    fn merge(&mut self, o: &Stats) {
        for (a, b) in [
            (&mut self.ok, &o.ok),
            (&mut self.failed, &o.failed),
            (&mut self.indeterminate, &o.indeterminate),
        ] {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    pub fn total_ok(&self) -> u64 {
        self.ok.values().sum()
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok {:?}, failed {:?}, indeterminate {:?}",
            self.ok, self.failed, self.indeterminate
        )?;
        if !self.errors.is_empty() {
            write!(f, "\n  errors:")?;
            for (e, n) in &self.errors {
                write!(f, "\n    {n} x {e}")?;
            }
        }
        Ok(())
    }
}

/// A write's error: did it certainly take no effect? rustcd (like etcd)
/// answers these before proposing: no leader / leader changed come from
/// raft-rs dropping the proposal, the size and quota checks come first. A
/// connection that was refused never carried the request. Everything else
/// (timeouts, a connection lost, "server stopped") is indeterminate.
fn write_error_outcome(s: &Status) -> Outcome {
    let m = s.message();
    let definite = [
        "etcdserver: no leader",
        "etcdserver: leader changed",
        "etcdserver: request is too large",
        "etcdserver: mvcc: database space exceeded",
    ];
    if definite.contains(&m) {
        return Outcome::Failed;
    }
    if s.code() == Code::Unavailable && format!("{s:?}").contains("Connection refused") {
        return Outcome::Failed;
    }
    Outcome::Indeterminate
}

fn short_error(s: &Status) -> String {
    let mut m = s.message().to_string();
    if m.len() > 90 {
        m.truncate(90);
    }
    format!("{:?}: {m}", s.code())
}

/// Running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    /// The URLs clients pick from; tests change it for membership changes.
    pub endpoints: Arc<RwLock<Vec<String>>>,
    history: Arc<Mutex<Vec<Op>>>,
    revisions: Arc<Mutex<Vec<Revision>>>,
    handles: Vec<JoinHandle<Stats>>,
    pub spec: WorkloadSpec,
}

/// The response revision of one successful operation.
#[derive(Clone, Debug)]
pub struct Revision {
    pub client: usize,
    pub invoke: u64,
    pub complete: u64,
    pub revision: i64,
    /// `Some` if the operation created a revision; `Some(Some(v))` if it
    /// wrote value `v`.
    pub write: Option<Option<Value>>,
    pub what: String,
}

/// What the clients recorded.
pub struct Recorded {
    pub history: Vec<Op>,
    pub revisions: Vec<Revision>,
    pub stats: Stats,
}

impl Workload {
    pub fn start(spec: WorkloadSpec, endpoints: Vec<String>) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let endpoints = Arc::new(RwLock::new(endpoints));
        let history = Arc::new(Mutex::new(Vec::new()));
        let revisions = Arc::new(Mutex::new(Vec::new()));
        let handles = (0..spec.clients)
            .map(|c| {
                tokio::spawn(client_loop(
                    c,
                    spec.clone(),
                    stop.clone(),
                    endpoints.clone(),
                    history.clone(),
                    revisions.clone(),
                ))
            })
            .collect();
        Workload {
            stop,
            endpoints,
            history,
            revisions,
            handles,
            spec,
        }
    }

    /// Operations that completed with a known outcome so far.
    pub fn completed(&self) -> usize {
        self.history
            .lock()
            .unwrap()
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Indeterminate | Outcome::Failed))
            .count()
    }

    /// Stops the clients (each finishes its operation in flight) and
    /// returns what they recorded.
    pub async fn stop(self) -> Recorded {
        self.stop.store(true, Ordering::SeqCst);
        let mut stats = Stats::default();
        for h in self.handles {
            stats.merge(&h.await.expect("client task"));
        }
        let mut history = std::mem::take(&mut *self.history.lock().unwrap());
        history.sort_by_key(|o| o.invoke);
        let revisions = std::mem::take(&mut *self.revisions.lock().unwrap());
        Recorded {
            history,
            revisions,
            stats,
        }
    }
}

async fn client_loop(
    id: usize,
    spec: WorkloadSpec,
    stop: Arc<AtomicBool>,
    endpoints: Arc<RwLock<Vec<String>>>,
    history: Arc<Mutex<Vec<Op>>>,
    revisions: Arc<Mutex<Vec<Revision>>>,
) -> Stats {
    let mut rng =
        StdRng::seed_from_u64(spec.seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut stats = Stats::default();
    let mut clients: HashMap<String, KvClient<Channel>> = HashMap::new();
    let mut ep = {
        let eps = endpoints.read().unwrap();
        eps[id % eps.len()].clone()
    };
    // The last value this client knows per key, to aim its CAS at.
    let mut known: HashMap<usize, State> = HashMap::new();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.random_range(0..spec.keys);
        let key = key_name(k);
        seq += 1;
        let value = (id as u64 + 1) * 1_000_000 + seq;
        let call = match rng.random_range(0..100) {
            0..40 => Call::Read,
            40..70 => Call::Put(value),
            70..95 => match known.get(&k) {
                Some(Some(expected)) => Call::Cas {
                    expected: *expected,
                    new: value,
                },
                // Without a guess, a CAS on an arbitrary (usually stale)
                // value: it fails, and its failure branch reads.
                _ => Call::Cas {
                    expected: value - 1,
                    new: value,
                },
            },
            _ => Call::Delete,
        };
        let kv = clients
            .entry(ep.clone())
            .or_insert_with(|| KvClient::new(channel(&ep)))
            .clone();
        let invoke = now_ns();
        let r = tokio::time::timeout(
            spec.op_timeout,
            perform(kv, key.clone(), call, spec.value_padding),
        )
        .await;
        let complete = now_ns();
        let (outcome, error) = match r {
            Ok(Ok(a)) => {
                revisions.lock().unwrap().push(Revision {
                    client: id,
                    invoke,
                    complete,
                    revision: a.revision,
                    write: a.mutated.then_some(match call {
                        Call::Put(v) | Call::Cas { new: v, .. } => Some(v),
                        _ => None,
                    }),
                    what: format!("{} {call:?} -> {:?}", key_name(k), a.outcome),
                });
                (a.outcome, None)
            }
            Ok(Err(s)) => {
                let o = if call == Call::Read {
                    Outcome::Failed
                } else {
                    write_error_outcome(&s)
                };
                (o, Some(short_error(&s)))
            }
            Err(_) => (
                if call == Call::Read {
                    Outcome::Failed
                } else {
                    Outcome::Indeterminate
                },
                Some("client timeout".to_string()),
            ),
        };
        stats.add(call, outcome);
        match outcome {
            Outcome::Ok { seen } => {
                known.insert(
                    k,
                    match call {
                        Call::Read => seen.flatten(),
                        Call::Put(v) | Call::Cas { new: v, .. } => Some(v),
                        Call::Delete => None,
                    },
                );
            }
            Outcome::CasFailed { seen } => {
                known.insert(k, seen.flatten());
            }
            _ => {
                known.remove(&k);
            }
        }
        history.lock().unwrap().push(Op {
            client: id,
            key,
            call,
            outcome,
            invoke,
            complete,
        });
        if let Some(e) = error {
            if stats.errors.len() < 40 || stats.errors.contains_key(&e) {
                *stats.errors.entry(e).or_default() += 1;
            }
            // Try another member, and do not spin while there is none.
            let eps = endpoints.read().unwrap().clone();
            ep = eps[rng.random_range(0..eps.len())].clone();
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..80))).await;
        } else if !endpoints.read().unwrap().contains(&ep) {
            let eps = endpoints.read().unwrap().clone();
            ep = eps[rng.random_range(0..eps.len())].clone();
        }
        if !spec.think.is_zero() {
            tokio::time::sleep(spec.think).await;
        }
    }
    stats
}

/// What a successful operation's response header said.
#[derive(Clone, Copy, Debug)]
struct Answer {
    outcome: Outcome,
    /// The header's revision.
    revision: i64,
    /// Whether it created a revision (a put, a CAS that succeeded, a
    /// delete that deleted something).
    mutated: bool,
}

/// One operation against the server; `Err` is the gRPC status.
async fn perform(
    mut kv: KvClient<Channel>,
    key: String,
    call: Call,
    padding: usize,
) -> Result<Answer, Status> {
    let k = key.into_bytes();
    let prev = |kv: Option<rustcd_proto::mvccpb::KeyValue>| Some(kv.map(|kv| decode(&kv.value)));
    let rev = |h: Option<rustcd_proto::etcdserverpb::ResponseHeader>| h.map_or(-1, |h| h.revision);
    Ok(match call {
        Call::Read => {
            let r = kv
                .range(RangeRequest {
                    key: k,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Answer {
                revision: rev(r.header),
                mutated: false,
                outcome: Outcome::Ok {
                    seen: prev(r.kvs.into_iter().next()),
                },
            }
        }
        Call::Put(v) => {
            let r = kv
                .put(PutRequest {
                    key: k,
                    value: encode(v, padding),
                    prev_kv: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Answer {
                revision: rev(r.header),
                mutated: true,
                outcome: Outcome::Ok {
                    seen: prev(r.prev_kv),
                },
            }
        }
        Call::Delete => {
            let r = kv
                .delete_range(DeleteRangeRequest {
                    key: k,
                    prev_kv: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Answer {
                revision: rev(r.header),
                mutated: r.deleted > 0,
                outcome: Outcome::Ok {
                    seen: prev(r.prev_kvs.into_iter().next()),
                },
            }
        }
        Call::Cas { expected, new } => {
            let r = kv
                .txn(TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: k.clone(),
                        target_union: Some(TargetUnion::Value(encode(expected, padding))),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: k.clone(),
                            value: encode(new, padding),
                            prev_kv: true,
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(request_op::Request::RequestRange(RangeRequest {
                            key: k,
                            ..Default::default()
                        })),
                    }],
                })
                .await?
                .into_inner();
            let revision = rev(r.header);
            let resp = r.responses.into_iter().next().and_then(|r| r.response);
            match (r.succeeded, resp) {
                (true, Some(response_op::Response::ResponsePut(p))) => Answer {
                    revision,
                    mutated: true,
                    outcome: Outcome::Ok {
                        seen: prev(p.prev_kv),
                    },
                },
                (false, Some(response_op::Response::ResponseRange(g))) => Answer {
                    revision,
                    mutated: false,
                    outcome: Outcome::CasFailed {
                        seen: prev(g.kvs.into_iter().next()),
                    },
                },
                (ok, other) => {
                    return Err(Status::internal(format!(
                        "txn answered succeeded={ok} with {other:?}"
                    )))
                }
            }
        }
    })
}

/// After the faults: a linearizable read of every key on every member (with
/// retries), recorded as operations of the history, so that the checker
/// sees every acknowledged write present (or legitimately overwritten).
pub async fn final_reads(c: &Cluster, keys: usize, history: &mut Vec<Op>) -> Result<(), String> {
    for i in c.live() {
        let url = c.members[i].client_url.clone();
        let mut kv = KvClient::new(channel(&url));
        for k in 0..keys {
            let key = key_name(k);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let invoke = now_ns();
                let r = tokio::time::timeout(
                    Duration::from_secs(3),
                    perform(kv.clone(), key.clone(), Call::Read, 0),
                )
                .await;
                let complete = now_ns();
                match r {
                    Ok(Ok(Answer { outcome, .. })) => {
                        history.push(Op {
                            client: 1000 + i,
                            key: key.clone(),
                            call: Call::Read,
                            outcome,
                            invoke,
                            complete,
                        });
                        break;
                    }
                    other if Instant::now() > deadline => {
                        return Err(format!(
                            "final read of {key} on {} keeps failing: {other:?}",
                            c.members[i].name
                        ))
                    }
                    _ => {
                        kv = KvClient::new(channel(&url));
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every live member at the same revision with the same HashKV (after a
/// linearizable read on each, so each has applied everything committed).
/// Returns (revision, hash).
pub async fn converge(c: &Cluster) -> Result<(i64, u32), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        let mut err = None;
        for i in c.live() {
            let ch = channel(&c.members[i].client_url);
            let read = tokio::time::timeout(
                Duration::from_secs(3),
                KvClient::new(ch.clone()).range(RangeRequest {
                    key: PREFIX.as_bytes().to_vec(),
                    range_end: prefix_end(PREFIX.as_bytes()),
                    count_only: true,
                    ..Default::default()
                }),
            )
            .await;
            if !matches!(read, Ok(Ok(_))) {
                err = Some(format!("{}: read {read:?}", c.members[i].name));
                break;
            }
            match tokio::time::timeout(
                Duration::from_secs(3),
                MaintenanceClient::new(ch).hash_kv(HashKvRequest { revision: 0 }),
            )
            .await
            {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    seen.push((
                        c.members[i].name.clone(),
                        r.header.map_or(-1, |h| h.revision),
                        r.hash,
                    ));
                }
                other => {
                    err = Some(format!("{}: HashKV {other:?}", c.members[i].name));
                    break;
                }
            }
        }
        if err.is_none() && seen.iter().all(|s| (s.1, s.2) == (seen[0].1, seen[0].2)) {
            return Ok((seen[0].1, seen[0].2));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "members did not converge within 20 s: {err:?}; (member, revision, hash): {seen:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

/// One event a watcher received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub revision: i64,
    pub put: bool,
    pub key: String,
    pub value: Option<Value>,
}

/// A watcher on one member, from revision 1, over the whole test prefix;
/// it reconnects (from the next revision) if its stream breaks.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Seen>>>,
    unsupported: Arc<AtomicBool>,
    reconnects: Arc<Mutex<Vec<String>>>,
    handle: JoinHandle<()>,
    pub member: String,
}

impl Watcher {
    pub fn start(url: &str, member: &str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let unsupported = Arc::new(AtomicBool::new(false));
        let reconnects = Arc::new(Mutex::new(Vec::new()));
        let handle = tokio::spawn(watch_loop(
            url.to_string(),
            stop.clone(),
            events.clone(),
            unsupported.clone(),
            reconnects.clone(),
        ));
        Watcher {
            stop,
            events,
            unsupported,
            reconnects,
            handle,
            member: member.to_string(),
        }
    }

    fn last_revision(&self) -> i64 {
        self.events.lock().unwrap().last().map_or(0, |e| e.revision)
    }

    /// Waits for the events up to `final_revision`, then checks that every
    /// revision from 2 (the first write of a fresh cluster) to it came
    /// exactly once, in order, and that the events are the history's
    /// writes. `Ok(None)`: the Watch RPC is not implemented (skipped).
    pub async fn finish(
        self,
        final_revision: i64,
        history: &[Op],
        revisions: &[Revision],
    ) -> Result<Option<String>, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.unsupported.load(Ordering::SeqCst)
            && self.last_revision() < final_revision
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        self.handle.abort();
        if self.unsupported.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let events = self.events.lock().unwrap().clone();
        let reconnects = self.reconnects.lock().unwrap().clone();
        let revs: Vec<i64> = events.iter().map(|e| e.revision).collect();
        for (n, w) in revs.windows(2).enumerate() {
            if w[1] != w[0] + 1 {
                return Err(format!(
                    "watch on {}: revision {} followed by {} (event #{}); reconnects: {reconnects:?}",
                    self.member,
                    w[0],
                    w[1],
                    n + 1
                ));
            }
        }
        if revs.first().is_some_and(|r| *r != 2) {
            return Err(format!(
                "watch on {}: first event at revision {}, expected 2",
                self.member, revs[0]
            ));
        }
        if revs.last().copied().unwrap_or(1) != final_revision {
            return Err(format!(
                "watch on {}: last event at revision {:?}, cluster at {final_revision}; reconnects: {reconnects:?}",
                self.member,
                revs.last()
            ));
        }
        // Every put event carries a value some write that may have taken
        // effect wrote, once; every acknowledged write shows up.
        let mut may: HashSet<Value> = HashSet::new();
        let mut acked: HashSet<Value> = HashSet::new();
        for o in history {
            if let Call::Put(v) | Call::Cas { new: v, .. } = o.call {
                match o.outcome {
                    Outcome::Ok { .. } => {
                        acked.insert(v);
                        may.insert(v);
                    }
                    Outcome::Indeterminate => {
                        may.insert(v);
                    }
                    _ => {}
                }
            }
        }
        let mut put_values = HashSet::new();
        for e in &events {
            if let Some(v) = e.value {
                if !may.contains(&v) {
                    return Err(format!(
                        "watch on {}: event {e:?} carries a value no write that may have taken effect wrote",
                        self.member
                    ));
                }
                if !put_values.insert(v) {
                    return Err(format!("watch on {}: value {v} seen twice", self.member));
                }
            }
        }
        if let Some(v) = acked.iter().find(|v| !put_values.contains(v)) {
            return Err(format!(
                "watch on {}: acknowledged write of {v} never seen",
                self.member
            ));
        }
        // Each acknowledged mutation shows up at the revision its writer was
        // told.
        let at: HashMap<i64, &Seen> = events.iter().map(|e| (e.revision, e)).collect();
        for r in revisions {
            let Some(wrote) = r.write else { continue };
            let ok = at.get(&r.revision).is_some_and(|e| match wrote {
                Some(v) => e.value == Some(v),
                None => !e.put,
            });
            if !ok {
                return Err(format!(
                    "watch on {}: {} was acknowledged at revision {}, where the watcher saw {:?}",
                    self.member,
                    r.what,
                    r.revision,
                    at.get(&r.revision)
                ));
            }
        }
        Ok(Some(format!(
            "watch on {}: {} events, revisions 2..={final_revision} each exactly once, in order ({} reconnects)",
            self.member,
            events.len(),
            reconnects.len()
        )))
    }
}

async fn watch_loop(
    url: String,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Seen>>>,
    unsupported: Arc<AtomicBool>,
    reconnects: Arc<Mutex<Vec<String>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let from = events.lock().unwrap().last().map_or(1, |e| e.revision + 1);
        let (tx, rx) = mpsc::channel(4);
        let _ = tx
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: PREFIX.as_bytes().to_vec(),
                        range_end: prefix_end(PREFIX.as_bytes()),
                        start_revision: from,
                        ..Default::default()
                    },
                )),
            })
            .await;
        let mut w = WatchClient::new(channel(&url));
        let why = match w.watch(ReceiverStream::new(rx)).await {
            Err(s) if s.code() == Code::Unimplemented => {
                unsupported.store(true, Ordering::SeqCst);
                return;
            }
            Err(s) => format!("open: {s:?}"),
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(r)) => {
                            if r.canceled {
                                break format!(
                                    "canceled: {} (compact revision {})",
                                    r.cancel_reason, r.compact_revision
                                );
                            }
                            let mut ev = events.lock().unwrap();
                            for e in r.events {
                                let kv = e.kv.unwrap_or_default();
                                let put = e.r#type == EventType::Put as i32;
                                ev.push(Seen {
                                    revision: kv.mod_revision,
                                    put,
                                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                                    value: put.then(|| decode(&kv.value)),
                                });
                            }
                        }
                        Ok(None) => break "stream ended".to_string(),
                        Err(s) if s.code() == Code::Unimplemented => {
                            unsupported.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(s) => break format!("{s:?}"),
                    }
                }
            }
        };
        drop(tx);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        reconnects.lock().unwrap().push(why);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the response revisions: an operation that started after another
/// completed never reports an older revision (revisions only grow, in real
/// time, across members), and no two acknowledged mutations share one.
pub fn check_revisions(revs: &[Revision]) -> Result<(), String> {
    if let Some(r) = revs.iter().find(|r| r.revision < 1) {
        return Err(format!("a response without a header revision: {r:?}"));
    }
    let mut by_complete: Vec<&Revision> = revs.iter().collect();
    by_complete.sort_by_key(|r| r.complete);
    let mut by_invoke: Vec<&Revision> = revs.iter().collect();
    by_invoke.sort_by_key(|r| r.invoke);
    let mut j = 0;
    let mut max: Option<&Revision> = None;
    for r in by_invoke {
        while j < by_complete.len() && by_complete[j].complete < r.invoke {
            if max.is_none_or(|m| by_complete[j].revision > m.revision) {
                max = Some(by_complete[j]);
            }
            j += 1;
        }
        if let Some(m) = max {
            if m.revision > r.revision {
                return Err(format!(
                    "revision went back in real time: {} (client {}) completed at {:.6}s with revision {}, \
                     then {} (client {}) invoked at {:.6}s got revision {}",
                    m.what,
                    m.client,
                    m.complete as f64 / 1e9,
                    m.revision,
                    r.what,
                    r.client,
                    r.invoke as f64 / 1e9,
                    r.revision
                ));
            }
        }
    }
    let mut seen: HashMap<i64, &Revision> = HashMap::new();
    for r in revs.iter().filter(|r| r.write.is_some()) {
        if let Some(o) = seen.insert(r.revision, r) {
            return Err(format!(
                "two acknowledged writes at revision {}: {} (client {}) and {} (client {})",
                r.revision, o.what, o.client, r.what, r.client
            ));
        }
    }
    Ok(())
}

/// The end of every fault test: heal, read everything back, check the
/// history, check convergence and the watcher. Panics with the evidence on
/// a failure (and keeps the cluster's directory and the history).
pub async fn verify(
    test: &str,
    c: &mut Cluster,
    recorded: Recorded,
    keys: usize,
    watcher: Option<Watcher>,
) {
    let Recorded {
        mut history,
        revisions,
        stats,
    } = recorded;
    let started = Instant::now();
    let fail = |c: &mut Cluster, history: &[Op], what: String| -> ! {
        let dir = c.keep_dir();
        let path = dir.join("history.txt");
        let text: Vec<String> = history.iter().map(|o| o.to_string()).collect();
        let _ = std::fs::write(&path, text.join("\n"));
        panic!(
            "{test}: {what}\n\nhistory: {} ({} ops); logs and data: {}\n{}",
            path.display(),
            history.len(),
            dir.display(),
            c.logs(30)
        );
    };
    if let Err(e) = c.heal_all().await {
        fail(
            c,
            &history,
            format!("cluster did not recover after healing: {e}"),
        );
    }
    if let Err(e) = final_reads(c, keys, &mut history).await {
        fail(c, &history, e);
    }
    let check_started = Instant::now();
    let report = match linearizability::check(&history) {
        Ok(r) => r,
        Err(e) => fail(c, &history, e.to_string()),
    };
    let check_time = check_started.elapsed();
    if let Err(e) = check_revisions(&revisions) {
        fail(c, &history, e);
    }
    let (rev, hash) = match converge(c).await {
        Ok(x) => x,
        Err(e) => fail(c, &history, e),
    };
    let watch = match watcher {
        None => "no watcher".to_string(),
        Some(w) => match w.finish(rev, &history, &revisions).await {
            Ok(Some(s)) => s,
            Ok(None) => "NOTE: the Watch RPC answers Unimplemented; watch check skipped".into(),
            Err(e) => fail(c, &history, e),
        },
    };
    eprintln!(
        "{test}: linearizable and revisions consistent ({} ops searched over {} keys, {} unobserved indeterminate writes pruned, {} steps, {:.2?}); \
         {} members at revision {rev} with HashKV {hash:#010x}; {watch}\n  {stats}\n  verify took {:.2?}",
        report.ops,
        report.keys,
        report.pruned,
        report.steps,
        check_time,
        c.live().len(),
        started.elapsed()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(client: usize, invoke: u64, complete: u64, revision: i64, write: bool) -> Revision {
        Revision {
            client,
            invoke,
            complete,
            revision,
            write: write.then_some(Some(revision as u64)),
            what: format!("op of client {client}"),
        }
    }

    #[test]
    fn revisions_must_not_go_back_in_real_time() {
        let ok = vec![
            rev(0, 0, 10, 5, true),
            rev(1, 5, 20, 4, false),
            rev(1, 30, 40, 5, false),
        ];
        assert!(check_revisions(&ok).is_ok());
        let stale = vec![rev(0, 0, 10, 5, true), rev(1, 20, 30, 4, false)];
        let e = check_revisions(&stale).unwrap_err();
        assert!(e.contains("went back"), "{e}");
    }

    #[test]
    fn two_writes_cannot_share_a_revision() {
        let dup = vec![rev(0, 0, 10, 5, true), rev(1, 0, 10, 5, true)];
        assert!(check_revisions(&dup)
            .unwrap_err()
            .contains("two acknowledged writes"));
        let reads = vec![rev(0, 0, 10, 5, false), rev(1, 0, 10, 5, false)];
        assert!(check_revisions(&reads).is_ok());
    }

    #[test]
    fn values_round_trip_with_padding() {
        assert_eq!(decode(&encode(3_000_017, 0)), 3_000_017);
        assert_eq!(decode(&encode(3_000_017, 100)), 3_000_017);
        assert_eq!(decode(b"not ours"), u64::MAX);
    }
}
