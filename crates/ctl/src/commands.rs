//! The commands, each as etcdctl 3.5 runs it: arguments checked first,
//! then the client config and printer, then the RPCs, then the printer.

use std::io::{BufRead, Read};
use std::time::Duration;

use futures::StreamExt;
use rustcd_proto::etcdserverpb::{
    alarm_request, compare, range_request, request_op, AlarmRequest, AlarmResponse,
    CompactionRequest, Compare, DefragmentRequest, DeleteRangeRequest, HashKvRequest,
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, PutRequest, RangeRequest,
    RequestOp, SnapshotRequest, StatusRequest, TxnRequest,
};
use tokio::time::Instant;

use crate::client::{status_text, Conn, Global, DEADLINE};
use crate::flags::{self, Parsed};
use crate::gofmt::{self, quote, quote_str};
use crate::printer::{EpHashKv, EpHealth, EpStatus, Format, Printer};
use crate::{
    err_out, out, CtlError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_BAD_FEATURE, EXIT_ERROR,
    EXIT_INTERRUPTED, EXIT_INVALID_INPUT,
};

type R = Result<(), CtlError>;

fn bad_args(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_BAD_ARGS, msg)
}

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

/// Prints and empties the printer's buffer.
fn flush(pr: &mut Printer) {
    out(&pr.out);
    pr.out.clear();
}

/// Prints what the printer made, then fails with its error if any.
fn show(pr: &mut Printer, r: R) -> R {
    flush(pr);
    r
}

pub async fn run(p: &mut Parsed) -> R {
    let name = p.name();
    match name.as_str() {
        "get" => get(p).await,
        "put" => put(p).await,
        "del" => del(p).await,
        "txn" => txn(p).await,
        "compaction" => compaction(p).await,
        "lease grant" => lease_grant(p).await,
        "lease revoke" => lease_revoke(p).await,
        "lease timetolive" => lease_ttl(p).await,
        "lease list" => lease_list(p).await,
        "lease keep-alive" => lease_keep_alive(p).await,
        "member add" => member_add(p).await,
        "member remove" => member_remove(p).await,
        "member update" => member_update(p).await,
        "member promote" => member_promote(p).await,
        "member list" => member_list(p).await,
        "endpoint health" => endpoint_health(p).await,
        "endpoint status" => endpoint_status(p).await,
        "endpoint hashkv" => endpoint_hashkv(p).await,
        "move-leader" => move_leader(p).await,
        "alarm list" => alarm_list(p).await,
        "alarm disarm" => alarm_disarm(p).await,
        "defrag" => defrag(p).await,
        "snapshot save" => snapshot_save(p).await,
        "version" => {
            out(format!(
                "etcdctl version: {}\nAPI version: {}\n",
                crate::VERSION,
                crate::API_VERSION
            )
            .as_bytes());
            Ok(())
        }
        "watch" => crate::watch::watch(p).await,
        n if n.starts_with("user ") || n.starts_with("role ") || n.starts_with("auth ") => {
            crate::authcmd::run(p).await
        }
        "lock" | "elect" => crate::concurrency::run(p).await,
        "make-mirror" => crate::mirror::run(p).await,
        n if n.starts_with("check ") => crate::check::run(p).await,
        "snapshot status" | "snapshot restore" => crate::snapshot::run(p).await,
        other => Err(err1(format!("{other} is not supported yet by rustcdctl"))),
    }
}

/// The end of the range of all keys with `key` as prefix (clientv3's
/// `GetPrefixRangeEnd`).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            let n = end.len();
            end[n - 1] += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

// ----------------------------------------------------------------- get

struct GetOp {
    req: RangeRequest,
}

/// etcdctl's `getGetOp`, reading flags from `p`.
fn get_op(args: &[String], p: &Parsed) -> Result<GetOp, CtlError> {
    if args.is_empty() {
        return Err(bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    let prefix = p.bool("prefix");
    let from_key = p.bool("from-key");
    if prefix && from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if p.bool("keys-only") && p.bool("count-only") {
        return Err(bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let mut req = RangeRequest::default();
    match p.str("consistency").as_str() {
        "s" => req.serializable = true,
        "l" => {}
        c => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown consistency flag {}", quote_str(c)),
            ))
        }
    }
    let mut key = args[0].as_bytes().to_vec();
    if args.len() > 1 {
        if prefix || from_key {
            return Err(bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        req.range_end = args[1].as_bytes().to_vec();
    }
    req.limit = p.i64("limit");
    let rev = p.i64("rev");
    if rev > 0 {
        req.revision = rev;
    }
    let order_s = p.str("order");
    let order = match order_s.to_uppercase().as_str() {
        "ASCEND" => range_request::SortOrder::Ascend,
        "DESCEND" => range_request::SortOrder::Descend,
        "" => range_request::SortOrder::None,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort order {order_s}"),
            ))
        }
    };
    let target_s = p.str("sort-by");
    let target = match target_s.to_uppercase().as_str() {
        "CREATE" => range_request::SortTarget::Create,
        "KEY" | "" => range_request::SortTarget::Key,
        "MODIFY" => range_request::SortTarget::Mod,
        "VALUE" => range_request::SortTarget::Value,
        "VERSION" => range_request::SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort target {target_s}"),
            ))
        }
    };
    // clientv3.WithSort: ascending by key is the server's own order
    let order =
        if target == range_request::SortTarget::Key && order == range_request::SortOrder::Ascend {
            range_request::SortOrder::None
        } else {
            order
        };
    req.sort_order = order as i32;
    req.sort_target = target as i32;
    if prefix {
        if key.is_empty() {
            key = vec![0];
            req.range_end = vec![0];
        } else {
            req.range_end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        req.range_end = vec![0];
    }
    req.key = key;
    req.keys_only = p.bool("keys-only");
    req.count_only = p.bool("count-only");
    req.min_mod_revision = p.i64("min-mod-revision");
    req.max_mod_revision = p.i64("max-mod-revision");
    req.min_create_revision = p.i64("min-create-revision");
    req.max_create_revision = p.i64("max-create-revision");
    Ok(GetOp { req })
}

async fn get(p: &mut Parsed) -> R {
    let op = get_op(&p.args.clone(), p)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn.call(conn.kv().range(op.req)).await.map_err(err1)?;
    if p.bool("count-only") && pr.format != Format::Fields {
        return Err(bad_args("--count-only is only for `--write-out=fields`"));
    }
    if p.bool("print-value-only") {
        pr.check_value_only()?;
    }
    let r = pr.get(&resp);
    show(&mut pr, r)
}

// ----------------------------------------------------------------- put

/// etcdctl's `getPutOp`; `stdin` is None inside `txn` (whose reader has
/// already taken standard input).
fn put_op(args: &[String], p: &Parsed, stdin: bool) -> Result<PutRequest, CtlError> {
    let needs = "put command needs 1 argument and input from stdin or 2 arguments";
    if args.is_empty() {
        return Err(bad_args(needs));
    }
    let ignore_value = p.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !ignore_value {
        if args.len() > 1 {
            value = args[1].as_bytes().to_vec();
        } else if stdin {
            let mut buf = Vec::new();
            if std::io::stdin().read_to_end(&mut buf).is_err() || buf.is_empty() {
                return Err(bad_args(needs));
            }
            value = buf;
        } else {
            return Err(bad_args(needs));
        }
    }
    let lease_s = p.str("lease");
    let lease = gofmt::parse_int(&lease_s, 16)
        .map_err(|e| bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: args[0].as_bytes().to_vec(),
        value,
        lease,
        prev_kv: p.bool("prev-kv"),
        ignore_value,
        ignore_lease: p.bool("ignore-lease"),
    })
}

async fn put(p: &mut Parsed) -> R {
    let req = put_op(&p.args.clone(), p, true)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn.call(conn.kv().put(req)).await.map_err(err1)?;
    let r = pr.put(&resp);
    show(&mut pr, r)
}

// ----------------------------------------------------------------- del

fn del_op(args: &[String], p: &Parsed) -> Result<DeleteRangeRequest, CtlError> {
    if args.is_empty() || args.len() > 2 {
        return Err(bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let prefix = p.bool("prefix");
    let from_key = p.bool("from-key");
    if prefix && from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut req = DeleteRangeRequest::default();
    let mut key = args[0].as_bytes().to_vec();
    if args.len() > 1 {
        if prefix || from_key {
            return Err(bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        req.range_end = args[1].as_bytes().to_vec();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            req.range_end = vec![0];
        } else {
            req.range_end = prefix_end(&key);
        }
    }
    req.prev_kv = p.bool("prev-kv");
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        req.range_end = vec![0];
    }
    req.key = key;
    Ok(req)
}

async fn del(p: &mut Parsed) -> R {
    let req = del_op(&p.args.clone(), p)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn.call(conn.kv().delete_range(req)).await.map_err(err1)?;
    let r = pr.del(&resp);
    show(&mut pr, r)
}

// ----------------------------------------------------------------- txn

fn invalid_input(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_INVALID_INPUT, msg)
}

/// Reads one line as Go's `bufio.Reader.ReadString('\n')` (EOF before a
/// newline is an error).
fn read_line(r: &mut impl BufRead) -> Result<String, CtlError> {
    let mut buf = Vec::new();
    match r.read_until(b'\n', &mut buf) {
        Ok(_) if buf.ends_with(b"\n") => Ok(String::from_utf8_lossy(&buf).into_owned()),
        Ok(_) => Err(invalid_input("EOF")),
        Err(e) => Err(invalid_input(e.to_string())),
    }
}

/// Go's `fmt.Sscanf(s, "%q) %s %q")`: how many items it read, and them.
fn scan_compare(s: &str) -> (usize, Vec<u8>, String, Vec<u8>) {
    let mut key = Vec::new();
    let mut op = String::new();
    let mut val = Vec::new();
    let Some((k, rest)) = gofmt::unquote_prefix(s) else {
        return (0, key, op, val);
    };
    key = k;
    let Some(rest) = rest.strip_prefix(')') else {
        return (1, key, op, val);
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let end = rest.find([' ', '\t', '\n', '\r']).unwrap_or(rest.len());
    if end == 0 {
        return (1, key, op, val);
    }
    op = rest[..end].to_string();
    let rest = &rest[end..];
    let Some((v, _)) = gofmt::unquote_prefix(rest) else {
        return (2, key, op, val);
    };
    val = v;
    (3, key, op, val)
}

/// etcdctl's `parseCompare`.
fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid_input(format!("malformed comparison: {line}")));
    };
    let (n, key, op, val) = scan_compare(rest);
    if n != 3 {
        return Err(invalid_input(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            quote(&key),
            quote(&val)
        )));
    }
    let val_s = String::from_utf8_lossy(&val).into_owned();
    let int = || {
        gofmt::parse_int(&val_s, 10)
            .map_err(|_| invalid_input(format!("invalid txn compare request: {line}")))
    };
    let (t, u) = match target {
        "ver" | "version" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(int()?),
        ),
        "c" | "create" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(int()?),
        ),
        "m" | "mod" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(int()?),
        ),
        "val" | "value" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(val.clone()),
        ),
        // etcdctl 3.5.1 panics on lease comparisons; rustcdctl takes the
        // lease ID in decimal
        "lease" => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(int()?),
        ),
        _ => {
            return Err(invalid_input(format!(
                "malformed comparison: {line} (unknown target {target})"
            )))
        }
    };
    let result = match op.as_str() {
        "=" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        "<" => compare::CompareResult::Less,
        ">" => compare::CompareResult::Greater,
        _ => return Err(CtlError::panic("Unknown result op")),
    };
    Ok(Compare {
        result: result as i32,
        target: t as i32,
        key,
        target_union: Some(u),
        ..Default::default()
    })
}

pub fn argify_pub(s: &str) -> Result<Vec<String>, CtlError> {
    argify(s)
}

/// etcdctl's `argify`: words, "double quoted" (Go-unquoted) and
/// 'single quoted' (with etcdctl's slicing quirk) strings.
fn argify(s: &str) -> Result<Vec<String>, CtlError> {
    let b = s.as_bytes();
    let mut toks: Vec<String> = Vec::new();
    let mut i = 0;
    let is_space =
        |c: u8| c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0b || c == 0x0c;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            // "(?:[^"\\]|\\.)*"
            let mut j = i + 1;
            let mut ok = false;
            while j < b.len() {
                if b[j] == b'\\' && j + 1 < b.len() {
                    j += 2;
                    continue;
                }
                if b[j] == b'"' {
                    ok = true;
                    break;
                }
                j += 1;
            }
            if ok {
                toks.push(s[i..=j].to_string());
                i = j + 1;
                continue;
            }
            i += 1;
            continue;
        }
        if c == b'\'' {
            if let Some(k) = s[i + 1..].find('\'') {
                let j = i + 1 + k;
                toks.push(s[i..=j].to_string());
                i = j + 1;
                continue;
            }
            i += 1;
            continue;
        }
        if is_space(c) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && !is_space(b[j]) {
            j += 1;
        }
        toks.push(s[i..j].to_string());
        i = j;
    }
    let n = toks.len();
    let mut out = Vec::with_capacity(n);
    for t in toks {
        if t.starts_with('\'') {
            // etcdctl slices with the number of arguments, not the length
            if n > t.len() || n < 2 {
                return Err(CtlError::panic("runtime error: slice bounds out of range"));
            }
            out.push(t[1..n - 1].to_string());
        } else if t.starts_with('"') {
            match gofmt::unquote_prefix(&t) {
                Some((v, _)) => out.push(String::from_utf8_lossy(&v).into_owned()),
                None => return Err(invalid_input("unexpected EOF")),
            }
        } else {
            out.push(t);
        }
    }
    Ok(out)
}

/// etcdctl's `parseRequestUnion`: `get`, `put` or `del` with their flags.
fn parse_request(line: &str) -> Result<RequestOp, CtlError> {
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(invalid_input(format!(
            "invalid txn compare request: {line}"
        )));
    }
    let invalid = || invalid_input(format!("invalid txn request: {line}"));
    let mut argv = vec![args[0].clone()];
    argv.extend(args[1..].iter().cloned());
    let parsed = flags::parse(&argv).map_err(|_| invalid())?;
    if parsed.path.len() != 2 || parsed.help {
        return Err(invalid());
    }
    // only the command's own flags are known inside a txn
    for a in &argv[1..] {
        if let Some(n) = a.strip_prefix("--") {
            let n = n.split('=').next().unwrap_or("");
            if !parsed.cmd().flags.iter().any(|f| f.name == n) && n != "help" {
                return Err(invalid());
            }
        }
    }
    let request = match parsed.cmd().name {
        "get" => request_op::Request::RequestRange(get_op(&parsed.args, &parsed)?.req),
        "put" => request_op::Request::RequestPut(put_op(&parsed.args, &parsed, false)?),
        "del" => request_op::Request::RequestDeleteRange(del_op(&parsed.args, &parsed)?),
        _ => return Err(invalid()),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

async fn txn(p: &mut Parsed) -> R {
    if !p.args.is_empty() {
        return Err(bad_args("txn command does not accept argument"));
    }
    let interactive = p.bool("interactive");
    let (g, mut pr) = Global::from_cmd(p)?;
    let stdin = std::io::stdin();
    let mut r = stdin.lock();
    let prompt = |s: &str| {
        if interactive {
            out(format!("{s}\n").as_bytes());
        }
    };
    prompt("compares:");
    let mut req = TxnRequest::default();
    loop {
        let line = read_line(&mut r)?;
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        req.compare.push(parse_compare(line)?);
    }
    prompt("success requests (get, put, del):");
    loop {
        let line = read_line(&mut r)?;
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        req.success.push(parse_request(line)?);
    }
    prompt("failure requests (get, put, del):");
    loop {
        let line = read_line(&mut r)?;
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        req.failure.push(parse_request(line)?);
    }
    drop(r);
    let conn = g.connect().await?;
    let resp = conn.call(conn.kv().txn(req)).await.map_err(err1)?;
    let r = pr.txn(&resp);
    show(&mut pr, r)
}

// ---------------------------------------------------------- compaction

async fn compaction(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("compaction command needs 1 argument"));
    }
    let rev = gofmt::parse_int(&p.args[0], 10).map_err(err1)?;
    let physical = p.bool("physical");
    let (g, _pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    conn.call(conn.kv().compact(CompactionRequest {
        revision: rev,
        physical,
    }))
    .await
    .map_err(err1)?;
    out(format!("compacted revision {rev}\n").as_bytes());
    Ok(())
}

// --------------------------------------------------------------- lease

fn lease_from_arg(s: &str) -> Result<i64, CtlError> {
    gofmt::parse_int(s, 16)
        .map_err(|e| bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

async fn lease_grant(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("lease grant command needs TTL argument"));
    }
    let ttl = gofmt::parse_int(&p.args[0], 10).map_err(|e| bad_args(format!("bad TTL ({e})")))?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g
        .connect()
        .await
        .map_err(|e| err1(format!("failed to grant lease ({})", e.msg)))?;
    let resp = conn
        .call(conn.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
        .await
        .map_err(|e| err1(format!("failed to grant lease ({e})")))?;
    let r = pr.grant(&resp);
    show(&mut pr, r)
}

async fn lease_revoke(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_from_arg(&p.args[0])?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g
        .connect()
        .await
        .map_err(|e| err1(format!("failed to revoke lease ({})", e.msg)))?;
    let resp = conn
        .call(conn.lease().lease_revoke(LeaseRevokeRequest { id }))
        .await
        .map_err(|e| err1(format!("failed to revoke lease ({e})")))?;
    let r = pr.revoke(id, &resp);
    show(&mut pr, r)
}

async fn lease_ttl(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    }
    let keys = p.bool("keys");
    let id = lease_from_arg(&p.args[0])?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g
        .connect()
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.msg))?;
    let resp = conn
        .call(
            conn.lease()
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys }),
        )
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e))?;
    let r = pr.time_to_live(&resp, keys);
    show(&mut pr, r)
}

async fn lease_list(p: &mut Parsed) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g
        .connect()
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.msg))?;
    let resp = conn
        .call(conn.lease().lease_leases(LeaseLeasesRequest {}))
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e))?;
    let r = pr.leases(&resp);
    show(&mut pr, r)
}

async fn lease_keep_alive(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    }
    let id = lease_from_arg(&p.args[0])?;
    let once = p.bool("once");
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g
        .connect()
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.msg))?;
    let bad_conn = |e: String| CtlError::new(EXIT_BAD_CONNECTION, e);
    let (tx, rx) = futures::channel::mpsc::unbounded::<LeaseKeepAliveRequest>();
    // the first request goes out with the call: etcd answers the call only then
    let _ = tx.unbounded_send(LeaseKeepAliveRequest { id });
    let mut stream = conn
        .call(conn.lease().lease_keep_alive(rx))
        .await
        .map_err(bad_conn)?;
    let t = conn.command_timeout;
    if once {
        let resp = next_ka(&mut stream, t).await.map_err(bad_conn)?;
        if resp.ttl <= 0 {
            return Err(bad_conn("etcdserver: requested lease not found".into()));
        }
        let r = pr.keep_alive(&resp);
        return show(&mut pr, r);
    }
    let mut first = true;
    loop {
        if !first {
            let _ = tx.unbounded_send(LeaseKeepAliveRequest { id });
        }
        first = false;
        let resp = match next_ka(&mut stream, t).await {
            Ok(r) => r,
            Err(_) => break,
        };
        if resp.ttl <= 0 {
            break;
        }
        let r = pr.keep_alive(&resp);
        show(&mut pr, r)?;
        let wait = Duration::from_secs((resp.ttl as u64 / 3).max(1));
        tokio::time::sleep(wait).await;
    }
    if pr.format == Format::Simple {
        out(format!("lease {} expired or revoked.\n", gofmt::hex016(id)).as_bytes());
    }
    Ok(())
}

async fn next_ka(
    stream: &mut tonic::Streaming<rustcd_proto::etcdserverpb::LeaseKeepAliveResponse>,
    t: Duration,
) -> Result<rustcd_proto::etcdserverpb::LeaseKeepAliveResponse, String> {
    match tokio::time::timeout(t, stream.next()).await {
        Err(_) => Err(DEADLINE.to_string()),
        Ok(None) => Err("rpc error: code = Canceled desc = context canceled".to_string()),
        Ok(Some(Err(s))) => Err(status_text(&s)),
        Ok(Some(Ok(r))) => Ok(r),
    }
}

// -------------------------------------------------------------- member

fn member_id_arg(args: &[String]) -> Result<u64, CtlError> {
    if args.len() != 1 {
        return Err(bad_args("member ID is not provided"));
    }
    gofmt::parse_uint(&args[0], 16)
        .map_err(|e| bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

async fn member_add(p: &mut Parsed) -> R {
    if p.args.is_empty() {
        return Err(bad_args("member name not provided"));
    }
    if p.args.len() > 1 {
        let mut ev = "too many arguments".to_string();
        for s in &p.args {
            if s.to_lowercase().starts_with("http") {
                ev.push_str(&format!(", did you mean --peer-urls={s}"));
            }
        }
        return Err(bad_args(ev));
    }
    let name = p.args[0].clone();
    let peer_urls = p.str("peer-urls");
    if peer_urls.is_empty() {
        return Err(bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(String::from).collect();
    let learner = p.bool("learner");
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn
        .call(conn.cluster().member_add(MemberAddRequest {
            peer_ur_ls: urls,
            is_learner: learner,
        }))
        .await
        .map_err(err1)?;
    let r = pr.member_add(&resp);
    show(&mut pr, r)?;
    if pr.format == Format::Simple {
        let new_id = resp.member.as_ref().map_or(0, |m| m.id);
        let mut conf = Vec::new();
        for m in &resp.members {
            for u in &m.peer_ur_ls {
                let n = if m.id == new_id { &name } else { &m.name };
                conf.push(format!("{n}={u}"));
            }
        }
        let s = format!(
            "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
            quote_str(&name),
            quote_str(&conf.join(",")),
            quote_str(&peer_urls)
        );
        out(s.as_bytes());
    }
    Ok(())
}

async fn member_remove(p: &mut Parsed) -> R {
    let id = member_id_arg(&p.args)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn
        .call(conn.cluster().member_remove(MemberRemoveRequest { id }))
        .await
        .map_err(err1)?;
    let r = pr.member_remove(id, &resp);
    show(&mut pr, r)
}

async fn member_update(p: &mut Parsed) -> R {
    let id = member_id_arg(&p.args)?;
    let peer_urls = p.str("peer-urls");
    if peer_urls.is_empty() {
        return Err(bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(String::from).collect();
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn
        .call(conn.cluster().member_update(MemberUpdateRequest {
            id,
            peer_ur_ls: urls,
        }))
        .await
        .map_err(err1)?;
    let r = pr.member_update(id, &resp);
    show(&mut pr, r)
}

async fn member_promote(p: &mut Parsed) -> R {
    let id = member_id_arg(&p.args)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn
        .call(conn.cluster().member_promote(MemberPromoteRequest { id }))
        .await
        .map_err(err1)?;
    let r = pr.member_promote(id, &resp);
    show(&mut pr, r)
}

async fn member_list(p: &mut Parsed) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = conn
        .call(
            conn.cluster()
                .member_list(MemberListRequest { linearizable: true }),
        )
        .await
        .map_err(err1)?;
    let r = pr.member_list(&resp);
    show(&mut pr, r)
}

// ------------------------------------------------------------ endpoint

/// `--endpoints` as given, or every member's client URLs with `--cluster`.
async fn endpoints_from_cluster(p: &Parsed, g: &Global) -> Result<Vec<String>, CtlError> {
    if !p.bool("cluster") {
        return Ok(p.strs("endpoints"));
    }
    let conn = g.connect().await?;
    let resp = conn
        .call(
            conn.cluster()
                .member_list(MemberListRequest { linearizable: true }),
        )
        .await
        .map_err(|e| {
            err1(format!(
                "failed to fetch endpoints from etcd cluster member list: {e}"
            ))
        })?;
    Ok(resp
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect())
}

/// A connection to exactly `ep` (for the per-endpoint commands).
async fn conn_to(g: &Global, ep: &str) -> Result<Conn, String> {
    g.connect_to(&[ep.to_string()]).await.map_err(|e| e.msg)
}

async fn endpoint_health(p: &mut Parsed) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let eps = endpoints_from_cluster(p, &g).await?;
    let checks = eps.iter().map(|ep| {
        let g = &g;
        async move {
            let start = Instant::now();
            let deadline = start + g.command_timeout;
            let mut eh = EpHealth {
                ep: ep.clone(),
                health: false,
                took: String::new(),
                error: String::new(),
            };
            let conn = match conn_to(g, ep).await {
                Ok(c) => c,
                Err(e) => {
                    eh.took = gofmt::duration_string(start.elapsed());
                    eh.error = e;
                    return eh;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let got = crate::client::with_timeout(
                left,
                conn.kv().range(RangeRequest {
                    key: b"health".to_vec(),
                    ..Default::default()
                }),
            )
            .await;
            eh.took = gofmt::duration_string(start.elapsed());
            match got {
                Ok(_) => eh.health = true,
                Err(e) if e == "etcdserver: permission denied" => eh.health = true,
                Err(e) => eh.error = e,
            }
            if eh.health {
                let left = deadline.saturating_duration_since(Instant::now());
                let alarms = crate::client::with_timeout(
                    left,
                    conn.maintenance().alarm(AlarmRequest {
                        action: alarm_request::AlarmAction::Get as i32,
                        member_id: 0,
                        alarm: 0,
                    }),
                )
                .await;
                match alarms {
                    Ok(r) if !r.alarms.is_empty() => {
                        eh.health = false;
                        eh.error = "Active Alarm(s): ".into();
                        for a in &r.alarms {
                            eh.error.push_str(match a.alarm {
                                1 => "NOSPACE ",
                                2 => "CORRUPT ",
                                _ => "UNKNOWN ",
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        eh.health = false;
                        eh.error = "Unable to fetch the alarm list".into();
                    }
                }
            }
            eh
        }
    });
    let hs: Vec<EpHealth> = futures::future::join_all(checks).await;
    let mut stderr = Vec::new();
    let r = pr.endpoint_health(&hs, &mut stderr);
    flush(&mut pr);
    err_out(&stderr);
    r?;
    if hs.iter().any(|h| !h.error.is_empty()) {
        return Err(err1("unhealthy cluster"));
    }
    Ok(())
}

async fn endpoint_status(p: &mut Parsed) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let eps = endpoints_from_cluster(p, &g).await?;
    let mut list = Vec::new();
    let mut failed = false;
    for ep in &eps {
        let res = match conn_to(&g, ep).await {
            Ok(c) => c.call(c.maintenance().status(StatusRequest {})).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(resp) => list.push(EpStatus {
                ep: ep.clone(),
                resp,
            }),
            Err(e) => {
                failed = true;
                err_out(format!("Failed to get the status of endpoint {ep} ({e})\n").as_bytes());
            }
        }
    }
    let r = pr.endpoint_status(&list);
    show(&mut pr, r)?;
    if failed {
        return Err(CtlError::silent(EXIT_ERROR));
    }
    Ok(())
}

async fn endpoint_hashkv(p: &mut Parsed) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let rev = p.i64("rev");
    let eps = endpoints_from_cluster(p, &g).await?;
    let mut list = Vec::new();
    let mut last_err = None;
    for ep in &eps {
        let res = match conn_to(&g, ep).await {
            Ok(c) => {
                c.call(c.maintenance().hash_kv(HashKvRequest { revision: rev }))
                    .await
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(resp) => list.push(EpHashKv {
                ep: ep.clone(),
                resp,
            }),
            Err(e) => {
                err_out(format!("Failed to get the hash of endpoint {ep} ({e})\n").as_bytes());
                last_err = Some(e);
            }
        }
    }
    let r = pr.endpoint_hashkv(&list);
    show(&mut pr, r)?;
    if let Some(e) = last_err {
        return Err(err1(e));
    }
    Ok(())
}

// --------------------------------------------------------- maintenance

async fn move_leader(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("move-leader command needs 1 argument"));
    }
    let target = gofmt::parse_uint(&p.args[0], 16).map_err(bad_args)?;
    let (g, mut pr) = Global::from_cmd(p)?;
    let eps = g.endpoints.clone();
    let deadline = Instant::now() + g.command_timeout;
    let mut leader: Option<(Conn, u64)> = None;
    for ep in &eps {
        let conn = conn_to(&g, ep).await.map_err(err1)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = crate::client::with_timeout(left, conn.maintenance().status(StatusRequest {}))
            .await
            .map_err(err1)?;
        let me = resp.header.as_ref().map_or(0, |h| h.member_id);
        if me == resp.leader {
            leader = Some((conn, resp.leader));
            break;
        }
    }
    let Some((conn, leader_id)) = leader else {
        return Err(bad_args(format!(
            "no leader endpoint given at [{}]",
            eps.join(" ")
        )));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let resp = crate::client::with_timeout(
        left,
        conn.maintenance()
            .move_leader(MoveLeaderRequest { target_id: target }),
    )
    .await
    .map_err(err1)?;
    let r = pr.move_leader(leader_id, target, &resp);
    show(&mut pr, r)
}

/// Every active alarm (an ALARM GET for all members and types).
async fn list_alarms(conn: &Conn) -> Result<AlarmResponse, CtlError> {
    conn.call(conn.maintenance().alarm(AlarmRequest {
        action: alarm_request::AlarmAction::Get as i32,
        member_id: 0,
        alarm: 0,
    }))
    .await
    .map_err(err1)
}

async fn alarm_list(p: &mut Parsed) -> R {
    if !p.args.is_empty() {
        return Err(bad_args("alarm list command accepts no arguments"));
    }
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let resp = list_alarms(&conn).await?;
    let r = pr.alarm(&resp);
    show(&mut pr, r)
}

async fn alarm_disarm(p: &mut Parsed) -> R {
    if !p.args.is_empty() {
        return Err(bad_args("alarm disarm command accepts no arguments"));
    }
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    // clientv3's AlarmDisarm of "every alarm": list them, disarm each
    let list = list_alarms(&conn).await?;
    let mut ret = AlarmResponse::default();
    for a in &list.alarms {
        let d = conn
            .call(conn.maintenance().alarm(AlarmRequest {
                action: alarm_request::AlarmAction::Deactivate as i32,
                member_id: a.member_id,
                alarm: a.alarm,
            }))
            .await
            .map_err(err1)?;
        ret.alarms.extend(d.alarms);
    }
    let r = pr.alarm(&ret);
    show(&mut pr, r)
}

async fn defrag(p: &mut Parsed) -> R {
    let data_dir = p.str("data-dir");
    if !data_dir.is_empty() {
        err_out(
            format!(
                "Failed to defragment etcd data[{data_dir}] (offline defragmentation is not supported by rustcdctl)\n"
            )
            .as_bytes(),
        );
        return Err(CtlError::silent(EXIT_ERROR));
    }
    let (g, _pr) = Global::from_cmd(p)?;
    let eps = endpoints_from_cluster(p, &g).await?;
    let mut failures = 0;
    for ep in &eps {
        let res = match conn_to(&g, ep).await {
            Ok(c) => {
                c.call(c.maintenance().defragment(DefragmentRequest {}))
                    .await
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(_) => out(format!("Finished defragmenting etcd member[{ep}]\n").as_bytes()),
            Err(e) => {
                err_out(format!("Failed to defragment etcd member[{ep}] ({e})\n").as_bytes());
                failures += 1;
            }
        }
    }
    if failures != 0 {
        return Err(CtlError::silent(EXIT_ERROR));
    }
    Ok(())
}

async fn snapshot_save(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("snapshot save expects one argument"));
    }
    let path = p.args[0].clone();
    let (g, _pr) = Global::from_cmd(p)?;
    let interrupted = |m: String| CtlError::new(EXIT_INTERRUPTED, m);
    if g.endpoints.len() != 1 {
        return Err(interrupted(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            g.endpoints.join(" ")
        )));
    }
    // without --command-timeout, no deadline for the transfer itself
    let limit = if g.command_timeout_set {
        g.command_timeout
    } else {
        Duration::from_secs(365 * 24 * 3600)
    };
    let deadline = Instant::now() + limit;
    let conn = g.connect().await.map_err(|e| interrupted(e.msg))?;
    let part = format!("{path}.part");
    let _ = std::fs::remove_file(&part);
    let mut file = std::fs::File::create(&part)
        .map_err(|e| interrupted(format!("could not open {part} ({e})")))?;
    let mut stream =
        tokio::time::timeout_at(deadline, conn.maintenance().snapshot(SnapshotRequest {}))
            .await
            .map_err(|_| interrupted(DEADLINE.into()))?
            .map_err(|s| interrupted(status_text(&s)))?
            .into_inner();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(interrupted(DEADLINE.into())),
            Ok(None) => break,
            Ok(Some(Err(s))) => return Err(interrupted(status_text(&s))),
            Ok(Some(Ok(chunk))) => {
                use std::io::Write;
                file.write_all(&chunk.blob)
                    .map_err(|e| interrupted(e.to_string()))?;
            }
        }
    }
    file.sync_all().map_err(|e| interrupted(e.to_string()))?;
    drop(file);
    std::fs::rename(&part, &path)
        .map_err(|e| interrupted(format!("could not rename {part} to {path} ({e})")))?;
    out(format!("Snapshot saved at {path}\n").as_bytes());
    Ok(())
}
