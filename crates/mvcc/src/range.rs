//! Reading the key space at a revision: the seek-based key walk and etcd's `Range` semantics
//! (limit, count, min/max filters, sort, keys_only, count_only), shared by read snapshots and
//! write transactions.

use std::cmp::Ordering;
use std::ops::Bound;

use redb::{AccessGuard, ReadableTable};
use rustcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rustcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rustcd_proto::mvccpb::KeyValue;

use crate::error::{Error, Result, StorageContext};
use crate::schema::{decode_put, decode_rev_value, RangeEnd};

/// Row key of the `kv` table.
pub(crate) type KvKey = (&'static [u8], u64, u64);
/// Row value of the `kv` table.
pub(crate) type KvValue = &'static [u8];
/// Row key of the `rev` table.
pub(crate) type RevKey = (u64, u64);

/// After this many consecutive rows of one user key have been read, the walk stops scanning that
/// key's history and seeks straight to its newest row at the read revision, then past the key.
/// Small histories are cheaper to scan than to seek over; long ones are skipped in O(log n).
const SCAN_BEFORE_SEEK: usize = 4;

/// The newest row of `key` with main revision <= `at` (a put or a tombstone), if any, with its
/// sub revision.
pub(crate) fn newest_row<'t, T>(
    table: &'t T,
    key: &[u8],
    at: u64,
) -> Result<Option<(u64, AccessGuard<'t, KvValue>)>>
where
    T: ReadableTable<KvKey, KvValue>,
{
    let mut rows = table
        .range::<(&[u8], u64, u64)>((key, 0, 0)..=(key, at, u64::MAX))
        .ctx("reading key history")?;
    match rows.next_back() {
        None => Ok(None),
        Some(row) => {
            let (k, v) = row.ctx("reading key history")?;
            Ok(Some((k.value().2, v)))
        }
    }
}

/// The value of the put at (`main`, `sub`), from its `rev` row.
pub(crate) fn put_value<R>(revs: &R, main: u64, sub: u64) -> Result<Vec<u8>>
where
    R: ReadableTable<RevKey, KvValue>,
{
    let row = revs
        .get((main, sub))
        .ctx("reading rev table")?
        .ok_or_else(|| Error::Corrupt(format!("kv row ({main}, {sub}) has no rev row")))?;
    let rv = decode_rev_value(row.value())?;
    if rv.tombstone {
        return Err(Error::Corrupt(format!(
            "kv row ({main}, {sub}) is a put but its rev row a tombstone"
        )));
    }
    Ok(rv.value.to_vec())
}

/// Whether (`main`, `sub`) is the newest row of `key` with main revision <= `main`.
pub(crate) fn is_newest_row<T>(table: &T, key: &[u8], main: u64, sub: u64) -> Result<bool>
where
    T: ReadableTable<KvKey, KvValue>,
{
    let mut rows = table
        .range::<(&[u8], u64, u64)>((key, main, sub)..=(key, main, u64::MAX))
        .ctx("reading key history")?;
    match rows.next_back() {
        None => Ok(false),
        Some(row) => Ok(row.ctx("reading key history")?.0.value().2 == sub),
    }
}

/// Calls `visit(user_key, sub, row_value)` for every key of the etcd range [`start`, `end`) that
/// is live (its newest row with main revision <= `at` is a put), in ascending key order, passing
/// that put's sub revision and index row value. Stops early when `visit` returns `Ok(false)`.
///
/// Rows of one key are scanned forward while they are few; as soon as a row newer than `at` shows
/// up, or the key has more than [`SCAN_BEFORE_SEEK`] rows, the walk settles the key (seeking
/// straight to its newest row <= `at` if needed) and re-seeks past it, so long histories cost
/// O(log n) per key rather than O(versions).
pub(crate) fn visit_live<T, F>(
    table: &T,
    start: &[u8],
    end: RangeEnd<'_>,
    at: u64,
    mut visit: F,
) -> Result<()>
where
    T: ReadableTable<KvKey, KvValue>,
    F: FnMut(&[u8], u64, &[u8]) -> Result<bool>,
{
    let upper: Bound<(&[u8], u64, u64)> = match end {
        RangeEnd::Single => {
            if let Some((sub, row)) = newest_row(table, start, at)? {
                if !row.value().is_empty() {
                    visit(start, sub, row.value())?;
                }
            }
            return Ok(());
        }
        RangeEnd::Unbounded => Bound::Unbounded,
        RangeEnd::Before(e) => {
            if e <= start {
                return Ok(());
            }
            Bound::Excluded((e, 0, 0))
        }
    };

    // Re-seek to the first row after every row of this key.
    let mut resume_after: Option<Vec<u8>> = None;
    'seek: loop {
        let lower: Bound<(&[u8], u64, u64)> = match &resume_after {
            None => Bound::Included((start, 0, 0)),
            Some(k) => Bound::Excluded((k.as_slice(), u64::MAX, u64::MAX)),
        };
        let rows = table
            .range::<(&[u8], u64, u64)>((lower, upper))
            .ctx("reading key range")?;
        let mut cur: Option<Walked<'_>> = None;
        for row in rows {
            let (k, v) = row.ctx("reading key range")?;
            let (user_key, main, sub) = k.value();
            if cur.as_ref().is_none_or(|c| c.key.as_slice() != user_key) {
                if !report(&mut visit, cur.take())? {
                    return Ok(());
                }
                cur = Some(Walked {
                    key: user_key.to_vec(),
                    newest: None,
                    rows: 0,
                });
            }
            let c = cur.as_mut().expect("set above");
            c.rows += 1;
            if main <= at {
                c.newest = Some((sub, v));
                if c.rows < SCAN_BEFORE_SEEK {
                    continue;
                }
                c.newest = newest_row(table, &c.key, at)?;
            }
            // The key is settled: this row is newer than `at` (and so are its later rows), or its
            // newest row <= `at` was just found by seeking.
            let c = cur.take().expect("set above");
            let key = c.key.clone();
            if !report(&mut visit, Some(c))? {
                return Ok(());
            }
            resume_after = Some(key);
            continue 'seek;
        }
        report(&mut visit, cur)?;
        return Ok(());
    }
}

/// A key met by [`visit_live`]: its newest row <= the read revision so far (sub revision and
/// value), and how many of its rows were read.
struct Walked<'t> {
    key: Vec<u8>,
    newest: Option<(u64, AccessGuard<'t, KvValue>)>,
    rows: usize,
}

/// Passes a walked key to the visitor if it is live; returns whether to go on.
fn report<F>(visit: &mut F, walked: Option<Walked<'_>>) -> Result<bool>
where
    F: FnMut(&[u8], u64, &[u8]) -> Result<bool>,
{
    match walked {
        Some(Walked {
            key,
            newest: Some((sub, row)),
            ..
        }) if !row.value().is_empty() => visit(&key, sub, row.value()),
        _ => Ok(true),
    }
}

/// What a `Range` call sees: the revision it reads at and the compaction floor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RangeView {
    /// The current revision of the reader (snapshot revision, or the write txn's revision).
    pub(crate) current: i64,
    /// The compact revision (-1 if never compacted).
    pub(crate) compacted: i64,
}

/// Resolves the revision a request reads at, with etcd's errors.
pub(crate) fn resolve_rev(requested: i64, view: RangeView) -> Result<i64> {
    if requested > view.current {
        return Err(Error::FutureRev);
    }
    let rev = if requested <= 0 {
        view.current
    } else {
        requested
    };
    if rev < view.compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

/// etcd 3.5's `Range` (etcdserver `applierV3backend.Range` on top of mvcc `rangeKeys`).
/// The response header is left `None`. Values are read from `revs` only for the keys returned
/// (after filtering, sorting and the limit), and not at all for keys_only or count_only.
pub(crate) fn range<T, R>(
    table: &T,
    revs: &R,
    req: &RangeRequest,
    view: RangeView,
) -> Result<RangeResponse>
where
    T: ReadableTable<KvKey, KvValue>,
    R: ReadableTable<RevKey, KvValue>,
{
    let rev = resolve_rev(req.revision, view)?;

    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // How many keys the storage layer materialises: with a sort or a filter, all of them (they
    // are sorted/filtered first, truncated afterwards); otherwise one more than the limit, so that
    // `more` can be told. <= 0 means all.
    let mut fetch = req.limit;
    if req.sort_order != SortOrder::None as i32 || filtered {
        fetch = 0;
    }
    if fetch > 0 {
        fetch += 1;
    }
    let fetch = usize::try_from(fetch).unwrap_or(0);

    let mut count: i64 = 0;
    // Each key with its put's sub revision, which locates its value in the `rev` table; values
    // are read only for the keys returned.
    let mut kvs: Vec<(KeyValue, u64)> = Vec::new();
    visit_live(
        table,
        &req.key,
        RangeEnd::from_request(&req.range_end),
        rev as u64,
        |key, sub, row| {
            count += 1;
            if !req.count_only && (fetch == 0 || kvs.len() < fetch) {
                kvs.push((decode_put(key, row)?, sub));
            }
            Ok(true)
        },
    )?;
    let fill = |kvs: &mut [(KeyValue, u64)]| -> Result<()> {
        for (kv, sub) in kvs {
            kv.value = put_value(revs, kv.mod_revision as u64, *sub)?;
        }
        Ok(())
    };
    // Sorting by value needs every value (keys_only too: etcd sorts before it drops values);
    // otherwise only the returned keys' values are read.
    let values_filled = req.sort_target == SortTarget::Value as i32;
    if values_filled {
        fill(&mut kvs)?;
    }

    if req.max_mod_revision != 0 {
        kvs.retain(|(kv, _)| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|(kv, _)| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|(kv, _)| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|(kv, _)| kv.create_revision >= req.min_create_revision);
    }

    sort_kvs(&mut kvs, req.sort_order, req.sort_target);

    let mut more = false;
    if req.limit > 0 && kvs.len() as i64 > req.limit {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for (kv, _) in &mut kvs {
            kv.value = Vec::new();
        }
    } else if !values_filled {
        fill(&mut kvs)?;
    }
    Ok(RangeResponse {
        header: None,
        kvs: kvs.into_iter().map(|(kv, _)| kv).collect(),
        more,
        count,
    })
}

/// etcd's sort step. The storage walk yields keys in ascending order; a target other than KEY
/// with order NONE sorts ascending. The sort is stable, so equal elements stay in key order (what
/// etcd's Go sort does for small result sets; for large ones Go leaves ties unspecified).
/// Unknown enum values (which the gRPC layer rejects) leave the key order unchanged.
/// `kvs` pairs each KeyValue with anything the caller needs to carry along (its sub revision).
pub(crate) fn sort_kvs<T>(kvs: &mut [(KeyValue, T)], sort_order: i32, sort_target: i32) {
    let mut order = sort_order;
    if sort_target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        order = SortOrder::Ascend as i32;
    }
    let Ok(order) = SortOrder::try_from(order) else {
        return;
    };
    let Ok(target) = SortTarget::try_from(sort_target) else {
        return;
    };
    let cmp: fn(&KeyValue, &KeyValue) -> Ordering = match target {
        SortTarget::Key => |a, b| a.key.cmp(&b.key),
        SortTarget::Version => |a, b| a.version.cmp(&b.version),
        SortTarget::Create => |a, b| a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => |a, b| a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => |a, b| a.value.cmp(&b.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(|a, b| cmp(&a.0, &b.0)),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(&b.0, &a.0)),
    }
}
