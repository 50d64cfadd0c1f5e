//! etcd's Txn: request validation (before proposing) and evaluation (in
//! apply, or locally for read-only txns). Compares of the whole txn tree are
//! evaluated first, on the state before the txn; then the chosen branches are
//! checked and executed in one revision.

use rustcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rustcd_proto::etcdserverpb::request_op::Request;
use rustcd_proto::etcdserverpb::response_op::Response;
use rustcd_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use rustcd_proto::mvccpb::KeyValue;

use crate::error::ServerError;

/// What txn evaluation needs from the store: a view that sees its own writes.
pub(crate) trait KvView {
    /// The view's current revision, including its own writes.
    fn revision(&self) -> i64;
    fn compact_revision(&self) -> i64;
    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, ServerError>;
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<Option<KeyValue>, ServerError>;
    /// Deletes [key, end); the deleted KeyValues carry their values only if `with_values`.
    fn delete_range(
        &mut self,
        key: &[u8],
        end: &[u8],
        with_values: bool,
    ) -> Result<Vec<KeyValue>, ServerError>;
    fn lease_exists(&self, id: i64) -> bool;
}

// ---- validation at the API layer (etcd's v3rpc checks) ----

pub(crate) fn check_range(r: &RangeRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    Ok(())
}

pub(crate) fn check_put(r: &PutRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(ServerError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(ServerError::LeaseProvided);
    }
    Ok(())
}

pub(crate) fn check_delete(r: &DeleteRangeRequest) -> Result<(), ServerError> {
    if r.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest` followed by `checkIntervals` on both branches.
pub(crate) fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), ServerError> {
    check_txn_ops(r, max_txn_ops as i64)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_ops: i64) -> Result<(), ServerError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_ops {
        return Err(ServerError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(ServerError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(x)) => check_range(x)?,
            Some(Request::RequestPut(x)) => check_put(x)?,
            Some(Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(Request::RequestTxn(x)) => check_txn_ops(x, max_ops - opc)?,
            None => return Err(ServerError::KeyNotFound),
        }
    }
    Ok(())
}

/// A delete's interval as etcd's interval tree sees it: a point for an empty
/// range end, else `[key, end)` compared literally.
struct Interval<'a> {
    key: &'a [u8],
    end: &'a [u8],
}

impl Interval<'_> {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            k == self.key
        } else {
            k >= self.key && k < self.end
        }
    }
}

type PutsDels<'a> = (Vec<&'a [u8]>, Vec<Interval<'a>>);

/// Puts may not overlap each other or deletes in one branch (including
/// nested txns), or etcd rejects the txn with "duplicate key".
fn check_intervals(reqs: &[RequestOp]) -> Result<PutsDels<'_>, ServerError> {
    let mut dels: Vec<Interval<'_>> = reqs
        .iter()
        .filter_map(|r| match &r.request {
            Some(Request::RequestDeleteRange(d)) => Some(Interval {
                key: &d.key,
                end: &d.range_end,
            }),
            _ => None,
        })
        .collect();
    let mut puts: Vec<&[u8]> = Vec::new();
    let hits = |dels: &[Interval<'_>], k: &[u8]| dels.iter().any(|d| d.contains(k));
    for r in reqs {
        let Some(Request::RequestTxn(t)) = &r.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(ServerError::DuplicateKey);
            }
            puts.push(k);
        }
        for k in &puts_else {
            // Then and else exclude each other: the same key in both is fine.
            if (puts.contains(k) && !puts_then.contains(k)) || hits(&dels, k) {
                return Err(ServerError::DuplicateKey);
            }
            puts.push(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let Some(Request::RequestPut(p)) = &r.request else {
            continue;
        };
        if puts.contains(&p.key.as_slice()) || hits(&dels, &p.key) {
            return Err(ServerError::DuplicateKey);
        }
        puts.push(&p.key);
    }
    Ok((puts, dels))
}

/// Whether a txn tree contains no write (then it is served like a read).
pub(crate) fn is_read_only(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(t)) => is_read_only(t),
            _ => false,
        })
}

/// Whether every range in the txn tree asked for a serializable read.
pub(crate) fn is_serializable(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(x)) => x.serializable,
            Some(Request::RequestTxn(t)) => is_serializable(t),
            _ => true,
        })
}

// ---- evaluation ----

fn compare_one(view: &dyn KvView, c: &Compare) -> bool {
    let req = RangeRequest {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        ..Default::default()
    };
    let Ok(rr) = view.range(&req) else {
        return false;
    };
    if rr.kvs.is_empty() {
        // A missing key has no value to compare; its revisions are 0.
        if c.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&match c.target_union {
            Some(TargetUnion::CreateRevision(r)) => r,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&match c.target_union {
            Some(TargetUnion::ModRevision(r)) => r,
            _ => 0,
        }),
        Ok(CompareTarget::Version) => kv.version.cmp(&match c.target_union {
            Some(TargetUnion::Version(r)) => r,
            _ => 0,
        }),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&match c.target_union {
            Some(TargetUnion::Lease(r)) => r,
            _ => 0,
        }),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// The branch taken by every txn in the tree, depth first (etcd's txn path).
fn txn_path(view: &dyn KvView, r: &TxnRequest, path: &mut Vec<bool>) {
    let ok = r.compare.iter().all(|c| compare_one(view, c));
    path.push(ok);
    let ops = if ok { &r.success } else { &r.failure };
    for op in ops {
        if let Some(Request::RequestTxn(t)) = &op.request {
            txn_path(view, t, path);
        }
    }
}

/// Checks the chosen branches before anything is written, so a failing txn
/// changes nothing (etcd's `checkRequests`).
fn check_path(
    view: &dyn KvView,
    r: &TxnRequest,
    path: &[bool],
    pos: &mut usize,
) -> Result<(), ServerError> {
    let ok = path[*pos];
    *pos += 1;
    for op in if ok { &r.success } else { &r.failure } {
        match &op.request {
            Some(Request::RequestPut(p)) => {
                if p.ignore_value || p.ignore_lease {
                    let rr = view.range(&RangeRequest {
                        key: p.key.clone(),
                        ..Default::default()
                    })?;
                    if rr.kvs.is_empty() {
                        return Err(ServerError::KeyNotFound);
                    }
                }
                if p.lease != 0 && !view.lease_exists(p.lease) {
                    return Err(ServerError::LeaseNotFound);
                }
            }
            Some(Request::RequestRange(x)) => {
                if x.revision > view.revision() {
                    return Err(ServerError::FutureRev);
                }
                if x.revision != 0 && x.revision < view.compact_revision() {
                    return Err(ServerError::Compacted);
                }
            }
            Some(Request::RequestTxn(t)) => check_path(view, t, path, pos)?,
            _ => {}
        }
    }
    Ok(())
}

/// Evaluates a txn on `view`. Returns the response; its header carries the
/// revision after the txn (cluster fields are filled by the caller).
pub(crate) fn apply_txn(view: &mut dyn KvView, r: &TxnRequest) -> Result<TxnResponse, ServerError> {
    let mut path = Vec::new();
    txn_path(view, r, &mut path);
    check_path(view, r, &path, &mut 0)?;
    let begin = view.revision();
    let mut resp = exec_txn(view, r, &path, &mut 0, begin)?;
    resp.header = Some(ResponseHeader {
        revision: view.revision(),
        ..Default::default()
    });
    Ok(resp)
}

fn exec_txn(
    view: &mut dyn KvView,
    r: &TxnRequest,
    path: &[bool],
    pos: &mut usize,
    begin: i64,
) -> Result<TxnResponse, ServerError> {
    let ok = path[*pos];
    *pos += 1;
    let ops = if ok { &r.success } else { &r.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let resp = match &op.request {
            Some(Request::RequestRange(x)) => Response::ResponseRange(apply_range(view, x)?),
            Some(Request::RequestPut(x)) => Response::ResponsePut(apply_put(view, x, begin)?),
            Some(Request::RequestDeleteRange(x)) => {
                Response::ResponseDeleteRange(apply_delete(view, x, begin)?)
            }
            Some(Request::RequestTxn(t)) => {
                let mut nested = exec_txn(view, t, path, pos, begin)?;
                nested.header = Some(ResponseHeader::default());
                Response::ResponseTxn(nested)
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(resp),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

/// A range with etcd's response header revision (the view's revision).
pub(crate) fn apply_range(
    view: &dyn KvView,
    r: &RangeRequest,
) -> Result<RangeResponse, ServerError> {
    let mut resp = view.range(r)?;
    resp.header = Some(ResponseHeader {
        revision: view.revision(),
        ..Default::default()
    });
    Ok(resp)
}

/// A put; `begin` is the revision before the enclosing txn.
pub(crate) fn apply_put(
    view: &mut dyn KvView,
    p: &PutRequest,
    begin: i64,
) -> Result<PutResponse, ServerError> {
    let mut value = p.value.as_slice();
    let mut lease = p.lease;
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        view.range(&RangeRequest {
            key: p.key.clone(),
            ..Default::default()
        })?
        .kvs
        .into_iter()
        .next()
    } else {
        None
    };
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(ServerError::KeyNotFound);
    }
    if p.lease != 0 && !view.lease_exists(p.lease) {
        return Err(ServerError::LeaseNotFound);
    }
    let prev_value;
    if p.ignore_value {
        prev_value = prev.as_ref().map(|kv| kv.value.clone()).unwrap_or_default();
        value = &prev_value;
    }
    if p.ignore_lease {
        lease = prev.as_ref().map_or(0, |kv| kv.lease);
    }
    view.put(&p.key, value, lease)?;
    Ok(PutResponse {
        header: Some(ResponseHeader {
            revision: begin + 1,
            ..Default::default()
        }),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// A delete; `begin` is the revision before the enclosing txn.
pub(crate) fn apply_delete(
    view: &mut dyn KvView,
    d: &DeleteRangeRequest,
    begin: i64,
) -> Result<DeleteRangeResponse, ServerError> {
    let deleted = view.delete_range(&d.key, &d.range_end, d.prev_kv)?;
    Ok(DeleteRangeResponse {
        header: Some(ResponseHeader {
            revision: view.revision().max(begin),
            ..Default::default()
        }),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    })
}
