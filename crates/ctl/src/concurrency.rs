//! etcdctl's `lock` and `elect`: clientv3's concurrency recipes (a session
//! lease kept alive, one key per contender under `<name>/` ordered by
//! create revision, a watch on the predecessor's deletion), written against
//! the plain KV, lease and watch APIs so that rustcdctl and etcdctl holders
//! exclude each other on any etcd v3 server.
//!
//! Also the client plumbing these long-running commands share with
//! `make-mirror`: clientv3 runs them without deadlines, waiting out a lost
//! connection instead of failing, and resumes watches after reconnecting.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use rustcd_proto::etcdserverpb::{
    compare, range_request, request_op, response_op, watch_request, Compare, DeleteRangeRequest,
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use rustcd_proto::mvccpb::{event::EventType, KeyValue};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::client::{status_text, Conn, Global, DEADLINE, KNOWN_ERROR_TEXTS};
use crate::commands::prefix_end;
use crate::flags::{f, fs, leaf, Cmd, Kind, Parsed};
use crate::gofmt::quote_str;
use crate::printer::Printer;
use crate::{out, CtlError, EXIT_BAD_ARGS, EXIT_ERROR};

pub const LOCK: Cmd = leaf(
    "lock",
    "lock <lockname> [exec-command arg1 arg2 ...]",
    "Acquires a named lock",
    &[f("ttl", Kind::Int64, "10", "timeout for session")],
);

pub const ELECT: Cmd = leaf(
    "elect",
    "elect <election-name> [proposal]",
    "Observes and participates in leader election",
    &[fs("listen", 'l', Kind::Bool, "false", "observation mode")],
);

type R = Result<(), CtlError>;

/// concurrency.NewSession's TTL when none is given (and `elect`'s).
const DEFAULT_SESSION_TTL: i64 = 60;
/// How long clientv3 waits before retrying a lost connection or stream.
const RETRY: Duration = Duration::from_millis(500);
/// What a canceled context makes of a pending call.
const CANCELED: &str = "context canceled";

pub async fn run(p: &mut Parsed) -> R {
    match p.name().as_str() {
        "lock" => lock_command(p).await,
        _ => elect_command(p).await,
    }
}

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

fn bad_args(msg: &str) -> CtlError {
    CtlError::new(EXIT_BAD_ARGS, msg)
}

// ------------------------------------------------------ patient client

/// Whether `s` means the server could not be reached (rather than being
/// its answer): what gRPC's wait-for-ready waits out.
fn unreachable(s: &Status) -> bool {
    let m = s.message();
    if m.starts_with("etcdserver:") || KNOWN_ERROR_TEXTS.contains(&m) {
        return false;
    }
    s.code() == Code::Unavailable || m.contains("transport error")
}

/// Runs an RPC as clientv3 runs those of `lock`, `elect` and `make-mirror`:
/// no deadline, and a lost connection waited out rather than reported.
/// The error is etcdctl's text.
pub(crate) async fn patiently<T, Fut>(mut call: impl FnMut() -> Fut) -> Result<T, String>
where
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    loop {
        match call().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if unreachable(&s) => tokio::time::sleep(RETRY).await,
            Err(s) => return Err(status_text(&s)),
        }
    }
}

/// Connects, waiting for an endpoint to come up: clientv3 does not fail a
/// call without deadline because nothing answers yet.
pub(crate) async fn connect_patiently(g: &Global) -> Result<Conn, CtlError> {
    loop {
        match g.connect().await {
            Err(e) if e.msg == DEADLINE => continue,
            r => return r,
        }
    }
}

pub(crate) async fn range(conn: &Conn, req: RangeRequest) -> Result<RangeResponse, String> {
    patiently(|| {
        let mut kv = conn.kv();
        let req = req.clone();
        async move { kv.range(req).await }
    })
    .await
}

pub(crate) async fn txn(conn: &Conn, req: TxnRequest) -> Result<TxnResponse, String> {
    patiently(|| {
        let mut kv = conn.kv();
        let req = req.clone();
        async move { kv.txn(req).await }
    })
    .await
}

pub(crate) async fn put(conn: &Conn, req: PutRequest) -> Result<(), String> {
    patiently(|| {
        let mut kv = conn.kv();
        let req = req.clone();
        async move { kv.put(req).await }
    })
    .await
    .map(drop)
}

async fn delete(conn: &Conn, key: &[u8]) -> Result<(), String> {
    let req = DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    patiently(|| {
        let mut kv = conn.kv();
        let req = req.clone();
        async move { kv.delete_range(req).await }
    })
    .await
    .map(drop)
}

pub(crate) fn put_op(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(crate) fn delete_op(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

fn range_op(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

/// `CreateRevision(key) == rev`.
fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// The range answer of a txn's `i`-th operation.
fn txn_range(resp: &TxnResponse, i: usize) -> RangeResponse {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => r.clone(),
        _ => RangeResponse::default(),
    }
}

fn header(h: &Option<ResponseHeader>) -> ResponseHeader {
    h.unwrap_or_default()
}

/// The oldest (`descend` false) or newest key under `prefix` by create
/// revision: clientv3's `WithFirstCreate` / `WithLastCreate`.
fn by_create(prefix: &[u8], descend: bool) -> RangeRequest {
    let order = if descend {
        range_request::SortOrder::Descend
    } else {
        range_request::SortOrder::Ascend
    };
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

/// Go's `%x` of a lease ID (no padding, a sign if negative).
fn go_hex(v: i64) -> String {
    if v < 0 {
        format!("-{:x}", v.unsigned_abs())
    } else {
        format!("{v:x}")
    }
}

// --------------------------------------------------------------- watch

/// One watch that, like clientv3's, survives a lost connection: it opens
/// the watch again from just after the last revision it delivered.
pub(crate) struct Watcher {
    conn: Conn,
    create: WatchCreateRequest,
    /// The open stream, and the sender keeping its request side open.
    stream: Option<(
        mpsc::UnboundedSender<WatchRequest>,
        tonic::Streaming<WatchResponse>,
    )>,
    ended: bool,
}

impl Watcher {
    pub(crate) fn new(conn: &Conn, create: WatchCreateRequest) -> Watcher {
        Watcher {
            conn: conn.clone(),
            create,
            stream: None,
            ended: false,
        }
    }

    async fn open(
        &self,
    ) -> Option<(
        mpsc::UnboundedSender<WatchRequest>,
        tonic::Streaming<WatchResponse>,
    )> {
        let (tx, rx) = mpsc::unbounded();
        // etcd answers the call only once the create request has come
        let _ = tx.unbounded_send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                self.create.clone(),
            )),
        });
        let s = self
            .conn
            .watch()
            .watch(tonic::Request::new(rx))
            .await
            .ok()?;
        Some((tx, s.into_inner()))
    }

    /// The next response with events (or a progress notification); a
    /// canceled watch's last response; then None.
    pub(crate) async fn next(&mut self) -> Option<WatchResponse> {
        while !self.ended {
            let Some((_, stream)) = self.stream.as_mut() else {
                self.stream = self.open().await;
                if self.stream.is_none() {
                    tokio::time::sleep(RETRY).await;
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(r)) if r.created && !r.canceled => {
                    if self.create.start_revision == 0 {
                        self.create.start_revision = header(&r.header).revision + 1;
                    }
                }
                Some(Ok(r)) => {
                    self.advance(&r);
                    return Some(r);
                }
                _ => {
                    self.stream = None;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        None
    }

    /// Remembers where to resume after `r`.
    fn advance(&mut self, r: &WatchResponse) {
        if r.canceled {
            self.ended = true;
        } else if let Some(kv) = r.events.last().and_then(|e| e.kv.as_ref()) {
            self.create.start_revision = kv.mod_revision + 1;
        } else {
            let rev = header(&r.header).revision;
            self.create.start_revision = self.create.start_revision.max(rev + 1);
        }
    }
}

fn is_delete(r: &WatchResponse) -> bool {
    r.events
        .iter()
        .any(|e| e.r#type == EventType::Delete as i32)
}

/// concurrency's `waitDelete`: until `key` is deleted, from `rev` on.
async fn wait_delete(conn: &Conn, key: &[u8], rev: i64) -> Result<(), String> {
    let mut w = Watcher::new(
        conn,
        WatchCreateRequest {
            key: key.to_vec(),
            start_revision: rev,
            ..Default::default()
        },
    );
    while let Some(r) = w.next().await {
        if is_delete(&r) {
            return Ok(());
        }
        if r.canceled {
            return Err(crate::watch::cancel_error(&r));
        }
    }
    Err("lost watcher waiting for delete".into())
}

/// concurrency's `waitDeletes`: until no key under `prefix` was created at
/// or before `max_create_rev`, waiting on the newest of them each time.
async fn wait_deletes(conn: &Conn, prefix: &[u8], max_create_rev: i64) -> Result<(), String> {
    loop {
        let mut req = by_create(prefix, true);
        req.max_create_revision = max_create_rev;
        let resp = range(conn, req).await?;
        let Some(kv) = resp.kvs.first() else {
            return Ok(());
        };
        wait_delete(conn, &kv.key, header(&resp.header).revision).await?;
    }
}

// ------------------------------------------------------------- session

/// concurrency.Session: a lease kept alive in the background until it
/// expires or goes unrenewed for its TTL.
struct Session {
    lease: i64,
    keeper: JoinHandle<()>,
}

impl Session {
    async fn new(conn: &Conn, ttl: i64, g: &Global) -> Result<Session, CtlError> {
        let grant = patiently(|| {
            let mut lc = conn.lease();
            async move { lc.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await }
        })
        .await
        .map_err(err1)?;
        // clientv3 gives the first renewal the dial timeout and a second
        let first = g.dial_timeout + Duration::from_secs(1);
        let keeper = tokio::spawn(keep_alive(conn.clone(), grant.id, first));
        Ok(Session {
            lease: grant.id,
            keeper,
        })
    }

    /// Resolves once the lease is lost.
    async fn done(&mut self) {
        let _ = (&mut self.keeper).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64)
}

/// Renews lease `id` every third of its TTL, as clientv3's KeepAlive;
/// returns when the lease is gone or was not renewed in time.
async fn keep_alive(conn: Conn, id: i64, first: Duration) {
    let mut deadline = Instant::now() + first;
    while Instant::now() < deadline {
        let (tx, rx) = mpsc::unbounded();
        let _ = tx.unbounded_send(LeaseKeepAliveRequest { id });
        let mut lc = conn.lease();
        let stream = match tokio::time::timeout_at(deadline, lc.lease_keep_alive(rx)).await {
            Err(_) => return,
            Ok(Ok(s)) => s.into_inner(),
            Ok(Err(_)) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if !renew(stream, &tx, id, &mut deadline).await {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Keeps renewing over one stream; false once the lease is gone or
/// overdue, true when the stream broke (to be opened again).
async fn renew(
    mut stream: tonic::Streaming<rustcd_proto::etcdserverpb::LeaseKeepAliveResponse>,
    tx: &mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    id: i64,
    deadline: &mut Instant,
) -> bool {
    loop {
        match tokio::time::timeout_at(*deadline, stream.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(r))) => {
                if r.ttl <= 0 {
                    return false;
                }
                *deadline = Instant::now() + secs(r.ttl);
                tokio::time::sleep(secs(r.ttl / 3).max(RETRY)).await;
                let _ = tx.unbounded_send(LeaseKeepAliveRequest { id });
            }
            Ok(_) => return true,
        }
    }
}

/// SIGINT and SIGTERM, caught from now on as etcdctl's `signal.Notify`
/// (one arriving before `recv` is kept for it).
struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    fn catch() -> Result<Interrupts, CtlError> {
        let int = signal(SignalKind::interrupt()).map_err(|e| err1(e.to_string()))?;
        let term = signal(SignalKind::terminate()).map_err(|e| err1(e.to_string()))?;
        Ok(Interrupts { int, term })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Prints a get response as etcdctl's `display.Get`.
fn print_get(pr: &mut Printer, resp: &RangeResponse) -> R {
    let r = pr.get(resp);
    out(&pr.out);
    pr.out.clear();
    r
}

// ---------------------------------------------------------------- lock

/// concurrency.Mutex: `<name>/<lease>`, the lock's once it is the oldest
/// key under `<name>/`.
struct Mutex {
    pfx: Vec<u8>,
    key: Vec<u8>,
    rev: i64,
    /// The header of the response that found the lock ours.
    hdr: ResponseHeader,
}

/// Whether the lock was taken by the acquiring txn itself.
enum Acquired {
    Now,
    AfterWait,
}

impl Mutex {
    fn new(name: &str, lease: i64) -> Mutex {
        let pfx = format!("{name}/").into_bytes();
        let key = [pfx.as_slice(), go_hex(lease).as_bytes()].concat();
        Mutex {
            pfx,
            key,
            rev: -1,
            hdr: ResponseHeader::default(),
        }
    }

    /// Puts our key (or finds it there) and learns the oldest key's
    /// create revision, in one txn.
    async fn try_acquire(&mut self, conn: &Conn, lease: i64) -> Result<Acquired, String> {
        let owner = range_op(by_create(&self.pfx, false));
        let mine = range_op(RangeRequest {
            key: self.key.clone(),
            ..Default::default()
        });
        let resp = txn(
            conn,
            TxnRequest {
                compare: vec![created_at(&self.key, 0)],
                success: vec![put_op(self.key.clone(), Vec::new(), lease), owner.clone()],
                failure: vec![mine, owner],
            },
        )
        .await?;
        let hdr = header(&resp.header);
        self.rev = hdr.revision;
        if !resp.succeeded {
            self.rev = txn_range(&resp, 0)
                .kvs
                .first()
                .map_or(0, |kv| kv.create_revision);
        }
        let oldest = txn_range(&resp, 1).kvs.first().map(|kv| kv.create_revision);
        if oldest.is_none_or(|rev| rev == self.rev) {
            self.hdr = hdr;
            return Ok(Acquired::Now);
        }
        Ok(Acquired::AfterWait)
    }

    /// Waits for every older key to go, then checks ours survived.
    async fn wait(&mut self, conn: &Conn) -> Result<(), String> {
        wait_deletes(conn, &self.pfx, self.rev - 1).await?;
        let resp = range(
            conn,
            RangeRequest {
                key: self.key.clone(),
                ..Default::default()
            },
        )
        .await?;
        if resp.kvs.is_empty() {
            return Err("mutex: session is expired".into());
        }
        self.hdr = header(&resp.header);
        Ok(())
    }

    async fn unlock(&self, conn: &Conn) -> Result<(), String> {
        delete(conn, &self.key).await
    }

    fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
}

async fn lock_command(p: &mut Parsed) -> R {
    if p.args.is_empty() {
        return Err(bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    }
    let ttl = p.i64("ttl");
    let (g, mut pr) = Global::from_cmd(p)?;
    let conn = connect_patiently(&g).await?;
    let ttl = if ttl > 0 { ttl } else { DEFAULT_SESSION_TTL };
    let mut session = Session::new(&conn, ttl, &g).await?;
    let mut sig = Interrupts::catch()?;
    let mut m = Mutex::new(&p.args[0], session.lease);
    lock(&conn, &mut m, session.lease, &mut sig).await?;
    if p.args.len() > 1 {
        let status = run_locked(&m, &p.args[1..]).await;
        let unlocked = m.unlock(&conn).await;
        status?;
        return unlocked.map_err(err1);
    }
    let resp = range(
        &conn,
        RangeRequest {
            key: m.key.clone(),
            ..Default::default()
        },
    )
    .await
    .map_err(err1)?;
    if resp.kvs.is_empty() {
        return Err(err1("lock lost on init"));
    }
    print_get(&mut pr, &resp)?;
    tokio::select! {
        _ = sig.recv() => m.unlock(&conn).await.map_err(err1),
        _ = session.done() => Err(err1("session expired")),
    }
}

/// Mutex.Lock, given up (cleaning our key up once it is known to be
/// there) on a signal.
async fn lock(conn: &Conn, m: &mut Mutex, lease: i64, sig: &mut Interrupts) -> R {
    let acquired = tokio::select! {
        r = m.try_acquire(conn, lease) => r.map_err(err1)?,
        _ = sig.recv() => return Err(err1(CANCELED)),
    };
    if let Acquired::Now = acquired {
        return Ok(());
    }
    let waited = tokio::select! {
        r = m.wait(conn) => r,
        _ = sig.recv() => Err(CANCELED.to_string()),
    };
    match waited {
        // our key is gone with the session: nothing to release
        Err(e) if e == "mutex: session is expired" => Err(err1(e)),
        Err(e) => {
            let _ = m.unlock(conn).await;
            Err(err1(e))
        }
        Ok(()) => Ok(()),
    }
}

/// Runs the command holding the lock, as etcdctl: ETCD_LOCK_KEY and
/// ETCD_LOCK_REV set, stdin empty, its exit status ours.
async fn run_locked(m: &Mutex, argv: &[String]) -> R {
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(std::process::Stdio::null());
    // Go's exec keeps the last of duplicate variables: etcdctl puts its own
    // first, so the ones already in the environment win
    for (k, v) in [
        ("ETCD_LOCK_KEY", m.key_str()),
        ("ETCD_LOCK_REV", m.hdr.revision.to_string()),
    ] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    let prog = argv[0].clone();
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .map_err(|e| err1(e.to_string()))?;
    match status {
        Err(e) => Err(err1(spawn_error(&prog, &e))),
        Ok(st) if st.success() => Ok(()),
        // a command killed by a signal has Go's exit status -1
        Ok(st) => Err(CtlError::new(st.code().unwrap_or(255), process_state(&st))),
    }
}

/// What Go's exec says when the command cannot be started.
fn spawn_error(prog: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    // a bare name is looked up in $PATH first, which finds no executable
    if !prog.contains('/') && matches!(e.kind(), NotFound | PermissionDenied) {
        return format!(
            "exec: {}: executable file not found in $PATH",
            quote_str(prog)
        );
    }
    let why = match e.raw_os_error() {
        Some(2) => "no such file or directory".to_string(),
        Some(13) => "permission denied".to_string(),
        Some(8) => "exec format error".to_string(),
        Some(20) => "not a directory".to_string(),
        _ => e.to_string(),
    };
    format!("fork/exec {prog}: {why}")
}

/// Go's `ProcessState.String()` for a failed command.
fn process_state(st: &std::process::ExitStatus) -> String {
    let mut s = match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("signal: {}", signal_name(sig)),
        (None, None) => st.to_string(),
    };
    if st.core_dumped() {
        s.push_str(" (core dumped)");
    }
    s
}

/// Go's names of Linux signals (`syscall.Signal.String()`).
fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    usize::try_from(sig - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {sig}"), |n| n.to_string())
}

// --------------------------------------------------------------- elect

async fn elect_command(p: &mut Parsed) -> R {
    let n = p.args.len();
    if n != 1 && n != 2 {
        return Err(bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let (g, mut pr) = Global::from_cmd(p)?;
    let listen = p.bool("listen");
    if n == 1 && !listen {
        return Err(bad_args("no proposal argument but -l not set"));
    }
    if n == 2 && listen {
        return Err(bad_args("proposal given but -l is set"));
    }
    let conn = connect_patiently(&g).await?;
    let pfx = format!("{}/", p.args[0]).into_bytes();
    if n == 1 {
        observe(&conn, &g, &pfx, &mut pr).await
    } else {
        campaign(&conn, &g, &pfx, p.args[1].as_bytes(), &mut pr).await
    }
}

/// concurrency.Election as a candidate: our key `<name>/<lease>`, and the
/// create revision that makes us leader once all older keys are gone.
struct Candidate {
    key: Vec<u8>,
    lease: i64,
    rev: i64,
}

impl Candidate {
    /// Election.Campaign's txn (and Proclaim, for a key already there
    /// with another value).
    async fn enter(conn: &Conn, pfx: &[u8], lease: i64, val: &[u8]) -> Result<Candidate, String> {
        let key = [pfx, go_hex(lease).as_bytes()].concat();
        let resp = txn(
            conn,
            TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(key.clone(), val.to_vec(), lease)],
                failure: vec![range_op(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })],
            },
        )
        .await?;
        let mut c = Candidate {
            key,
            lease,
            rev: header(&resp.header).revision,
        };
        if !resp.succeeded {
            let kv = txn_range(&resp, 0).kvs.first().cloned().unwrap_or_default();
            c.rev = kv.create_revision;
            if kv.value != val {
                if let Err(e) = c.proclaim(conn, val).await {
                    let _ = c.resign(conn).await;
                    return Err(e);
                }
            }
        }
        Ok(c)
    }

    async fn proclaim(&self, conn: &Conn, val: &[u8]) -> Result<(), String> {
        let resp = txn(
            conn,
            TxnRequest {
                compare: vec![created_at(&self.key, self.rev)],
                success: vec![put_op(self.key.clone(), val.to_vec(), self.lease)],
                failure: vec![],
            },
        )
        .await?;
        if !resp.succeeded {
            return Err("election: not leader".into());
        }
        Ok(())
    }

    /// Deletes our key if it is still the one we created.
    async fn resign(&self, conn: &Conn) -> Result<(), String> {
        txn(
            conn,
            TxnRequest {
                compare: vec![created_at(&self.key, self.rev)],
                success: vec![delete_op(self.key.clone())],
                failure: vec![],
            },
        )
        .await
        .map(drop)
    }
}

async fn campaign(conn: &Conn, g: &Global, pfx: &[u8], val: &[u8], pr: &mut Printer) -> R {
    let mut session = Session::new(conn, DEFAULT_SESSION_TTL, g).await?;
    let mut sig = Interrupts::catch()?;
    let c = tokio::select! {
        r = Candidate::enter(conn, pfx, session.lease, val) => r.map_err(err1)?,
        _ = sig.recv() => return Err(err1(CANCELED)),
    };
    tokio::select! {
        r = wait_deletes(conn, pfx, c.rev - 1) => r.map_err(err1)?,
        _ = sig.recv() => {
            let _ = c.resign(conn).await;
            return Err(err1(CANCELED));
        }
    }
    let resp = range(
        conn,
        RangeRequest {
            key: c.key.clone(),
            ..Default::default()
        },
    )
    .await
    .map_err(err1)?;
    print_get(pr, &resp)?;
    tokio::select! {
        _ = sig.recv() => c.resign(conn).await.map_err(err1),
        _ = session.done() => Err(err1("elect: session expired")),
    }
}

async fn observe(conn: &Conn, g: &Global, pfx: &[u8], pr: &mut Printer) -> R {
    // etcdctl's observer holds a session (a lease) too, unused
    let _session = Session::new(conn, DEFAULT_SESSION_TTL, g).await?;
    let mut sig = Interrupts::catch()?;
    tokio::select! {
        e = observe_leaders(conn, pfx, pr) => Err(e),
        _ = sig.recv() => Ok(()),
    }
}

/// Election.Observe printed: the leader (oldest key under `pfx`) as a get
/// response, again at each change of its value, and each next leader.
/// Returns why it stopped.
async fn observe_leaders(conn: &Conn, pfx: &[u8], pr: &mut Printer) -> CtlError {
    let lost = || err1("elect: observer lost");
    loop {
        let Ok(mut resp) = range(conn, by_create(pfx, false)).await else {
            return lost();
        };
        let first = match resp.kvs.first() {
            Some(kv) => Some((header(&resp.header), kv.clone())),
            None => first_put(conn, pfx, header(&resp.header).revision).await,
        };
        let Some((hdr, kv)) = first else {
            return lost();
        };
        let leader = RangeResponse {
            header: Some(hdr),
            kvs: vec![kv.clone()],
            ..Default::default()
        };
        if let Err(e) = print_get(pr, &leader) {
            return e;
        }
        // then the leader's own changes until it is deleted; printed as
        // clientv3 does, in the first get's response
        let mut w = Watcher::new(
            conn,
            WatchCreateRequest {
                key: kv.key.clone(),
                start_revision: hdr.revision + 1,
                ..Default::default()
            },
        );
        'leader: loop {
            let Some(wr) = w.next().await else {
                return lost();
            };
            for ev in &wr.events {
                if ev.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                resp.header = wr.header;
                resp.kvs = vec![ev.kv.clone().unwrap_or_default()];
                if let Err(e) = print_get(pr, &resp) {
                    return e;
                }
            }
        }
    }
}

/// The first key put under `pfx` from `rev` on, with the header of its
/// revision; None if the watch failed.
async fn first_put(conn: &Conn, pfx: &[u8], rev: i64) -> Option<(ResponseHeader, KeyValue)> {
    let mut w = Watcher::new(
        conn,
        WatchCreateRequest {
            key: pfx.to_vec(),
            range_end: prefix_end(pfx),
            start_revision: rev,
            ..Default::default()
        },
    );
    loop {
        let wr = w.next().await?;
        if wr.canceled {
            return None;
        }
        let put = wr
            .events
            .iter()
            .find(|e| e.r#type == EventType::Put as i32)
            .and_then(|e| e.kv.clone());
        if let Some(kv) = put {
            let mut hdr = header(&wr.header);
            hdr.revision = kv.mod_revision;
            return Some((hdr, kv));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_in_go_hex() {
        assert_eq!(go_hex(0x694d_7a1b_2c3d_4e5f), "694d7a1b2c3d4e5f");
        assert_eq!(go_hex(0xab), "ab");
        assert_eq!(go_hex(-0x10), "-10");
    }

    #[test]
    fn go_signal_names() {
        assert_eq!(signal_name(9), "killed");
        assert_eq!(signal_name(15), "terminated");
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn spawn_errors_as_go_says_them() {
        let nf = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            spawn_error("nope", &nf),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            spawn_error("./nope", &nf),
            "fork/exec ./nope: no such file or directory"
        );
    }
}
