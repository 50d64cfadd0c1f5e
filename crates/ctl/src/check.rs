//! etcdctl's `check perf` and `check datascale`: many clients put keys
//! under a prefix (paced for `perf`, as fast as they can for `datascale`),
//! a progress bar counts on stdout, the keys are deleted again, and
//! etcdctl's verdict lines follow with its exit codes.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::time::Duration;

use futures::future::join_all;
use rustcd_proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    RangeRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Mutex, Notify};
use tokio::time::Instant;

use crate::client::{status_text, with_timeout, Conn, Global};
use crate::flags::Kind::{Bool, Str};
use crate::flags::{f, group, leaf, Cmd, Flag, Parsed};
use crate::gofmt::{self, duration_string, quote_str};
use crate::{out, CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};

type R = Result<(), CtlError>;

const PERF_FLAGS: &[Flag] = &[
    f(
        "load",
        Str,
        "s",
        "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
    ),
    f(
        "prefix",
        Str,
        "/etcdctl-check-perf/",
        "The prefix for writing the performance check's keys.",
    ),
    f(
        "auto-compact",
        Bool,
        "false",
        "Compact storage with last revision after test is finished.",
    ),
    f(
        "auto-defrag",
        Bool,
        "false",
        "Defragment storage after test is finished.",
    ),
];

const DATASCALE_FLAGS: &[Flag] = &[
    f(
        "load",
        Str,
        "s",
        "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
    ),
    f(
        "prefix",
        Str,
        "/etcdctl-check-datascale/",
        "The prefix for writing the datascale check's keys.",
    ),
    f(
        "auto-compact",
        Bool,
        "false",
        "Compact storage with last revision after test is finished.",
    ),
    f(
        "auto-defrag",
        Bool,
        "false",
        "Defragment storage after test is finished.",
    ),
];

const PERF: Cmd = leaf(
    "perf",
    "perf [options]",
    "Check the performance of the etcd cluster",
    PERF_FLAGS,
);

const DATASCALE: Cmd = Cmd {
    name: "datascale",
    use_: "datascale [options]",
    short: "Check the memory usage of holding data for different workloads on a given server endpoint.",
    long: "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
    flags: DATASCALE_FLAGS,
    persistent: &[],
    subs: &[],
    runnable: true,
};

pub const CHECK: Cmd = group(
    "check",
    "check <subcommand>",
    "commands for checking properties of the etcd cluster",
    &[PERF, DATASCALE],
);

pub async fn run(p: &mut Parsed) -> R {
    match p.cmd().name {
        "perf" => perf(p).await,
        _ => datascale(p).await,
    }
}

// ------------------------------------------------------------ workloads

/// One `check perf` workload: puts per second, clients, seconds.
#[derive(Clone, Copy)]
struct PerfModel {
    limit: u32,
    clients: usize,
    duration: u32,
}

/// etcdctl's perf workloads, by the names `--load` accepts.
fn perf_model(load: &str) -> Option<PerfModel> {
    let (limit, clients) = match load {
        "s" | "small" => (150, 50),
        "m" | "medium" => (1000, 200),
        "l" | "large" => (8000, 500),
        "xl" | "xLarge" => (15000, 1000),
        _ => return None,
    };
    Some(PerfModel {
        limit,
        clients,
        duration: 60,
    })
}

/// One `check datascale` workload: puts in all, bytes per pair, clients.
#[derive(Clone, Copy)]
struct ScaleModel {
    limit: u64,
    kv_size: u32,
    clients: usize,
}

fn scale_model(load: &str) -> Option<ScaleModel> {
    let (limit, clients) = match load {
        "s" | "small" => (10_000, 50),
        "m" | "medium" => (100_000, 200),
        "l" | "large" => (1_000_000, 500),
        // 3 versions of 1M keys: the upper bound etcd is sized for
        "xl" | "xLarge" => (3_000_000, 1000),
        _ => return None,
    };
    Some(ScaleModel {
        limit,
        kv_size: 1024,
        clients,
    })
}

fn unknown_load(load: &str) -> CtlError {
    CtlError::new(EXIT_BAD_FEATURE, format!("unknown load option {load}"))
}

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

/// How long etcdctl waits where it passes no deadline at all.
const NO_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

// ----------------------------------------------------------------- perf

async fn perf(p: &mut Parsed) -> R {
    let load = p.str("load");
    let model = perf_model(&load).ok_or_else(|| unknown_load(&load))?;
    let prefix = p.str("prefix");
    let (auto_compact, auto_defrag) = (p.bool("auto-compact"), p.bool("auto-defrag"));
    let (mut g, _) = Global::from_cmd(p)?;
    // etcdctl's run context: the first Get and the whole put phase share
    // one deadline, so an unreachable cluster fails only after it
    let run_for = Duration::from_secs(model.duration.into());
    let deadline = Instant::now() + run_for;
    g.command_timeout = run_for;
    let clients = connect_clients(&g, model.clients).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    ensure_unused(&clients[0], &prefix, left, |p| {
        format!(
            "prefix {} has keys. Delete with 'etcdctl del --prefix {p}' first",
            quote_str(p)
        )
    })
    .await?;

    let stats = paced_load(&clients, &prefix, model, deadline).await;
    cleanup(&clients[0], &prefix, auto_compact).await?;
    if auto_defrag {
        defrag_all(&g).await?;
    }
    perf_verdict(&stats, model.limit)
}

/// Puts at the model's rate until `deadline` (or Ctrl-C) with the bar
/// counting the seconds; the statistics over the span etcdctl measures
/// (from the start of the load to the last client's end).
async fn paced_load(clients: &[Conn], prefix: &str, model: PerfModel, deadline: Instant) -> Stats {
    let bar = Bar::start(model.duration.into());
    let (stop_tx, stop_rx) = watch::channel(false);
    let report = RefCell::new(Report::default());
    let (tx, rx) = mpsc::channel(model.clients);
    let rx = Mutex::new(rx);
    let started = Instant::now();
    let work = async {
        let (_, ended, _, _) = tokio::join!(
            produce_paced(tx, prefix, model.limit, deadline, stop_rx.clone()),
            run_workers(clients, &rx, &report, None),
            tick(&bar, model.duration, stop_rx.clone()),
            bar.refresh(),
        );
        ended
    };
    let ended = tokio::select! {
        ended = work => ended,
        never = on_interrupt(&stop_tx) => match never {},
    };
    report.into_inner().stats(ended - started)
}

/// Stops the producer and the progress bar on the first Ctrl-C (etcdctl
/// then cleans up and reports); a second one kills the process.
async fn on_interrupt(stop: &watch::Sender<bool>) -> std::convert::Infallible {
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.send_replace(true);
        // etcdctl stops catching SIGINT after the first one
        // SAFETY: resetting a signal's disposition to the default is
        // async-signal-safe and touches no Rust state.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
    std::future::pending().await
}

/// etcdctl's verdict: errors, throughput within 90% of the target, slowest
/// request at most 500 ms, standard deviation at most 100 ms.
fn perf_verdict(s: &Stats, limit: u32) -> R {
    let mut text = String::new();
    let mut ok = error_lines(s, &mut text);
    // Go's int(): truncation toward zero
    let writes = s.rps as i64 + 1;
    if s.rps / f64::from(limit) <= 0.9 {
        text.push_str(&format!("FAIL: Throughput too low: {writes} writes/s\n"));
        ok = false;
    } else {
        text.push_str(&format!("PASS: Throughput is {writes} writes/s\n"));
    }
    if s.slowest > 0.5 {
        // etcdctl's own wording: no "FAIL:" on these two
        text.push_str(&format!(
            "Slowest request took too long: {:.6}s\n",
            s.slowest
        ));
        ok = false;
    } else {
        text.push_str(&format!("PASS: Slowest request took {:.6}s\n", s.slowest));
    }
    if s.stddev > 0.1 {
        text.push_str(&format!("Stddev too high: {:.6}s\n", s.stddev));
        ok = false;
    } else {
        text.push_str(&format!("PASS: Stddev is {:.6}s\n", s.stddev));
    }
    text.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    out(text.as_bytes());
    if ok {
        Ok(())
    } else {
        Err(CtlError::silent(EXIT_ERROR))
    }
}

/// The `FAIL: too many errors` block (errors sorted by text; etcdctl's
/// order is Go's random map order). False if there were errors.
fn error_lines(s: &Stats, text: &mut String) -> bool {
    if s.errors.is_empty() {
        return true;
    }
    text.push_str("FAIL: too many errors\n");
    for (e, n) in &s.errors {
        text.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
    }
    false
}

/// Advances the bar once a second for `secs` seconds, then finishes it
/// (early on Ctrl-C).
async fn tick(bar: &Bar, secs: u32, mut stop: watch::Receiver<bool>) {
    for _ in 0..secs {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => bar.add(1),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    bar.finish();
}

/// Queues puts at `limit` per second until `deadline` (or Ctrl-C); waits
/// while every client is busy, as etcdctl's bounded channel does.
async fn produce_paced(
    tx: mpsc::Sender<PutRequest>,
    prefix: &str,
    limit: u32,
    deadline: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut pacer = Pacer::new(limit);
    let mut keys = Keys::new(prefix, 256);
    let value = vec![0u8; 1024];
    loop {
        let go = tokio::select! {
            go = pacer.wait(deadline) => go,
            _ = stop.wait_for(|s| *s) => false,
        };
        if !go || tx.send(put(keys.next(), &value)).await.is_err() {
            break;
        }
    }
}

fn put(key: Vec<u8>, value: &[u8]) -> PutRequest {
    PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    }
}

/// Slack for timers waking late: tokio's timers have millisecond
/// resolution, finer than the interval of the larger loads.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// A rate limiter in the spirit of Go's `rate.NewLimiter(limit, 1)`: one
/// token every `1/limit` s and no saving up while the producer is blocked.
/// Unlike a strict bucket of one, a timer that woke late within
/// [`TIMER_SLACK`] is caught up on, or no load could reach its rate.
struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    fn new(limit: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / limit.max(1),
            next: Instant::now(),
        }
    }

    /// Waits for the next token; false if it would come after `deadline`
    /// (Go's `Wait` refuses a wait past its context's deadline).
    async fn wait(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        let at = if now > self.next + self.interval.max(TIMER_SLACK) {
            now
        } else {
            self.next
        };
        if at > deadline {
            return false;
        }
        tokio::time::sleep_until(at).await;
        self.next = at + self.interval;
        true
    }
}

/// etcdctl's check keys: the prefix, then a fixed-size buffer that starts
/// with a random Go varint. The buffer is reused, so a shorter varint
/// leaves the previous key's bytes after it, as in etcdctl.
struct Keys {
    prefix: Vec<u8>,
    buf: Vec<u8>,
}

impl Keys {
    fn new(prefix: &str, size: usize) -> Keys {
        Keys {
            prefix: prefix.as_bytes().to_vec(),
            buf: vec![0; size],
        }
    }

    fn next(&mut self) -> Vec<u8> {
        put_varint(&mut self.buf, rand::random_range(0..i64::MAX));
        let mut k = self.prefix.clone();
        k.extend_from_slice(&self.buf);
        k
    }
}

/// Go's `binary.PutVarint`: zig-zag, then 7 bits a byte, low bits first.
fn put_varint(buf: &mut [u8], x: i64) -> usize {
    let mut ux = (x as u64) << 1;
    if x < 0 {
        ux = !ux;
    }
    let mut i = 0;
    while ux >= 0x80 {
        buf[i] = ux as u8 | 0x80;
        ux >>= 7;
        i += 1;
    }
    buf[i] = ux as u8;
    i + 1
}

// ------------------------------------------------------------ datascale

async fn datascale(p: &mut Parsed) -> R {
    let load = p.str("load");
    let model = scale_model(&load).ok_or_else(|| unknown_load(&load))?;
    let prefix = p.str("prefix");
    let (auto_compact, auto_defrag) = (p.bool("auto-compact"), p.bool("auto-defrag"));
    let (mut g, _) = Global::from_cmd(p)?;
    // etcdctl gives datascale's requests no deadline: it waits for the cluster
    g.command_timeout = NO_DEADLINE;
    let clients = connect_clients(&g, model.clients).await?;
    let ep = g.endpoints[0].clone();
    ensure_unused(&clients[0], &prefix, NO_DEADLINE, |p| {
        format!(
            "prefix {} has keys. Delete with etcdctl del --prefix {p} first",
            quote_str(p)
        )
    })
    .await?;

    let before = resident_memory(&ep).await;
    if before == 0.0 {
        return memory_fail("before");
    }
    out(format!(
        "Start data scale check for work load [{} key-value pairs, {} bytes per key-value, {} concurrent clients].\n",
        model.limit, model.kv_size, model.clients
    )
    .as_bytes());
    let stats = bulk_load(&clients, &prefix, model).await;

    let after = resident_memory(&ep).await;
    if after == 0.0 {
        return memory_fail("after");
    }
    let resp = delete_prefix(&clients[0], &prefix, NO_DEADLINE)
        .await
        .map_err(err1)?;
    if auto_compact {
        compact(&clients[0], resp.header.map_or(0, |h| h.revision)).await?;
    }
    if auto_defrag {
        defrag_all(&g).await?;
    }
    let mut text = String::new();
    if !error_lines(&stats, &mut text) {
        out(text.as_bytes());
        return Err(CtlError::silent(EXIT_ERROR));
    }
    let mb_used = (after - before) / (1024.0 * 1024.0);
    out(format!("PASS: Approximate system memory used : {mb_used:.2} MB.\n").as_bytes());
    Ok(())
}

/// Puts the model's pairs as fast as the clients go, the bar counting
/// them; the statistics of the puts.
async fn bulk_load(clients: &[Conn], prefix: &str, model: ScaleModel) -> Stats {
    let bar = Bar::start(model.limit as i64);
    let report = RefCell::new(Report::default());
    let (tx, rx) = mpsc::channel(model.clients);
    let rx = Mutex::new(rx);
    let started = Instant::now();
    let work = async {
        let ended = run_workers(clients, &rx, &report, Some(&bar)).await;
        bar.finish();
        ended
    };
    let (_, ended, _) = tokio::join!(produce_all(tx, prefix, model.limit), work, bar.refresh());
    report.into_inner().stats(ended - started)
}

fn memory_fail(when: &str) -> R {
    out(
        format!("FAIL: Could not read process_resident_memory_bytes {when} the put operations.\n")
            .as_bytes(),
    );
    Err(CtlError::silent(EXIT_ERROR))
}

/// Queues `limit` puts of 512-byte keys and 512-byte values.
async fn produce_all(tx: mpsc::Sender<PutRequest>, prefix: &str, limit: u64) {
    let mut keys = Keys::new(prefix, 512);
    let value = vec![0u8; 512];
    for _ in 0..limit {
        if tx.send(put(keys.next(), &value)).await.is_err() {
            break;
        }
    }
}

const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// etcdctl's `endpointMemoryMetrics`: the member's resident memory from its
/// `/metrics`, or 0 after saying on stdout why it could not be read.
async fn resident_memory(ep: &str) -> f64 {
    let body = match fetch_metrics(ep).await {
        Ok(b) => b,
        Err(e) => {
            out(format!("fetch error: {e}\n").as_bytes());
            return 0.0;
        }
    };
    // the first line that starts with the name, as etcdctl reads it
    let value = body
        .split('\n')
        .find_map(|l| l.strip_prefix(RESIDENT_MEMORY))
        .map(str::trim)
        .unwrap_or("");
    if value.is_empty() {
        out(format!("could not find: {RESIDENT_MEMORY}\n").as_bytes());
        return 0.0;
    }
    match value.parse::<f64>() {
        Ok(v) => v,
        Err(_) => {
            out(format!(
                "parse error: strconv.ParseFloat: parsing {}: invalid syntax\n",
                quote_str(value)
            )
            .as_bytes());
            0.0
        }
    }
}

/// `GET <endpoint>/metrics` over plain HTTP/1.0 (no chunked bodies), the
/// error as Go's `http.Get` words it.
async fn fetch_metrics(ep: &str) -> Result<String, String> {
    let base = if ep.starts_with("http://") || ep.starts_with("https://") {
        ep.to_string()
    } else {
        format!("http://{ep}")
    };
    let url = format!("{base}/metrics");
    let Some(hostport) = base.strip_prefix("http://") else {
        return Err(format!(
            "Get {}: TLS is not supported yet by rustcdctl",
            quote_str(&url)
        ));
    };
    let hostport = hostport.trim_end_matches('/');
    let get = |e: String| format!("Get {}: {e}", quote_str(&url));
    let mut conn = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|e| {
            get(format!(
                "dial tcp {hostport}: connect: {}",
                gofmt::io_error(&e)
            ))
        })?;
    let req =
        format!("GET /metrics HTTP/1.0\r\nHost: {hostport}\r\nAccept-Encoding: identity\r\n\r\n");
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| get(gofmt::io_error(&e)))?;
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp)
        .await
        .map_err(|e| format!("reading {url}: {}", gofmt::io_error(&e)))?;
    let text = String::from_utf8_lossy(&resp);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body.to_string())
}

// -------------------------------------------------------------- clients

/// One connection per client, as etcdctl makes one clientv3 client (its
/// own HTTP/2 connection) for each.
async fn connect_clients(g: &Global, n: usize) -> Result<Vec<Conn>, CtlError> {
    let first = g.connect().await?;
    let mut conns = vec![first];
    for c in join_all((1..n).map(|_| g.connect())).await {
        conns.push(c?);
    }
    Ok(conns)
}

/// `[key, range_end)` of every key with `prefix` (clientv3's `WithPrefix`).
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let key = prefix.as_bytes().to_vec();
    let end = crate::commands::prefix_end(&key);
    (key, end)
}

/// Refuses to start when the prefix already has keys (they would be
/// deleted with the check's own at the end).
async fn ensure_unused(
    conn: &Conn,
    prefix: &str,
    limit: Duration,
    has_keys: impl Fn(&str) -> String,
) -> R {
    let (key, range_end) = prefix_range(prefix);
    let get = RangeRequest {
        key,
        range_end,
        limit: 1,
        ..Default::default()
    };
    let resp = with_timeout(limit, conn.kv().range(get))
        .await
        .map_err(err1)?;
    if !resp.kvs.is_empty() {
        return Err(CtlError::new(EXIT_INVALID_INPUT, has_keys(prefix)));
    }
    Ok(())
}

/// Runs every client until the queue is closed and empty; returns when the
/// last one finished (the end of the report's time span).
async fn run_workers(
    clients: &[Conn],
    rx: &Mutex<mpsc::Receiver<PutRequest>>,
    report: &RefCell<Report>,
    bar: Option<&Bar>,
) -> Instant {
    join_all(clients.iter().map(|c| worker(c, rx, report, bar))).await;
    Instant::now()
}

/// One client: takes the next queued put, times it, records it.
async fn worker(
    conn: &Conn,
    rx: &Mutex<mpsc::Receiver<PutRequest>>,
    report: &RefCell<Report>,
    bar: Option<&Bar>,
) {
    let mut kv = conn.kv();
    loop {
        let Some(req) = rx.lock().await.recv().await else {
            break;
        };
        let start = Instant::now();
        // etcdctl's puts have no deadline
        let res = kv.put(req).await.map(|_| ()).map_err(|s| status_text(&s));
        report.borrow_mut().add(res, start.elapsed());
        if let Some(b) = bar {
            b.add(1);
        }
    }
}

async fn delete_prefix(
    conn: &Conn,
    prefix: &str,
    limit: Duration,
) -> Result<DeleteRangeResponse, String> {
    let (key, range_end) = prefix_range(prefix);
    let del = DeleteRangeRequest {
        key,
        range_end,
        ..Default::default()
    };
    with_timeout(limit, conn.kv().delete_range(del)).await
}

/// etcdctl's `attemptCleanup`: deletes the check's keys (a failure is only
/// reported), then compacts at the deletion's revision if asked.
async fn cleanup(conn: &Conn, prefix: &str, auto_compact: bool) -> R {
    match delete_prefix(conn, prefix, Duration::from_secs(30)).await {
        Err(e) => {
            out(format!("FAIL: Cleanup failed during key deletion: ERROR({e})\n").as_bytes());
            Ok(())
        }
        Ok(resp) if auto_compact => compact(conn, resp.header.map_or(0, |h| h.revision)).await,
        Ok(_) => Ok(()),
    }
}

/// etcdctl's `compact`: a physical compaction at `rev`, announced.
async fn compact(conn: &Conn, rev: i64) -> R {
    out(format!("Compacting with revision {rev}\n").as_bytes());
    let req = CompactionRequest {
        revision: rev,
        physical: true,
    };
    with_timeout(Duration::from_secs(30), conn.kv().compact(req))
        .await
        .map_err(err1)?;
    out(format!("Compacted with revision {rev}\n").as_bytes());
    Ok(())
}

/// etcdctl's `defrag` of each endpoint in `--endpoints`, announced, each
/// (dialing included) within 30 s.
async fn defrag_all(g: &Global) -> R {
    let limit = Duration::from_secs(30);
    for ep in &g.endpoints {
        let q = quote_str(ep);
        out(format!("Defragmenting {q}\n").as_bytes());
        let defrag = async {
            let conn = g.connect_to(std::slice::from_ref(ep)).await?;
            let mut m = conn.maintenance();
            with_timeout(limit, m.defragment(DefragmentRequest {}))
                .await
                .map_err(err1)
        };
        tokio::time::timeout(limit, defrag)
            .await
            .map_err(|_| err1(crate::client::DEADLINE))??;
        out(format!("Defragmented {q}\n").as_bytes());
    }
    Ok(())
}

// --------------------------------------------------------------- report

/// etcd's `report` package, the part the checks read: each request's
/// latency or error.
#[derive(Default)]
struct Report {
    lats: Vec<f64>,
    errors: BTreeMap<String, u64>,
}

struct Stats {
    /// Successful requests per second over the whole span.
    rps: f64,
    slowest: f64,
    /// Population standard deviation of the latencies (NaN with none, as
    /// etcd's 0/0).
    stddev: f64,
    errors: BTreeMap<String, u64>,
}

impl Report {
    fn add(&mut self, res: Result<(), String>, took: Duration) {
        match res {
            Ok(()) => self.lats.push(took.as_secs_f64()),
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    fn stats(self, total: Duration) -> Stats {
        let n = self.lats.len() as f64;
        let avg = self.lats.iter().sum::<f64>() / n;
        let var = self.lats.iter().map(|l| (l - avg) * (l - avg)).sum::<f64>() / n;
        Stats {
            rps: n / total.as_secs_f64(),
            slowest: self.lats.iter().copied().fold(0.0, f64::max),
            stddev: var.sqrt(),
            errors: self.errors,
        }
    }
}

// ---------------------------------------------------------- progress bar

/// How often the bar is redrawn.
const REFRESH: Duration = Duration::from_millis(200);

/// The progress bar etcdctl draws on stdout (cheggaaa/pb v1 with the
/// "Bom !" format): `\r` + counters, bar, percentage and time left, as wide
/// as the controlling terminal (no bar at all without one), redrawn every
/// 200 ms; a last line with the elapsed time and a newline when finished.
struct Bar {
    total: i64,
    current: Cell<i64>,
    previous: Cell<i64>,
    started: Instant,
    changed: Cell<Instant>,
    finished: Cell<bool>,
    wake: Notify,
    tty: Option<File>,
}

impl Bar {
    fn start(total: i64) -> Bar {
        let now = Instant::now();
        let bar = Bar {
            total,
            current: Cell::new(0),
            previous: Cell::new(0),
            started: now,
            changed: Cell::new(now),
            finished: Cell::new(false),
            wake: Notify::new(),
            // pb sizes the bar by the controlling terminal even when stdout
            // is redirected
            tty: File::open("/dev/tty").ok(),
        };
        bar.update();
        bar
    }

    fn add(&self, n: i64) {
        self.current.set(self.current.get() + n);
    }

    fn update(&self) {
        let c = self.current.get();
        if c != self.previous.get() {
            self.changed.set(Instant::now());
            self.previous.set(c);
        }
        self.draw(false);
    }

    fn finish(&self) {
        if self.finished.replace(true) {
            return;
        }
        self.draw(true);
        out(b"\n");
        self.wake.notify_one();
    }

    /// Redraws every [`REFRESH`] until finished.
    async fn refresh(&self) {
        while !self.finished.get() {
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                () = self.wake.notified() => {}
            }
            if !self.finished.get() {
                self.update();
            }
        }
    }

    fn draw(&self, finished: bool) {
        let now = Instant::now();
        let left = if finished {
            None
        } else {
            Some(time_left(
                self.total,
                self.current.get(),
                self.changed.get() - self.started,
                now - self.changed.get(),
            ))
        };
        let line = bar_line(
            self.total,
            self.current.get(),
            left,
            now - self.started,
            self.width(),
        );
        out(format!("\r{line}").as_bytes());
    }

    fn width(&self) -> usize {
        use std::os::fd::AsRawFd;
        let fd = self.tty.as_ref().map_or(0, |f| f.as_raw_fd());
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == -1 {
                return 0;
            }
            ws.ws_col.into()
        }
    }
}

/// pb's estimate of the time left: the time per item so far (as of the
/// last change) times the items left, less the time since that change,
/// in whole seconds (0 before the first item; not shown unless positive).
fn time_left(total: i64, current: i64, to_change: Duration, since_change: Duration) -> i128 {
    if current <= 0 {
        return 0;
    }
    let per_item = to_change.as_nanos() as i128 / i128::from(current);
    let left = i128::from(total - current) * per_item - since_change.as_nanos() as i128;
    left / 1_000_000_000
}

/// One drawing of the bar; `left` is the whole seconds left (None once
/// finished, when the elapsed time is shown instead).
fn bar_line(
    total: i64,
    current: i64,
    left: Option<i128>,
    elapsed: Duration,
    width: usize,
) -> String {
    let percent = current as f64 / (total as f64 / 100.0);
    let percent_box = format!(" {percent:6.2}%");
    let counters = format!(" {current} / {total} ");
    let time_box = match left {
        None => format!(
            " {}",
            duration_string(Duration::from_secs(elapsed.as_secs()))
        ),
        Some(s) if s > 0 => format!(" {}", pb_duration(s)),
        Some(_) => String::new(),
    };
    // "B" and "!" are the bar's ends
    let fixed = counters.chars().count() + 2 + percent_box.len() + time_box.len();
    let mut bar = String::new();
    if width > fixed {
        let size = width - fixed;
        let done = ((current as f64 / total as f64) * size as f64)
            .ceil()
            .max(0.0) as usize;
        let done = done.min(size);
        let empty = size - done;
        bar.push('B');
        if empty == 0 {
            bar.push_str(&"o".repeat(done));
        } else if done > 0 {
            bar.push_str(&"o".repeat(done - 1));
            bar.push('m');
        }
        bar.push_str(&" ".repeat(empty));
        bar.push('!');
    }
    let line = format!("{counters}{bar}{percent_box}{time_box}");
    let pad = width.saturating_sub(line.chars().count());
    line + &" ".repeat(pad)
}

/// pb's time-left format: `[Nd][Nh]MMmSSs`.
fn pb_duration(secs: i128) -> String {
    let mut s = secs;
    let mut out = String::new();
    if s > 24 * 3600 {
        out.push_str(&format!("{}d", s / (24 * 3600)));
        s %= 24 * 3600;
    }
    if s > 3600 {
        out.push_str(&format!("{}h", s / 3600));
        s %= 3600;
    }
    out.push_str(&format!("{:02}m{:02}s", s / 60, s % 60));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_matches_go() {
        let mut b = [0u8; 10];
        assert_eq!(put_varint(&mut b, 0), 1);
        assert_eq!(b[0], 0);
        assert_eq!(put_varint(&mut b, 1), 1);
        assert_eq!(b[0], 2);
        assert_eq!(put_varint(&mut b, -1), 1);
        assert_eq!(b[0], 1);
        assert_eq!(put_varint(&mut b, 64), 2);
        assert_eq!(&b[..2], &[0x80, 0x01]);
        assert_eq!(put_varint(&mut b, i64::MAX), 10);
    }

    #[test]
    fn bar_without_terminal() {
        // what etcdctl prints when not on a terminal
        let l = |c, left, el| bar_line(60, c, left, Duration::from_millis(el), 0);
        assert_eq!(l(0, Some(0), 0), " 0 / 60    0.00%");
        assert_eq!(l(1, Some(71), 1000), " 1 / 60    1.67% 01m11s");
        assert_eq!(l(59, Some(0), 59_000), " 59 / 60   98.33%");
        assert_eq!(l(60, None, 60_400), " 60 / 60  100.00% 1m0s");
    }

    #[test]
    fn bar_on_a_terminal() {
        let l = bar_line(10, 5, Some(3), Duration::ZERO, 40);
        assert_eq!(l.chars().count(), 40);
        assert_eq!(l, " 5 / 10 Booooooom       !  50.00% 00m03s");
        let full = bar_line(10, 10, None, Duration::from_secs(2), 30);
        assert_eq!(full, " 10 / 10 Boooooooo! 100.00% 2s");
    }

    #[test]
    fn pb_durations() {
        assert_eq!(pb_duration(71), "01m11s");
        assert_eq!(pb_duration(3601), "1h00m01s");
        // pb's comparisons are strict: a whole hour is still minutes
        assert_eq!(pb_duration(90_000), "1d60m00s");
        assert_eq!(pb_duration(93_600), "1d2h00m00s");
    }

    #[test]
    fn time_left_estimate() {
        // 1 of 60 done after 1 s, measured right at the change: 59 s left
        let s = Duration::from_secs(1);
        assert_eq!(time_left(60, 1, s, Duration::ZERO), 59);
        assert_eq!(time_left(60, 59, s * 59, s), 0);
        assert_eq!(time_left(60, 0, s, s), 0);
    }

    #[test]
    fn stats_as_etcd_report() {
        let mut r = Report::default();
        r.add(Ok(()), Duration::from_millis(100));
        r.add(Ok(()), Duration::from_millis(300));
        r.add(Err("etcdserver: too many requests".into()), Duration::ZERO);
        let s = r.stats(Duration::from_secs(1));
        assert_eq!(s.rps, 2.0);
        assert!((s.slowest - 0.3).abs() < 1e-9);
        assert!((s.stddev - 0.1).abs() < 1e-9);
        assert_eq!(s.errors["etcdserver: too many requests"], 1);
        assert!(Report::default()
            .stats(Duration::from_secs(1))
            .stddev
            .is_nan());
    }

    #[test]
    fn models() {
        let xl = perf_model("xLarge").unwrap();
        assert_eq!((xl.limit, xl.clients, xl.duration), (15000, 1000, 60));
        assert!(perf_model("XL").is_none());
        assert_eq!(scale_model("m").unwrap().limit, 100_000);
    }
}
