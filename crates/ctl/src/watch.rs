//! `watch`: one key, a range or a prefix, from a revision, with previous
//! values; `-- cmd args` runs a command per event; `-i` reads `watch ...`
//! and `progress` lines from standard input.

use futures::channel::mpsc;
use futures::StreamExt;
use rustcd_proto::etcdserverpb::{
    watch_request, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tonic::metadata::MetadataValue;

use crate::client::{status_text, Global, KNOWN_ERROR_TEXTS};
use crate::commands::prefix_end;
use crate::flags::Parsed;
use crate::gofmt::{self, quote};
use crate::printer::Printer;
use crate::{err_out, out, CtlError, EXIT_BAD_ARGS, EXIT_INTERRUPTED, EXIT_INVALID_INPUT};

type R = Result<(), CtlError>;

const ERR_BAD_ARGS_NUM: &str = "bad number of arguments";
const ERR_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const ERR_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";

struct WatchOpts {
    prefix: bool,
    rev: i64,
    prev_kv: bool,
    progress_notify: bool,
}

/// etcdctl's `getWatchChan` minus the channel: the create request.
fn create_request(args: &[String], o: &WatchOpts) -> Result<WatchCreateRequest, String> {
    if args.is_empty() {
        return Err(ERR_BAD_ARGS_NUM.into());
    }
    let mut key = args[0].as_bytes().to_vec();
    let mut end = Vec::new();
    if args.len() == 2 {
        if o.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".into());
        }
        end = args[1].as_bytes().to_vec();
    }
    if o.prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = prefix_end(&key);
        }
    }
    Ok(WatchCreateRequest {
        key,
        range_end: end,
        start_revision: o.rev,
        progress_notify: o.progress_notify,
        prev_kv: o.prev_kv,
        ..Default::default()
    })
}

/// What clientv3's `WatchResponse.Err()` says of a canceled watch.
pub(crate) fn cancel_error(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        return "etcdserver: mvcc: required revision has been compacted".into();
    }
    if !r.cancel_reason.is_empty() {
        if KNOWN_ERROR_TEXTS.contains(&r.cancel_reason.as_str()) {
            return r.cancel_reason.clone();
        }
        return format!(
            "rpc error: code = FailedPrecondition desc = {}",
            r.cancel_reason
        );
    }
    "etcdserver: mvcc: required revision is a future revision".into()
}

fn is_progress_notify(r: &WatchResponse) -> bool {
    r.events.is_empty()
        && !r.canceled
        && !r.created
        && r.compact_revision == 0
        && r.header.as_ref().is_some_and(|h| h.revision != 0)
}

/// Prints one response as etcdctl's `printWatchCh` does; runs the exec
/// command per event. Returns whether the watch ended (canceled).
fn print_response(pr: &mut Printer, r: &WatchResponse, exec: &[String]) -> Result<bool, CtlError> {
    if r.canceled {
        err_out(format!("watch was canceled ({})\n", cancel_error(r)).as_bytes());
    }
    if is_progress_notify(r) {
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        out(format!("progress notify: {rev}\n").as_bytes());
    }
    let res = pr.watch(r);
    out(&pr.out);
    pr.out.clear();
    res?;
    if !exec.is_empty() {
        for ev in &r.events {
            let kv = ev.kv.clone().unwrap_or_default();
            let typ = if ev.r#type == 1 { "DELETE" } else { "PUT" };
            let rev = r.header.as_ref().map_or(0, |h| h.revision);
            let status = std::process::Command::new(&exec[0])
                .args(&exec[1..])
                .env("ETCD_WATCH_REVISION", rev.to_string())
                .env("ETCD_WATCH_EVENT_TYPE", gofmt::quote_str(typ))
                .env("ETCD_WATCH_KEY", quote(&kv.key))
                .env("ETCD_WATCH_VALUE", quote(&kv.value))
                .status();
            let failed = match status {
                Ok(s) if s.success() => None,
                Ok(s) => Some(format!("exit status {}", s.code().unwrap_or(-1))),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                let q: Vec<String> = exec.iter().map(|a| gofmt::quote_str(a)).collect();
                err_out(format!("command [{}] error ({e})\n", q.join(" ")).as_bytes());
                crate::exit(1);
            }
        }
    }
    Ok(r.canceled)
}

fn watch_request(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(c)),
    }
}

pub async fn watch(p: &mut Parsed) -> R {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            format!(
                "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                gofmt::quote_str(&env_range)
            ),
        ));
    }
    if p.bool("interactive") {
        return interactive(p, &env_key, &env_range).await;
    }
    let (mut args, exec): (Vec<String>, Vec<String>) = match p.dash_at {
        Some(i) => (p.args[..i].to_vec(), p.args[i..].to_vec()),
        None => (p.args.clone(), Vec::new()),
    };
    let bad = |m: &str| CtlError::new(EXIT_BAD_ARGS, m);
    if p.dash_at.is_some() && exec.is_empty() {
        return Err(bad(ERR_SEPARATOR));
    }
    if p.dash_at.is_none() && args.is_empty() && env_key.is_empty() {
        return Err(bad(ERR_BAD_ARGS_NUM));
    }
    if !env_key.is_empty() && !args.is_empty() {
        return Err(bad(ERR_CONFLICT_ENV));
    }
    if !env_key.is_empty() {
        let mut v = vec![env_key.clone()];
        if !env_range.is_empty() {
            v.push(env_range.clone());
        }
        v.extend(args);
        args = v;
    }
    let opts = WatchOpts {
        prefix: p.bool("prefix"),
        rev: p.i64("rev"),
        prev_kv: p.bool("prev-kv"),
        progress_notify: p.bool("progress-notify"),
    };
    let (g, mut pr) = Global::from_cmd(p)?;
    let mut create = create_request(&args, &opts).map_err(|e| bad(&e))?;
    // Like clientv3: reconnect and resume after the last revision seen.
    loop {
        let conn = g.connect().await?;
        let (tx, rx) = mpsc::unbounded::<WatchRequest>();
        let _ = tx.unbounded_send(watch_request(create.clone()));
        let mut req = tonic::Request::new(rx);
        req.metadata_mut()
            .insert("hasleader", MetadataValue::from_static("true"));
        let mut stream = match conn.watch().watch(req).await {
            Ok(s) => s.into_inner(),
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            match stream.next().await {
                Some(Ok(r)) => {
                    if r.created && !r.canceled {
                        if create.start_revision == 0 {
                            create.start_revision = r.header.as_ref().map_or(0, |h| h.revision) + 1;
                        }
                        continue;
                    }
                    if let Some(last) = r.events.last() {
                        create.start_revision = last.kv.as_ref().map_or(0, |k| k.mod_revision) + 1;
                    } else if !r.canceled {
                        let rev = r.header.as_ref().map_or(0, |h| h.revision);
                        if rev > 0 {
                            create.start_revision = create.start_revision.max(rev + 1);
                        }
                    }
                    if print_response(&mut pr, &r, &exec)? {
                        return Err(CtlError::new(
                            EXIT_INTERRUPTED,
                            "watch is canceled by the server",
                        ));
                    }
                }
                Some(Err(s)) => {
                    let t = status_text(&s);
                    if t == "etcdserver: no leader" {
                        err_out(format!("watch was canceled ({t})\n").as_bytes());
                        return Err(CtlError::new(
                            EXIT_INTERRUPTED,
                            "watch is canceled by the server",
                        ));
                    }
                    break;
                }
                None => break,
            }
        }
        drop(tx);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `watch -i`: `watch [options] key [range_end] [-- cmd]` and `progress`
/// lines; EOF on standard input ends it as etcdctl does.
async fn interactive(p: &mut Parsed, env_key: &str, env_range: &str) -> R {
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    let (tx, rx) = mpsc::unbounded::<WatchRequest>();
    let mut req = tonic::Request::new(rx);
    req.metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
    // etcd answers the call only once a request came: run it aside
    let (rtx, mut stream) = mpsc::unbounded::<Result<WatchResponse, tonic::Status>>();
    let mut wc = conn.watch();
    tokio::spawn(async move {
        match wc.watch(req).await {
            Ok(s) => {
                let mut s = s.into_inner();
                while let Some(r) = s.next().await {
                    if rtx.unbounded_send(r).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = rtx.unbounded_send(Err(e));
            }
        }
    });
    let (ltx, mut lrx) = mpsc::unbounded::<Option<String>>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(_) if buf.ends_with(b"\n") => {
                    buf.pop();
                    let _ = ltx.unbounded_send(Some(String::from_utf8_lossy(&buf).into_owned()));
                }
                _ => {
                    let _ = ltx.unbounded_send(None);
                    return;
                }
            }
        }
    });
    // exec args of each watch, in the order the creates were sent
    let mut pending: std::collections::VecDeque<Vec<String>> = Default::default();
    let mut execs: std::collections::HashMap<i64, Vec<String>> = Default::default();
    loop {
        tokio::select! {
            line = lrx.next() => {
                let Some(Some(l)) = line else {
                    return Err(CtlError::new(
                        EXIT_INVALID_INPUT,
                        "error reading watch request line: EOF",
                    ));
                };
                let args = match crate::commands::argify_pub(&l) {
                    Ok(a) => a,
                    Err(e) => return Err(e),
                };
                if args.is_empty() {
                    err_out(format!("Invalid command: {l} (watch and progress supported)\n").as_bytes());
                    continue;
                }
                match args[0].as_str() {
                    "watch" => {
                        if args.len() < 2 && env_key.is_empty() {
                            err_out(format!("Invalid command {l} (command type or key is not provided)\n").as_bytes());
                            continue;
                        }
                        let (wargs, exec, opts) = parse_interactive(&args[1..], env_key, env_range)
                            .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
                        match create_request(&wargs, &opts) {
                            Ok(c) => {
                                pending.push_back(exec);
                                let _ = tx.unbounded_send(watch_request(c));
                            }
                            Err(e) => {
                                err_out(format!("Invalid command {l} ({e})\n").as_bytes());
                            }
                        }
                    }
                    "progress" => {
                        let _ = tx.unbounded_send(WatchRequest {
                            request_union: Some(watch_request::RequestUnion::ProgressRequest(
                                WatchProgressRequest {},
                            )),
                        });
                    }
                    _ => {
                        err_out(format!("Invalid command {l} (only support watch)\n").as_bytes());
                    }
                }
            }
            resp = stream.next() => {
                match resp {
                    Some(Ok(r)) => {
                        if r.created {
                            let exec = pending.pop_front().unwrap_or_default();
                            execs.insert(r.watch_id, exec);
                            if !r.canceled {
                                continue;
                            }
                        }
                        let exec = execs.get(&r.watch_id).cloned().unwrap_or_default();
                        print_response(&mut pr, &r, &exec)?;
                    }
                    Some(Err(s)) => {
                        return Err(CtlError::new(crate::EXIT_ERROR, status_text(&s)));
                    }
                    None => {
                        return Err(CtlError::new(EXIT_INTERRUPTED, "watch is canceled by the server"));
                    }
                }
            }
        }
    }
}

/// An interactive `watch ...` line's flags and arguments.
fn parse_interactive(
    args: &[String],
    env_key: &str,
    env_range: &str,
) -> Result<(Vec<String>, Vec<String>, WatchOpts), String> {
    let mut opts = WatchOpts {
        prefix: false,
        rev: 0,
        prev_kv: false,
        progress_notify: false,
    };
    let mut pos = Vec::new();
    let mut exec = Vec::new();
    let mut i = 0;
    let mut found_sep = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            found_sep = true;
            exec = args[i..].to_vec();
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, val) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let boolv = |v: Option<String>| -> Result<bool, String> {
                match v {
                    None => Ok(true),
                    Some(v) => gofmt::parse_bool(&v).map_err(|e| {
                        format!(
                            "invalid argument {} for \"--{name}\" flag: {e}",
                            gofmt::quote_str(&v)
                        )
                    }),
                }
            };
            match name {
                "prefix" => opts.prefix = boolv(val)?,
                "prev-kv" => opts.prev_kv = boolv(val)?,
                "progress-notify" => opts.progress_notify = boolv(val)?,
                "interactive" => {
                    boolv(val)?;
                }
                "rev" => {
                    let v = match val {
                        Some(v) => v,
                        None if i < args.len() => {
                            i += 1;
                            args[i - 1].clone()
                        }
                        None => return Err("flag needs an argument: --rev".into()),
                    };
                    opts.rev = gofmt::parse_int(&v, 0).map_err(|e| {
                        format!(
                            "invalid argument {} for \"--rev\" flag: {e}",
                            gofmt::quote_str(&v)
                        )
                    })?;
                }
                _ => return Err(format!("unknown flag: --{name}")),
            }
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                if c != 'i' {
                    return Err(format!("unknown shorthand flag: '{c}' in {a}"));
                }
            }
            continue;
        }
        pos.push(a.clone());
    }
    if found_sep && exec.is_empty() {
        return Err(ERR_SEPARATOR.into());
    }
    if !found_sep && env_key.is_empty() && pos.is_empty() {
        return Err(ERR_BAD_ARGS_NUM.into());
    }
    if !found_sep && !pos.is_empty() && !env_key.is_empty() {
        return Err(ERR_CONFLICT_ENV.into());
    }
    if !env_key.is_empty() {
        let mut v = vec![env_key.to_string()];
        if !env_range.is_empty() {
            v.push(env_range.to_string());
        }
        v.extend(pos);
        pos = v;
    }
    Ok((pos, exec, opts))
}
