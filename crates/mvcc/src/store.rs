//! The store handle, opening/validating the file, and read snapshots.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, StorageError, TableError, TransactionError,
};
use rustcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rustcd_proto::mvccpb::event::EventType;
use rustcd_proto::mvccpb::{Event, KeyValue};

use crate::error::{Error, Result, StorageContext};
use crate::range::{self, KvKey, KvValue, RangeView, RevKey};
use crate::schema::{
    decode_i64, decode_pair, decode_put, decode_rev_value, in_range, APP_META, KV, META,
    META_COMPACT_CURSOR, META_COMPACT_REV, META_CONSISTENT_INDEX, META_CURRENT_REV, META_SCHEMA,
    REV, SCHEMA_VERSION,
};
use crate::write::WriteBatch;

/// Default bound on the physical compaction work of one write batch, in rows looked at or
/// removed, each weighted by its size in 4 KiB pages (see [`crate::WriteBatch::compact`]): about
/// 15 ms of work in a release build, so a compaction adds little to the latency of the requests
/// applied in the same batch (etcd likewise compacts 1,000 keys at a time).
pub(crate) const DEFAULT_COMPACTION_BUDGET: usize = 2_000;

/// redb's in-process page cache (half of it at most holds pages written by non-durable
/// commits until the next durable one). Pages outside it are read from the OS page cache.
/// 32 MiB rather than 64: measured with 100,000 keys and 500,000 puts (bench/compare.sh
/// workloads), put throughput did not change beyond run-to-run noise, and a member's peak RSS
/// went from ~120 to ~80 MiB.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How long a computed [`Store::db_size_in_use`] is reused before it is computed again.
const IN_USE_TTL: Duration = Duration::from_secs(10);

/// etcd's revisioned key space, persisted in a redb file. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.state();
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("current_revision", &s.current_rev)
            .field("compact_revision", &s.compact_rev)
            .field("consistent_index", &s.consistent_index)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    state: Mutex<Committed>,
    /// Cached `db_size_in_use` and when it was computed; `None` = compute on next call.
    in_use: Mutex<Option<(u64, Instant)>>,
    /// Serialises computing it: one caller walks the tree, the others get
    /// the cached value meanwhile.
    computing_in_use: Mutex<()>,
    pub(crate) compaction_budget: AtomicUsize,
    /// The file's size as of the last commit. Every put checks the space quota against it, so
    /// it is kept here instead of asking the file system each time (a `statx` per put was 2-3 %
    /// of a leader's CPU under a put load).
    file_size: AtomicU64,
}

/// What the last commit left behind, as seen by `Store`'s accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) current_rev: i64,
    /// -1 if never compacted.
    pub(crate) compact_rev: i64,
    /// Last `rev` entry physical compaction has dealt with.
    pub(crate) compact_cursor: (u64, u64),
    pub(crate) consistent_index: (u64, u64),
}

impl Committed {
    /// The cursor value at which physical compaction up to the compact revision is complete.
    pub(crate) fn compaction_end(&self) -> Option<(u64, u64)> {
        (self.compact_rev >= 0).then_some((self.compact_rev as u64, u64::MAX))
    }

    pub(crate) fn compaction_pending(&self) -> bool {
        self.compaction_end()
            .is_some_and(|end| self.compact_cursor < end)
    }
}

impl Inner {
    pub(crate) fn state(&self) -> Committed {
        *lock(&self.state)
    }

    pub(crate) fn set_state(&self, s: Committed) {
        *lock(&self.state) = s;
    }

    pub(crate) fn invalidate_in_use(&self) {
        *lock(&self.in_use) = None;
    }

    /// Re-reads the file's size; called after every commit (the only time redb's file grows or
    /// shrinks).
    pub(crate) fn refresh_file_size(&self) {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        self.file_size.store(len, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data that are always left consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the store's bookkeeping from the `meta` table of any transaction.
pub(crate) fn load_committed<T>(meta: &T) -> Result<Committed>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let get = |key: &str| -> Result<Option<Vec<u8>>> {
        Ok(meta
            .get(key)
            .ctx("reading meta table")?
            .map(|v| v.value().to_vec()))
    };
    let current_rev = match get(META_CURRENT_REV)? {
        Some(b) => decode_i64(META_CURRENT_REV, &b)?,
        None => 1,
    };
    let compact_rev = match get(META_COMPACT_REV)? {
        Some(b) => decode_i64(META_COMPACT_REV, &b)?,
        None => -1,
    };
    let compact_cursor = match get(META_COMPACT_CURSOR)? {
        Some(b) => decode_pair(META_COMPACT_CURSOR, &b)?,
        None => (0, 0),
    };
    let consistent_index = match get(META_CONSISTENT_INDEX)? {
        Some(b) => decode_pair(META_CONSISTENT_INDEX, &b)?,
        None => (0, 0),
    };
    Ok(Committed {
        current_rev,
        compact_rev,
        compact_cursor,
        consistent_index,
    })
}

/// Maps an error of `Database::create` to ours: the file's content being unusable is `Corrupt`,
/// an environment problem (locked by another process, permissions, missing directory) is `Storage`.
fn open_error(path: &Path, e: DatabaseError) -> Error {
    let p = path.display();
    match e {
        DatabaseError::DatabaseAlreadyOpen
        | DatabaseError::LockProtocolMismatch
        | DatabaseError::TransactionInProgress => Error::Storage(format!("opening {p}: {e}")),
        DatabaseError::Storage(StorageError::Io(io))
            if !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Error::Storage(format!("opening {p}: {io}"))
        }
        e => Error::Corrupt(format!("{p} is not a valid rustcd database: {e}")),
    }
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!(
        "{} is not a valid rustcd database: {what}",
        path.display()
    ))
}

/// Maps a table-opening error while validating the file.
fn table_error(path: &Path, e: TableError) -> Error {
    match e {
        TableError::Storage(s) => match s {
            StorageError::Corrupted(_) => corrupt(path, s),
            s => Error::Storage(format!("opening {}: {s}", path.display())),
        },
        e => corrupt(path, e),
    }
}

impl Store {
    /// Opens or creates the database file at `path` (its parent directory must exist).
    ///
    /// A new (absent or empty) file is initialised with rustcd's tables and schema marker. An
    /// existing file must be a redb database carrying rustcd's schema marker and version; if it is
    /// not (or redb reports it corrupt) the result is [`Error::Corrupt`] naming the path. Being
    /// unable to get at the file at all (missing directory, permissions, locked by another
    /// process) is [`Error::Storage`]. Never panics: a panic inside redb while opening is caught
    /// and reported as `Corrupt`.
    pub fn open(path: &Path) -> Result<Store> {
        // redb's default page cache is 1 GiB; the OS page cache already
        // holds the hot file pages, so a small cache keeps a member's RSS low.
        let open = || Database::builder().set_cache_size(CACHE_BYTES).create(path);
        let db = match catch_unwind(AssertUnwindSafe(open)) {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(open_error(path, e)),
            Err(_) => return Err(corrupt(path, "redb panicked while opening it")),
        };
        let state = match catch_unwind(AssertUnwindSafe(|| init_or_check(&db, path))) {
            Ok(r) => r?,
            Err(_) => return Err(corrupt(path, "redb panicked while reading it")),
        };
        tracing::debug!(
            path = %path.display(),
            current_revision = state.current_rev,
            compact_revision = state.compact_rev,
            consistent_index = state.consistent_index.0,
            "opened mvcc store"
        );
        let store = Store {
            inner: Arc::new(Inner {
                db,
                path: path.to_path_buf(),
                state: Mutex::new(state),
                in_use: Mutex::new(None),
                computing_in_use: Mutex::new(()),
                compaction_budget: AtomicUsize::new(DEFAULT_COMPACTION_BUDGET),
                file_size: AtomicU64::new(0),
            }),
        };
        store.inner.refresh_file_size();
        Ok(store)
    }

    /// A consistent snapshot of the last committed batch. It never blocks the writer, and sees
    /// nothing committed after it was taken. (A long-lived snapshot keeps redb from reusing the
    /// pages it references, so drop it when done.)
    pub fn read(&self) -> Result<ReadTxn> {
        ReadTxn::new(self.inner.clone())
    }

    /// Begins the write batch. Only one batch may be open at a time (the apply loop's); asking
    /// for a second while one is open returns [`Error::Storage`] instead of deadlocking.
    pub fn begin_batch(&self) -> Result<WriteBatch> {
        let wtx = match self.inner.db.try_begin_write() {
            Ok(w) => w,
            Err(TransactionError::WouldBlock) => {
                return Err(Error::Storage(
                    "beginning write batch: another write batch is still open".into(),
                ))
            }
            Err(e) => return Err(Error::Storage(format!("beginning write batch: {e}"))),
        };
        WriteBatch::new(self.inner.clone(), wtx)
    }

    /// The store's revision as of the last commit (1 for an empty store, as in etcd).
    pub fn current_revision(&self) -> i64 {
        self.inner.state().current_rev
    }

    /// The revision of the last compaction; 0 if the store was never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.inner.state().compact_rev.max(0)
    }

    /// Whether a compaction's history is not yet all physically removed (see
    /// [`WriteBatch::compact`]): each committed batch removes a bounded share of it, so a server
    /// that goes idle can commit empty batches until this turns false. Reads never depend on it.
    pub fn compaction_pending(&self) -> bool {
        self.inner.state().compaction_pending()
    }

    /// Sets how much physical compaction work one batch may do, in rows weighted by their size
    /// in 4 KiB pages (default 2,000).
    /// For tests and tuning; 0 is treated as 1.
    #[doc(hidden)]
    pub fn set_compaction_budget(&self, rows: usize) {
        self.inner
            .compaction_budget
            .store(rows.max(1), Ordering::Relaxed);
    }

    /// (applied raft index, term) as of the last commit; (0, 0) for a new store.
    pub fn consistent_index(&self) -> (u64, u64) {
        self.inner.state().consistent_index
    }

    /// A server meta value (written with [`WriteBatch::put_meta`]) as of the last commit.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read()?.get_meta(key)
    }

    /// The database file's size in bytes as of the last commit (0 if it cannot be stat'ed).
    pub fn db_size(&self) -> u64 {
        self.inner.file_size.load(Ordering::Relaxed)
    }

    /// An estimate of the bytes of the file holding live data: the pages of rustcd's tables in
    /// the latest snapshot, as counted by redb's table statistics. At most [`Store::db_size`].
    ///
    /// Counting walks every page of the tables, so the value is cached for a few seconds (and
    /// recomputed after a compaction); the walk runs on a read snapshot and never blocks writes.
    ///
    /// Computing it walks every page of every table (seconds for a large
    /// store), so it is cached for a while, and while one caller computes it
    /// the others get the cached value instead of all walking the tree at
    /// once. It blocks: async callers run it on the blocking pool.
    pub fn db_size_in_use(&self) -> u64 {
        let size = self.db_size();
        let cached = *lock(&self.inner.in_use);
        if let Some((v, at)) = cached {
            if at.elapsed() < IN_USE_TTL {
                return v.min(size);
            }
        }
        let _computing = match (self.inner.computing_in_use.try_lock(), cached) {
            (Ok(g), _) => g,
            (Err(std::sync::TryLockError::Poisoned(p)), _) => p.into_inner(),
            (Err(std::sync::TryLockError::WouldBlock), Some((v, _))) => return v.min(size),
            (Err(std::sync::TryLockError::WouldBlock), None) => lock(&self.inner.computing_in_use),
        };
        if let Some((v, at)) = *lock(&self.inner.in_use) {
            if at.elapsed() < IN_USE_TTL {
                return v.min(size);
            }
        }
        match self.compute_in_use() {
            Ok(v) => {
                *lock(&self.inner.in_use) = Some((v, Instant::now()));
                v.min(size)
            }
            Err(e) => {
                tracing::warn!(error = %e, "computing db size in use");
                cached.map_or(size, |(v, _)| v.min(size))
            }
        }
    }

    fn compute_in_use(&self) -> Result<u64> {
        let txn = self.inner.db.begin_read().ctx("beginning read")?;
        let mut total = 0u64;
        fn add<T: ReadableTableMetadata>(total: &mut u64, t: &T) -> Result<()> {
            let s = t.stats().ctx("table stats")?;
            *total += s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
            Ok(())
        }
        add(&mut total, &txn.open_table(KV).ctx("opening kv")?)?;
        add(&mut total, &txn.open_table(REV).ctx("opening rev")?)?;
        add(&mut total, &txn.open_table(META).ctx("opening meta")?)?;
        add(
            &mut total,
            &txn.open_table(APP_META).ctx("opening app_meta")?,
        )?;
        // redb's own header and table directory.
        Ok(total + 4 * 4096)
    }
}

/// Creates the tables of a new file, or checks an existing file is a rustcd store; returns the
/// committed bookkeeping.
fn init_or_check(db: &Database, path: &Path) -> Result<Committed> {
    let rtx = db.begin_read().map_err(|e| corrupt(path, e))?;
    match rtx.open_table(META) {
        Ok(meta) => {
            match meta.get(META_SCHEMA).map_err(|e| corrupt(path, e))? {
                Some(v) if v.value() == SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(corrupt(
                        path,
                        format!(
                            "unsupported schema {:?} (this build reads {:?})",
                            String::from_utf8_lossy(v.value()),
                            String::from_utf8_lossy(SCHEMA_VERSION)
                        ),
                    ))
                }
                None => return Err(corrupt(path, "no rustcd schema marker")),
            }
            rtx.open_table(KV).map_err(|e| table_error(path, e))?;
            rtx.open_table(REV).map_err(|e| table_error(path, e))?;
            rtx.open_table(APP_META).map_err(|e| table_error(path, e))?;
            load_committed(&meta).map_err(|e| match e {
                Error::Corrupt(m) => corrupt(path, m),
                e => e,
            })
        }
        Err(TableError::TableDoesNotExist(_)) => {
            let empty = rtx
                .list_tables()
                .map_err(|e| corrupt(path, e))?
                .next()
                .is_none()
                && rtx
                    .list_multimap_tables()
                    .map_err(|e| corrupt(path, e))?
                    .next()
                    .is_none();
            if !empty {
                return Err(corrupt(path, "a redb database without rustcd's tables"));
            }
            drop(rtx);
            let mut wtx = db.begin_write().ctx("initialising new store")?;
            wtx.set_durability(Durability::Immediate)
                .ctx("initialising new store")?;
            {
                let mut meta = wtx.open_table(META).ctx("creating meta table")?;
                meta.insert(META_SCHEMA, SCHEMA_VERSION)
                    .ctx("writing schema marker")?;
                wtx.open_table(KV).ctx("creating kv table")?;
                wtx.open_table(REV).ctx("creating rev table")?;
                wtx.open_table(APP_META).ctx("creating app_meta table")?;
            }
            wtx.commit().ctx("initialising new store")?;
            Ok(Committed {
                current_rev: 1,
                compact_rev: -1,
                compact_cursor: (0, 0),
                consistent_index: (0, 0),
            })
        }
        Err(e) => Err(table_error(path, e)),
    }
}

/// A read-only snapshot of the store (see [`Store::read`]).
pub struct ReadTxn {
    pub(crate) kv: ReadOnlyTable<KvKey, KvValue>,
    pub(crate) rev: ReadOnlyTable<RevKey, KvValue>,
    txn: ReadTransaction,
    view: RangeView,
    // Keeps the database open for as long as the snapshot lives; dropped last.
    _inner: Arc<Inner>,
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("revision", &self.view.current)
            .field("compact_revision", &self.view.compacted)
            .finish()
    }
}

/// Row counts of the store's tables (diagnostics; see [`ReadTxn::row_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows of the `kv` table: every stored version, tombstones included.
    pub kv: u64,
    /// Rows of the `rev` table (equal to `kv` in a healthy store).
    pub rev: u64,
}

impl ReadTxn {
    fn new(inner: Arc<Inner>) -> Result<ReadTxn> {
        let txn = inner.db.begin_read().ctx("beginning read")?;
        let meta = txn.open_table(META).ctx("opening meta table")?;
        let c = load_committed(&meta)?;
        let kv = txn.open_table(KV).ctx("opening kv table")?;
        let rev = txn.open_table(REV).ctx("opening rev table")?;
        Ok(ReadTxn {
            kv,
            rev,
            txn,
            view: RangeView {
                current: c.current_rev,
                compacted: c.compact_rev,
            },
            _inner: inner,
        })
    }

    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    /// The store's revision in this snapshot.
    pub fn revision(&self) -> i64 {
        self.view.current
    }

    /// The compact revision in this snapshot; 0 if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.view.compacted.max(0)
    }

    /// etcd's Range over this snapshot (the response header is left `None`).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        range::range(&self.kv, &self.rev, req, self.view)
    }

    /// A server meta value in this snapshot.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self
            .txn
            .open_table(APP_META)
            .ctx("opening app_meta table")?;
        let value = t
            .get(key)
            .ctx("reading app_meta")?
            .map(|v| v.value().to_vec());
        Ok(value)
    }

    /// Every server meta entry whose key starts with `prefix`, in key order.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self
            .txn
            .open_table(APP_META)
            .ctx("opening app_meta table")?;
        let mut out = Vec::new();
        for row in t.range::<&str>(prefix..).ctx("reading app_meta")? {
            let (k, v) = row.ctx("reading app_meta")?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The history of keys in the etcd range [`key`, `range_end`) from `start_rev` on, in
    /// revision order: a put is a PUT event carrying the new KeyValue, a delete is a DELETE event
    /// whose KeyValue has only `key` and `mod_revision` (the delete's revision) set; `prev_kv` is
    /// never set.
    ///
    /// `limit` (0 = none) bounds the work: once `limit` events have been collected the walk stops
    /// at the end of that main revision, so a revision's events are never split and the caller can
    /// resume from the last event's `mod_revision + 1`. `start_rev` below the compact revision is
    /// [`Error::Compacted`]; a `start_rev` beyond this snapshot's revision yields no events.
    /// At the compact revision itself only what compaction keeps is reported (puts that are their
    /// key's final value there), whether or not the rows are physically gone yet.
    pub fn events_since(
        &self,
        start_rev: i64,
        key: &[u8],
        range_end: &[u8],
        limit: usize,
    ) -> Result<Vec<Event>> {
        if start_rev < self.view.compacted {
            return Err(Error::Compacted);
        }
        let from = start_rev.max(0) as u64;
        let revs = &self.rev;
        let mut events = Vec::new();
        let mut last_main = None;
        for row in revs
            .range::<(u64, u64)>((from, 0)..)
            .ctx("reading rev table")?
        {
            let (k, v) = row.ctx("reading rev table")?;
            let (main, sub) = k.value();
            if limit > 0 && events.len() >= limit && last_main != Some(main) {
                break;
            }
            let rv = decode_rev_value(v.value())?;
            let (tombstone, user_key) = (rv.tombstone, rv.key);
            if !in_range(user_key, key, range_end) {
                continue;
            }
            if main as i64 <= self.view.compacted
                && (tombstone || !range::is_newest_row(&self.kv, user_key, main, sub)?)
            {
                // Compacted away (perhaps not yet physically).
                continue;
            }
            let event = if tombstone {
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: user_key.to_vec(),
                        mod_revision: main as i64,
                        ..Default::default()
                    }),
                    prev_kv: None,
                }
            } else {
                let row = self
                    .kv
                    .get((user_key, main, sub))
                    .ctx("reading kv table")?
                    .ok_or_else(|| {
                        Error::Corrupt(format!("rev table entry ({main}, {sub}) has no kv row"))
                    })?;
                let mut kv = decode_put(user_key, row.value())?;
                kv.value = rv.value.to_vec();
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            };
            events.push(event);
            last_main = Some(main);
        }
        Ok(events)
    }

    /// Row counts of the `kv` and `rev` tables in this snapshot (diagnostics and tests: shows
    /// compaction physically removing history).
    pub fn row_counts(&self) -> Result<RowCounts> {
        Ok(RowCounts {
            kv: self.kv.len().ctx("counting kv rows")?,
            rev: self.rev.len().ctx("counting rev rows")?,
        })
    }
}
