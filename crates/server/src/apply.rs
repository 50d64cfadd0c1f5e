//! Apply: the ONE place replicated state changes. Runs on the apply thread,
//! one redb transaction per batch of committed entries, with the applied
//! index stored in that same transaction, so after a crash an entry is
//! either fully applied or re-applied from the WAL, never half or twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use protobuf::Message as _;
use rustcd_mvcc::{ReadTxn, Store, TxnWrite, WriteBatch};
use rustcd_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnResponse,
};
use rustcd_proto::mvccpb::KeyValue;
use rustcd_proto::rustcdpb::internal_raft_request::Request;
use rustcd_proto::rustcdpb::{ConfChangeContext, InternalRaftRequest, PublishAttributes};
use rustcd_raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, EntryType, Snapshot,
};
use rustcd_raft::{Committed, SnapshotSource, StateMachine};

use crate::core::Shared;
use crate::error::ServerError;
use crate::lease::Lessor;
use crate::membership::Members;
use crate::txn::{self, KvView};

/// Meta keys the server keeps in the store (replicated with the data).
pub(crate) const META_MEMBERS: &str = "members";
pub(crate) const META_CONF_STATE: &str = "conf_state";
pub(crate) const META_CLUSTER_ID: &str = "cluster_id";
pub(crate) const META_REMOVED: &str = "removed_members";

fn encode_ids(ids: &std::collections::BTreeSet<u64>) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_be_bytes()).collect()
}

/// The ids of members removed from the cluster, as stored in `store`.
pub(crate) fn load_removed(store: &Store) -> Result<std::collections::BTreeSet<u64>, String> {
    let raw = store.get_meta(META_REMOVED).map_err(|e| e.to_string())?;
    Ok(raw
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// How often apply makes its redb commits durable even without a snapshot;
/// bounds how much of the WAL a restart replays. Kept short so each fsync
/// has little to write: it shares the disk with the WAL's fsyncs, and a 5 s
/// backlog of dirty pages stalled them long enough under load to cost the
/// leader its quorum.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// What applying one request produced, handed to its waiter.
#[derive(Debug)]
pub(crate) enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    Empty,
}

impl Applied {
    /// The error for a handler that got a result of the wrong kind (a bug).
    pub(crate) fn unexpected(self) -> tonic::Status {
        ServerError::Internal(format!("unexpected apply result {self:?}")).into()
    }
}

pub(crate) struct Applier {
    shared: Arc<Shared>,
    last_durable: Instant,
}

impl Applier {
    pub(crate) fn new(shared: Arc<Shared>) -> Applier {
        Applier {
            shared,
            last_durable: Instant::now(),
        }
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    fn apply_request(
        &self,
        batch: &mut WriteBatch,
        req: Option<Request>,
    ) -> Result<Applied, ServerError> {
        let Some(req) = req else {
            return Ok(Applied::Empty);
        };
        match req {
            Request::Put(_) | Request::LeaseGrant(_) if self.shared.alarms.no_space() => {
                Err(ServerError::NoSpace)
            }
            Request::Txn(t) if self.shared.alarms.no_space() && !txn::is_read_only(&t) => {
                Err(ServerError::NoSpace)
            }
            Request::Put(p) => {
                let begin = batch.revision();
                let mut view = WriteView::new(batch, &self.shared.lessor);
                let r = txn::apply_put(&mut view, &p, begin);
                view.end();
                r.map(Applied::Put)
            }
            Request::DeleteRange(d) => {
                let begin = batch.revision();
                let mut view = WriteView::new(batch, &self.shared.lessor);
                let r = txn::apply_delete(&mut view, &d, begin);
                view.end();
                r.map(Applied::DeleteRange)
            }
            Request::Txn(t) => {
                let mut view = WriteView::new(batch, &self.shared.lessor);
                let r = txn::apply_txn(&mut view, &t);
                view.end();
                r.map(Applied::Txn)
            }
            Request::Compaction(c) => {
                batch.compact(c.revision)?;
                Ok(Applied::Compaction(CompactionResponse {
                    header: Some(ResponseHeader {
                        revision: batch.revision(),
                        ..Default::default()
                    }),
                }))
            }
            Request::Publish(p) => {
                self.apply_publish(batch, &p)?;
                Ok(Applied::Empty)
            }
            Request::MemberUpdate(u) => {
                let mut members = self.shared.members.write().unwrap();
                let Some(m) = members.0.get_mut(&u.member_id) else {
                    return Err(ServerError::MemberNotFound);
                };
                m.peer_urls = u.peer_urls.clone();
                self.shared.transport.add_peer(u.member_id, u.peer_urls);
                batch.put_meta(META_MEMBERS, &members.encode())?;
                Ok(Applied::Empty)
            }
            Request::LeaseGrant(g) => {
                let ttl = self.shared.lessor.grant(batch, g.id, g.ttl)?;
                Ok(Applied::LeaseGrant(LeaseGrantResponse {
                    header: Some(ResponseHeader {
                        revision: batch.revision(),
                        ..Default::default()
                    }),
                    id: g.id,
                    ttl,
                    error: String::new(),
                }))
            }
            Request::LeaseRevoke(r) => {
                let keys = self.shared.lessor.revoke(batch, r.id)?;
                // All attached keys go in one revision, as etcd does.
                let mut view = WriteView::new(batch, &self.shared.lessor);
                let mut result = Ok(());
                for k in &keys {
                    if let Err(e) = view.delete_range(k, &[], false) {
                        result = Err(e);
                        break;
                    }
                }
                view.end();
                result?;
                Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
                    header: Some(ResponseHeader {
                        revision: batch.revision(),
                        ..Default::default()
                    }),
                }))
            }
            Request::LeaseCheckpoint(c) => {
                for cp in &c.checkpoints {
                    self.shared
                        .lessor
                        .checkpoint(batch, cp.id, cp.remaining_ttl)?;
                }
                Ok(Applied::Empty)
            }
            Request::Alarm(a) => {
                let alarms = self.shared.alarms.apply(batch, &a)?;
                Ok(Applied::Alarm(AlarmResponse {
                    header: Some(ResponseHeader {
                        revision: batch.revision(),
                        ..Default::default()
                    }),
                    alarms,
                }))
            }
        }
    }

    fn apply_publish(
        &self,
        batch: &mut WriteBatch,
        p: &PublishAttributes,
    ) -> Result<(), ServerError> {
        let mut members = self.shared.members.write().unwrap();
        if let Some(m) = members.0.get_mut(&p.member_id) {
            m.name = p.name.clone();
            m.client_urls = p.client_urls.clone();
        }
        batch.put_meta(META_MEMBERS, &members.encode())?;
        Ok(())
    }

    /// A conf change Raft accepted: update the member set and the transport.
    fn apply_conf_change(
        &self,
        batch: &mut WriteBatch,
        changes: Vec<(ConfChangeType, u64)>,
        ctx: &ConfChangeContext,
        conf_state: &ConfState,
    ) -> Result<(), ServerError> {
        let mut members = self.shared.members.write().unwrap();
        for (typ, id) in changes {
            match typ {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    // A promotion keeps what is known of the member.
                    let mut m = members
                        .0
                        .get(&id)
                        .cloned()
                        .or_else(|| ctx.member.clone())
                        .unwrap_or_default();
                    m.id = id;
                    m.is_learner = typ == ConfChangeType::AddLearnerNode;
                    self.shared.transport.add_peer(id, m.peer_urls.clone());
                    members.0.insert(id, m);
                }
                ConfChangeType::RemoveNode => {
                    members.0.remove(&id);
                    let mut removed = self.shared.removed_ids.write().unwrap();
                    removed.insert(id);
                    batch.put_meta(META_REMOVED, &encode_ids(&removed))?;
                    self.shared.transport.remove_peer(id);
                    if id == self.shared.member_id {
                        tracing::warn!("this member has been permanently removed from the cluster");
                        self.shared.removed.send_replace(true);
                    }
                }
            }
        }
        batch.put_meta(META_MEMBERS, &members.encode())?;
        batch.put_meta(
            META_CONF_STATE,
            &conf_state
                .write_to_bytes()
                .map_err(|e| ServerError::Internal(e.to_string()))?,
        )?;
        Ok(())
    }
}

impl StateMachine for Applier {
    fn apply(&mut self, entries: Vec<Committed>) -> Result<(), String> {
        let store = self.store().clone();
        let mut batch = store.begin_batch().map_err(|e| e.to_string())?;
        let mut done = Vec::new();
        let mut durable = false;
        let mut last = 0;
        for c in entries {
            let e = &c.entry;
            last = e.index;
            match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => {}
                EntryType::EntryNormal => match InternalRaftRequest::decode(&e.data[..]) {
                    Ok(req) => {
                        let r = self.apply_request(&mut batch, req.request);
                        done.push((req.id, r));
                    }
                    Err(err) => {
                        tracing::error!(index = e.index, error = %err, "undecodable raft entry skipped")
                    }
                },
                typ => {
                    // Membership must never be replayed over a newer conf
                    // state after a crash, so its batch is made durable.
                    durable = true;
                    let (changes, ctx) = conf_changes(typ, &e.data).map_err(|e| e.to_string())?;
                    let ctx = ConfChangeContext::decode(&ctx[..]).unwrap_or_default();
                    let r = match &c.conf_state {
                        Some(cs) => self
                            .apply_conf_change(&mut batch, changes, &ctx, cs)
                            .map(|()| Applied::Empty),
                        None => Err(ServerError::Internal(
                            "raft rejected the configuration change".into(),
                        )),
                    };
                    done.push((ctx.request_id, r));
                }
            }
            batch.set_consistent_index(e.index, e.term);
        }
        durable |= self.last_durable.elapsed() >= DURABLE_EVERY;
        let started = Instant::now();
        let events = batch.commit(durable).map_err(|e| e.to_string())?;
        rustcd_raft::metrics::BACKEND_COMMIT.observe(started.elapsed());
        self.shared
            .watch_hub
            .notify(self.store().current_revision(), events);
        if durable {
            self.last_durable = Instant::now();
        }
        // Only now can a reader see the writes: wake waiters after commit.
        self.shared.applied_tx.send_replace(last);
        let mut waiters = self.shared.waiters.lock().unwrap();
        for (id, r) in done {
            if let Some(w) = waiters.remove(&id) {
                let _ = w.send(r);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<u64, String> {
        let batch = self.store().begin_batch().map_err(|e| e.to_string())?;
        batch.commit(true).map_err(|e| e.to_string())?;
        self.last_durable = Instant::now();
        Ok(self.store().consistent_index().0)
    }

    fn restore(&mut self, snapshot: &rustcd_raft::eraftpb::Snapshot) -> Result<(), String> {
        let store = self.store();
        store.restore(&snapshot.data).map_err(|e| e.to_string())?;
        self.shared.watch_hub.restored(store.current_revision());
        let (members, _) = load_membership(store)?;
        self.shared.alarms.reload(store)?;
        *self.shared.removed_ids.write().unwrap() = load_removed(store)?;
        {
            let mut current = self.shared.members.write().unwrap();
            for id in current.0.keys() {
                if !members.0.contains_key(id) {
                    self.shared.transport.remove_peer(*id);
                }
            }
            for m in members.0.values() {
                self.shared.transport.add_peer(m.id, m.peer_urls.clone());
            }
            *current = members;
        }
        self.last_durable = Instant::now();
        self.shared
            .applied_tx
            .send_replace(snapshot.get_metadata().index);
        Ok(())
    }

    fn on_tick(&mut self) -> bool {
        // Physical compaction proceeds a bounded step per commit; an idle
        // member commits empty batches so it still finishes, 10 ms at a time
        // (it is the apply thread's time: entries wait at most about that
        // long), and is called again at once while nothing else is queued.
        let until = Instant::now() + Duration::from_millis(10);
        while self.store().compaction_pending() && Instant::now() < until {
            if let Err(e) = self.store().begin_batch().and_then(|b| b.commit(false)) {
                tracing::warn!(error = %e, "compaction step failed");
                return false;
            }
        }
        self.store().compaction_pending()
    }
}

/// The member set and Raft conf state stored in `store`.
pub(crate) fn load_membership(store: &Store) -> Result<(Members, ConfState), String> {
    let members = store
        .get_meta(META_MEMBERS)
        .map_err(|e| e.to_string())?
        .ok_or("no membership stored")?;
    let members = Members::decode(&members).map_err(|e| format!("bad membership: {e}"))?;
    let cs = store
        .get_meta(META_CONF_STATE)
        .map_err(|e| e.to_string())?
        .ok_or("no raft conf state stored")?;
    let cs = ConfState::parse_from_bytes(&cs).map_err(|e| format!("bad conf state: {e}"))?;
    Ok((members, cs))
}

/// Raft snapshots are the whole store, dumped from one read transaction so
/// data, applied index and conf state agree.
pub(crate) struct StoreSnapshots(pub(crate) Store);

impl SnapshotSource for StoreSnapshots {
    fn snapshot(&self) -> Result<Snapshot, String> {
        let rtx = self.0.read().map_err(|e| e.to_string())?;
        let (index, term) = rtx.consistent_index().map_err(|e| e.to_string())?;
        let cs = rtx
            .get_meta(META_CONF_STATE)
            .map_err(|e| e.to_string())?
            .ok_or("no raft conf state stored")?;
        let cs = ConfState::parse_from_bytes(&cs).map_err(|e| e.to_string())?;
        let data = rtx.snapshot_data().map_err(|e| e.to_string())?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(cs);
        Ok(snap)
    }
}

/// (change type, node id) pairs of one conf change entry.
type Changes = Vec<(ConfChangeType, u64)>;

/// The changes of a conf change entry, and its context.
fn conf_changes(
    typ: EntryType,
    data: &[u8],
) -> Result<(Changes, Vec<u8>), protobuf::ProtobufError> {
    if typ == EntryType::EntryConfChange {
        let cc = ConfChange::parse_from_bytes(data)?;
        Ok((
            vec![(cc.get_change_type(), cc.node_id)],
            cc.context.to_vec(),
        ))
    } else {
        let cc = ConfChangeV2::parse_from_bytes(data)?;
        let changes = cc
            .changes
            .iter()
            .map(|c| (c.get_change_type(), c.node_id))
            .collect();
        Ok((changes, cc.context.to_vec()))
    }
}

/// One etcd write txn seen through [`KvView`].
pub(crate) struct WriteView<'a> {
    txn: TxnWrite<'a>,
    lessor: &'a Lessor,
    begin: i64,
    compacted: i64,
    wrote: bool,
}

impl<'a> WriteView<'a> {
    pub(crate) fn new(batch: &'a mut WriteBatch, lessor: &'a Lessor) -> WriteView<'a> {
        let begin = batch.revision();
        let compacted = batch.compact_revision();
        WriteView {
            txn: batch.txn(),
            lessor,
            begin,
            compacted,
            wrote: false,
        }
    }

    pub(crate) fn end(self) {
        self.txn.end();
    }
}

impl KvView for WriteView<'_> {
    fn revision(&self) -> i64 {
        self.begin + i64::from(self.wrote)
    }
    fn compact_revision(&self) -> i64 {
        self.compacted
    }
    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, ServerError> {
        Ok(self.txn.range(r)?)
    }
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<Option<KeyValue>, ServerError> {
        self.wrote = true;
        let prev = self.txn.put(key, value, lease)?;
        self.lessor
            .reattach(key, prev.as_ref().map_or(0, |kv| kv.lease), lease);
        Ok(prev)
    }
    fn delete_range(
        &mut self,
        key: &[u8],
        end: &[u8],
        with_values: bool,
    ) -> Result<Vec<KeyValue>, ServerError> {
        let deleted = self.txn.delete_range(key, end, with_values)?;
        self.wrote |= !deleted.is_empty();
        for kv in &deleted {
            self.lessor.reattach(&kv.key, kv.lease, 0);
        }
        Ok(deleted)
    }
    fn lease_exists(&self, id: i64) -> bool {
        self.lessor.exists(id)
    }
}

/// A read-only snapshot seen through [`KvView`] (read-only txns, ranges).
pub(crate) struct ReadView(pub(crate) ReadTxn);

impl KvView for ReadView {
    fn revision(&self) -> i64 {
        self.0.revision()
    }
    fn compact_revision(&self) -> i64 {
        self.0.compact_revision()
    }
    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, ServerError> {
        Ok(self.0.range(r)?)
    }
    fn put(&mut self, _: &[u8], _: &[u8], _: i64) -> Result<Option<KeyValue>, ServerError> {
        Err(ServerError::Internal("write in a read-only view".into()))
    }
    fn delete_range(&mut self, _: &[u8], _: &[u8], _: bool) -> Result<Vec<KeyValue>, ServerError> {
        Err(ServerError::Internal("write in a read-only view".into()))
    }
    fn lease_exists(&self, _id: i64) -> bool {
        false
    }
}
