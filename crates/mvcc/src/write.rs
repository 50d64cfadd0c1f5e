//! The write batch (one redb write transaction) and the etcd write txns inside it.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redb::{Durability, ReadableTable, Table, WriteTransaction};
use rustcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};

use crate::error::{Error, Result, StorageContext};
use crate::range::{self, newest_row, put_value, visit_live, KvKey, KvValue, RangeView};
use crate::schema::{
    decode_put, decode_rev_value, encode_i64, encode_pair, encode_put, encode_rev_value, RangeEnd,
    APP_META, KV, META, META_COMPACT_CURSOR, META_COMPACT_REV, META_CONSISTENT_INDEX,
    META_CURRENT_REV, REV,
};
use crate::store::{load_committed, Committed, Inner};

/// A batch of etcd write txns, compactions and meta writes applied in one redb write transaction
/// and committed together (see [`crate::Store::begin_batch`]). Dropping it without
/// [`WriteBatch::commit`] discards everything it did.
///
/// If any write fails half-way, the batch is poisoned: later writes and the commit return
/// [`Error::Storage`], so a partially applied change can never be committed.
pub struct WriteBatch {
    wtx: WriteTransaction,
    inner: Arc<Inner>,
    /// State when the batch began.
    base: Committed,
    /// Current revision including this batch's ended txns.
    rev: i64,
    /// Compact revision including this batch's compactions (-1 = never).
    compact_rev: i64,
    /// Physical compaction cursor including this batch's work.
    compact_cursor: (u64, u64),
    consistent_index: Option<(u64, u64)>,
    events: Vec<Event>,
    poisoned: Option<String>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("base", &self.base)
            .field("revision", &self.rev)
            .field("compact_revision", &self.compact_rev)
            .field("consistent_index", &self.consistent_index)
            .field("events", &self.events.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl WriteBatch {
    pub(crate) fn new(inner: Arc<Inner>, wtx: WriteTransaction) -> Result<WriteBatch> {
        // The file, not the cached state, is authoritative.
        let base = {
            let meta = wtx.open_table(META).ctx("opening meta table")?;
            load_committed(&meta)?
        };
        Ok(WriteBatch {
            wtx,
            inner,
            base,
            rev: base.current_rev,
            compact_rev: base.compact_rev,
            compact_cursor: base.compact_cursor,
            consistent_index: None,
            events: Vec::new(),
            poisoned: None,
        })
    }

    /// Begins one etcd write txn. All its writes share one main revision (one above the batch's
    /// revision) with increasing sub revisions; a txn that writes nothing leaves the revision alone.
    /// The txn ends with [`TxnWrite::end`] or when dropped.
    pub fn txn(&mut self) -> TxnWrite<'_> {
        TxnWrite {
            batch: self,
            sub: 0,
            ended: false,
        }
    }

    /// The store revision including this batch's txns.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// The compact revision including this batch's compactions; 0 if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact_rev.max(0)
    }

    /// Compacts away all history below `rev`, as etcd does: every key keeps its newest version
    /// at or below `rev` (unless that is a deletion, which goes too) and everything after it.
    /// Reads and watches below `rev` fail with [`Error::Compacted`] from now on (within this
    /// batch too). Fails with `Compacted` if `rev` is not above the current compact revision and
    /// with [`Error::FutureRev`] if it is beyond [`WriteBatch::revision`]. (As in etcd, a store
    /// never compacted accepts revision 0 once.)
    ///
    /// The physical removal is bounded per batch, like etcd's background compaction, so that a
    /// large compaction cannot stall the apply loop: [`WriteBatch::commit`] removes up to about
    /// 2,000 rows (fewer of large values: about 8 MB), and later batches carry on from a cursor
    /// persisted with them (it survives restarts). [`crate::Store::compaction_pending`] says whether work is left. Nothing a
    /// reader can observe depends on that progress.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        self.check_poisoned()?;
        if rev <= self.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRev);
        }
        self.compact_rev = rev;
        Ok(())
    }

    /// One bounded step of physical compaction towards the compact revision C.
    ///
    /// Walks the `rev` table from the cursor up to (C, MAX). For each key met (once per step),
    /// removes its rows at or below C except the newest one if that is a put; the rows go oldest
    /// first, so a key interrupted by the budget is met again by the next step. Keys whose rows
    /// are all at or below an earlier cursor were already reduced to their newest put below the
    /// compact revision of that time, which stays their newest row <= C unless they changed
    /// since: then they have a `rev` entry past the cursor and are met here.
    fn compaction_step(&mut self, budget: usize) -> Result<()> {
        let state = self.state();
        let Some(end) = state.compaction_end() else {
            return Ok(());
        };
        if !state.compaction_pending() {
            return Ok(());
        }
        let c = end.0;
        let started = std::time::Instant::now();
        let mut kv = self.wtx.open_table(KV).ctx("opening kv table")?;
        let mut revs = self.wtx.open_table(REV).ctx("opening rev table")?;

        // Work = rev rows looked at + rows removed, each weighted by the pages it spans
        // (`row_work`): a row is read whole to learn its key, so with 100 KiB values an
        // unweighted budget of 2,000 rows read 200 MB per step and stalled the apply thread
        // for ~300 ms. The step stops once the work reaches the budget.
        let mut entries: Vec<((u64, u64), Vec<u8>, usize)> = Vec::new();
        let mut scanned_to_end = true;
        let mut scan_work = 0usize;
        for row in revs
            .range::<(u64, u64)>((Bound::Excluded(self.compact_cursor), Bound::Included(end)))
            .ctx("reading rev table")?
        {
            if scan_work >= budget {
                scanned_to_end = false;
                break;
            }
            let (k, v) = row.ctx("reading rev table")?;
            let w = row_work(v.value().len());
            scan_work += w;
            let key = decode_rev_value(v.value())?.key;
            entries.push((k.value(), key.to_vec(), w));
        }

        let mut work = 0usize;
        let mut done: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor = self.compact_cursor;
        let mut interrupted = false;
        let mut removed = 0usize;
        for (at, key, w) in entries {
            if work >= budget {
                interrupted = true;
                break;
            }
            work += w;
            if !done.contains(&key) {
                let allowance = budget.saturating_sub(work).max(1);
                let (n, n_work, finished) = compact_key(&mut kv, &mut revs, &key, c, allowance)?;
                work += n_work;
                removed += n;
                if !finished {
                    interrupted = true;
                    break;
                }
                done.insert(key);
            }
            cursor = at;
        }
        if scanned_to_end && !interrupted {
            cursor = end;
        }
        tracing::debug!(
            compact_revision = c,
            from = ?self.compact_cursor,
            to = ?cursor,
            keys = done.len(),
            removed,
            finished = cursor == end,
            took_ms = started.elapsed().as_millis() as u64,
            "physical compaction step"
        );
        self.compact_cursor = cursor;
        Ok(())
    }

    /// Records the applied raft (index, term); written in the same redb transaction at commit.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) {
        self.consistent_index = Some((index, term));
    }

    /// Writes a server meta value (its own namespace, apart from the store's bookkeeping).
    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.check_poisoned()?;
        let r = (|| {
            let mut t = self
                .wtx
                .open_table(APP_META)
                .ctx("opening app_meta table")?;
            t.insert(key, value).ctx("writing app_meta")?;
            Ok(())
        })();
        self.poison_on_err(r)
    }

    /// Removes a server meta value (no error if absent).
    pub fn delete_meta(&mut self, key: &str) -> Result<()> {
        self.check_poisoned()?;
        let r = (|| {
            let mut t = self
                .wtx
                .open_table(APP_META)
                .ctx("opening app_meta table")?;
            t.remove(key).ctx("removing app_meta")?;
            Ok(())
        })();
        self.poison_on_err(r)
    }

    /// A server meta value, including this batch's own `put_meta`s.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self
            .wtx
            .open_table(APP_META)
            .ctx("opening app_meta table")?;
        let value = t
            .get(key)
            .ctx("reading app_meta")?
            .map(|v| v.value().to_vec());
        Ok(value)
    }

    /// Commits the batch. `durable` selects redb's `Durability::Immediate` (fsynced when this
    /// returns) or `Durability::None` (visible to readers at once, persisted by the next durable
    /// commit or a clean close; lost if the process dies first, the raft log being the durable
    /// record). Returns the watch events of the batch in revision order. Afterwards
    /// [`crate::Store::read`] sees the batch and the `Store` accessors reflect it.
    pub fn commit(mut self, durable: bool) -> Result<Vec<Event>> {
        if let Some(why) = &self.poisoned {
            return Err(Error::Storage(format!(
                "refusing to commit a batch after a failed write: {why}"
            )));
        }
        let budget = self.inner.compaction_budget.load(Ordering::Relaxed);
        let r = self.compaction_step(budget);
        self.poison_on_err(r)?;
        let state = self.state();
        let WriteBatch {
            wtx,
            inner,
            base,
            events,
            ..
        } = self;
        commit_meta(&wtx, &base, &state)?;
        let mut wtx = wtx;
        wtx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .ctx("setting commit durability")?;
        wtx.commit().ctx("committing write batch")?;
        inner.set_state(state);
        inner.refresh_file_size();
        if state.compact_cursor != base.compact_cursor && !state.compaction_pending() {
            // A compaction just finished: the size estimate is worth recomputing.
            inner.invalidate_in_use();
        }
        Ok(events)
    }

    /// The bookkeeping this batch would commit.
    fn state(&self) -> Committed {
        Committed {
            current_rev: self.rev,
            compact_rev: self.compact_rev,
            compact_cursor: self.compact_cursor,
            consistent_index: self.consistent_index.unwrap_or(self.base.consistent_index),
        }
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Storage(format!(
                "write batch unusable after a failed write: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn poison_on_err<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.poisoned = Some(e.to_string());
        }
        r
    }
}

/// Writes the `meta` entries that changed between `base` and `new`.
fn commit_meta(wtx: &WriteTransaction, base: &Committed, new: &Committed) -> Result<()> {
    let mut meta = wtx.open_table(META).ctx("opening meta table")?;
    if new.current_rev != base.current_rev {
        meta.insert(META_CURRENT_REV, encode_i64(new.current_rev).as_slice())
            .ctx("writing current revision")?;
    }
    if new.compact_rev != base.compact_rev {
        meta.insert(META_COMPACT_REV, encode_i64(new.compact_rev).as_slice())
            .ctx("writing compact revision")?;
    }
    if new.compact_cursor != base.compact_cursor {
        let (main, sub) = new.compact_cursor;
        meta.insert(META_COMPACT_CURSOR, encode_pair(main, sub).as_slice())
            .ctx("writing compaction cursor")?;
    }
    if new.consistent_index != base.consistent_index {
        let (index, term) = new.consistent_index;
        meta.insert(META_CONSISTENT_INDEX, encode_pair(index, term).as_slice())
            .ctx("writing consistent index")?;
    }
    Ok(())
}

/// Compaction work units for a `rev` row of `len` bytes: 1, plus one per 4 KiB page it spans.
fn row_work(len: usize) -> usize {
    1 + len / 4096
}

/// Removes the rows of `key` at or below revision `c` that compaction drops, until their work
/// (see [`row_work`]) reaches about `allowance`: all but the newest, oldest first, then the
/// newest too if it is a tombstone (only once all older rows are gone, so an interrupted key
/// still reads the same). Returns how many rows were removed, their work, and whether the key
/// is finished.
fn compact_key(
    kv: &mut Table<'_, KvKey, KvValue>,
    revs: &mut Table<'_, (u64, u64), &'static [u8]>,
    key: &[u8],
    c: u64,
    allowance: usize,
) -> Result<(usize, usize, bool)> {
    let mut doomed: Vec<(u64, u64)> = Vec::new();
    let mut finished = true;
    {
        let mut rows = kv
            .range::<(&[u8], u64, u64)>((key, 0, 0)..=(key, c, u64::MAX))
            .ctx("reading kv table")?;
        let Some(newest) = rows.next_back() else {
            return Ok((0, 0, true));
        };
        let (k, v) = newest.ctx("reading kv table")?;
        let (_, newest_main, newest_sub) = k.value();
        let newest_is_tombstone = v.value().is_empty();
        // The rest of `rows` are the older rows, oldest first.
        for row in rows {
            if doomed.len() >= allowance {
                finished = false;
                break;
            }
            let (k, _) = row.ctx("reading kv table")?;
            let (_, main, sub) = k.value();
            doomed.push((main, sub));
        }
        if finished && newest_is_tombstone {
            doomed.push((newest_main, newest_sub));
        }
    }
    let mut work = 0usize;
    let mut removed = 0usize;
    for &(main, sub) in &doomed {
        if work >= allowance {
            finished = false;
            break;
        }
        kv.remove((key, main, sub))
            .ctx("removing compacted kv row")?;
        let old = revs.remove((main, sub)).ctx("removing compacted rev row")?;
        work += row_work(old.map_or(0, |v| v.value().len()));
        removed += 1;
    }
    Ok((removed, work, finished))
}

/// One etcd write txn inside a [`WriteBatch`] (see [`WriteBatch::txn`]).
pub struct TxnWrite<'b> {
    batch: &'b mut WriteBatch,
    /// Number of writes so far = the next sub revision.
    sub: u64,
    ended: bool,
}

impl std::fmt::Debug for TxnWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnWrite")
            .field("main", &self.main())
            .field("writes", &self.sub)
            .finish()
    }
}

impl TxnWrite<'_> {
    /// The main revision this txn writes at.
    fn main(&self) -> i64 {
        self.batch.rev + 1
    }

    /// The revision this txn reads at: its own once it has written, as in etcd.
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.main()
        } else {
            self.batch.rev
        }
    }

    /// etcd's Range, seeing the batch's earlier txns and this txn's own writes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.batch.check_poisoned()?;
        let kv = self.batch.wtx.open_table(KV).ctx("opening kv table")?;
        let revs = self.batch.wtx.open_table(REV).ctx("opening rev table")?;
        range::range(
            &kv,
            &revs,
            req,
            RangeView {
                current: self.read_rev(),
                compacted: self.batch.compact_rev,
            },
        )
    }

    /// Puts `key` = `value` with `lease`; returns the previous live KeyValue, if any, **without its
    /// value** (reading it would cost a lookup per put; use [`TxnWrite::range`] first for that).
    /// A new (or deleted and re-created) key gets version 1 and create_revision = this txn's
    /// revision; otherwise the version is incremented and create_revision kept.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<Option<KeyValue>> {
        self.batch.check_poisoned()?;
        let main = self.main();
        let sub = self.sub;
        let r = (|| {
            let mut kv_table = self.batch.wtx.open_table(KV).ctx("opening kv table")?;
            let prev = match newest_row(&kv_table, key, main as u64)? {
                Some((_, row)) if !row.value().is_empty() => Some(decode_put(key, row.value())?),
                _ => None,
            };
            let (create_revision, version) = match &prev {
                Some(p) => (p.create_revision, p.version + 1),
                None => (main, 1),
            };
            let kv = KeyValue {
                key: key.to_vec(),
                create_revision,
                mod_revision: main,
                version,
                value: value.to_vec(),
                lease,
            };
            kv_table
                .insert((key, main as u64, sub), encode_put(&kv).as_slice())
                .ctx("writing kv row")?;
            let mut revs = self.batch.wtx.open_table(REV).ctx("opening rev table")?;
            revs.insert(
                (main as u64, sub),
                encode_rev_value(false, key, value).as_slice(),
            )
            .ctx("writing rev row")?;
            Ok((prev, kv))
        })();
        let (prev, kv) = self.batch.poison_on_err(r)?;
        self.sub += 1;
        self.batch.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        Ok(prev)
    }

    /// Deletes the live keys of the etcd range [`key`, `range_end`) (empty `range_end`: just
    /// `key`; `"\0"`: every key >= `key`) by writing tombstones; returns the deleted KeyValues
    /// as they were, with their values only if `with_values` (etcd's `prev_kv`: reading values
    /// costs a lookup per key). Deleting nothing writes nothing.
    pub fn delete_range(
        &mut self,
        key: &[u8],
        range_end: &[u8],
        with_values: bool,
    ) -> Result<Vec<KeyValue>> {
        self.batch.check_poisoned()?;
        let main = self.main();
        let first_sub = self.sub;
        let r = (|| {
            let mut kv_table = self.batch.wtx.open_table(KV).ctx("opening kv table")?;
            let mut revs = self.batch.wtx.open_table(REV).ctx("opening rev table")?;
            let mut live = Vec::new();
            visit_live(
                &kv_table,
                key,
                RangeEnd::from_request(range_end),
                main as u64,
                |k, sub, row| {
                    let mut kv = decode_put(k, row)?;
                    if with_values {
                        kv.value = put_value(&revs, kv.mod_revision as u64, sub)?;
                    }
                    live.push(kv);
                    Ok(true)
                },
            )?;
            for (i, kv) in live.iter().enumerate() {
                let sub = first_sub + i as u64;
                kv_table
                    .insert((kv.key.as_slice(), main as u64, sub), [].as_slice())
                    .ctx("writing tombstone")?;
                revs.insert(
                    (main as u64, sub),
                    encode_rev_value(true, &kv.key, &[]).as_slice(),
                )
                .ctx("writing rev row")?;
            }
            Ok(live)
        })();
        let deleted = self.batch.poison_on_err(r)?;
        self.sub += deleted.len() as u64;
        for kv in &deleted {
            self.batch.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: kv.key.clone(),
                    mod_revision: main,
                    ..Default::default()
                }),
                prev_kv: None,
            });
        }
        Ok(deleted)
    }

    /// Ends the txn; returns the store revision after it (bumped by one if it wrote anything).
    pub fn end(mut self) -> i64 {
        self.finish();
        self.batch.rev
    }

    fn finish(&mut self) {
        if !self.ended {
            self.ended = true;
            if self.sub > 0 {
                self.batch.rev += 1;
            }
        }
    }
}

impl Drop for TxnWrite<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}
