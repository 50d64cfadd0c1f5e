//! Watch, end to end: the real etcdctl 3.5.1 (`watch` with --prefix, --rev, --prev-kv, -i,
//! exec commands, compaction) and raw gRPC clients, against rustcd and, differentially, real
//! etcd 3.5.1; a 3-member cluster losing its leader mid-stream; a consumer that stops reading
//! while 24 000 events are written.

mod common;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::watch_client::WatchClient;
use rustcd_proto::etcdserverpb::watch_request::RequestUnion;
use rustcd_proto::etcdserverpb::{
    request_op, CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use rustcd_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

// ------------------------------------------------------------------ etcdctl watch processes

/// A long-running `etcdctl watch`, its output going to files that the test polls.
struct WatchProc {
    child: Child,
    stdin: Option<ChildStdin>,
    out: PathBuf,
    err: PathBuf,
    label: String,
}

impl WatchProc {
    fn start(dir: &Path, label: &str, endpoints: &str, args: &[&str]) -> WatchProc {
        Self::spawn(dir, label, endpoints, args, false)
    }

    fn interactive(dir: &Path, label: &str, endpoints: &str) -> WatchProc {
        Self::spawn(dir, label, endpoints, &["-i"], true)
    }

    fn spawn(dir: &Path, label: &str, endpoints: &str, args: &[&str], stdin: bool) -> WatchProc {
        let out = dir.join(format!("{label}.out"));
        let err = dir.join(format!("{label}.err"));
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg("watch")
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("run etcdctl watch");
        WatchProc {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            label: label.to_string(),
        }
    }

    fn stdout(&self) -> String {
        read_log(&self.out)
    }

    fn stderr(&self) -> String {
        read_log(&self.err)
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("interactive watch");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Polls stdout until `done` holds.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.stdout();
            if done(&out) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} after 30 s\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                self.label,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for etcdctl to exit by itself; returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after 30 s\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.label,
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout()
    }
}

impl Drop for WatchProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// etcdctl's stderr without the Go client's JSON log lines.
fn user_lines(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn ok(ep: &str, args: &[&str]) -> String {
    let r = etcdctl(ep, args);
    assert!(r.ok, "etcdctl {args:?}: {r:?}");
    r.stdout
}

fn txn(ep: &str, ops: &str) {
    let r = etcdctl_stdin(ep, &["txn"], Some(&format!("\n{ops}\n\n\n")));
    assert!(r.ok && r.stdout.starts_with("SUCCESS"), "txn: {r:?}");
}

/// The same writes and `etcdctl watch` command lines against one member of `server`;
/// returns (label, output) pairs.
fn etcdctl_scenario(server: Server) -> Vec<(String, String)> {
    let c = Cluster::start(server, 1, &[]);
    let ep = c.ep(0).to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // History written before any watch exists.
    ok(&ep, &["put", "k1", "v1"]); // 2
    ok(&ep, &["put", "k2", "v2"]); // 3
    ok(&ep, &["put", "k1", "v1b"]); // 4
    ok(&ep, &["del", "k2"]); // 5
    ok(&ep, &["put", "a/x", "1"]); // 6
    txn(&ep, "put k3 v3\nput k4 v4\ndel k1"); // 7
    ok(&ep, &["put", "b", "b1"]); // 8

    let watches: Vec<(&str, Vec<&str>)> = vec![
        ("key", vec!["k1", "--rev=1"]),
        ("prefix", vec!["k", "--prefix", "--rev=1"]),
        (
            "prefix-prev-kv",
            vec!["k", "--prefix", "--rev=3", "--prev-kv"],
        ),
        ("range", vec!["a", "c", "--rev=1"]),
        ("all-keys", vec!["--prefix", "", "--rev=1"]),
        ("from-middle", vec!["k4", "l", "--rev=7", "--prev-kv"]),
    ];
    let procs: Vec<WatchProc> = watches
        .iter()
        .map(|(label, args)| WatchProc::start(d, label, &ep, args))
        .collect();
    // A watch that runs a command per event; its history arrives before the live writes so
    // that responses (which group its output) are the same on both servers.
    let exec = WatchProc::start(
        d,
        "exec",
        &ep,
        &[
            "k1",
            "--rev=2",
            "--",
            "sh",
            "-c",
            "echo \"exec $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"",
        ],
    );
    exec.wait_for("history", |o| o.matches("exec ").count() == 3);

    // Live writes.
    ok(&ep, &["put", "k1", "v1c"]); // 9
    ok(&ep, &["del", "k", "--prefix"]); // 10: k1, k3, k4 at one revision
    ok(&ep, &["put", "a/y", "2"]); // 11
    txn(&ep, "put k1 end\nput a/end end\nput k9 end"); // 12
    let mut outputs = Vec::new();
    for p in procs.into_iter().chain([exec]) {
        p.wait_for("final event", |o| o.contains("end\n"));
        outputs.push((p.label.clone(), p.stop()));
    }

    // Compaction: a watch from before it is canceled; one from the compact revision works.
    assert_eq!(
        ok(&ep, &["compact", "5", "--physical"]),
        "compacted revision 5\n"
    );
    let mut compacted = WatchProc::start(d, "compacted", &ep, &["k1", "--rev=2"]);
    let code = compacted.wait_exit();
    outputs.push((
        "compacted".into(),
        format!(
            "exit {code}\nstdout:\n{}stderr:\n{}",
            compacted.stdout(),
            user_lines(&compacted.stderr())
        ),
    ));
    let at_compact = WatchProc::start(d, "at-compact", &ep, &["k", "--prefix", "--rev=5"]);
    at_compact.wait_for("final event", |o| o.contains("end\n"));
    outputs.push(("at-compact".into(), at_compact.stop()));

    // Interactive: a watch typed on stdin, then a progress request.
    let mut i = WatchProc::interactive(d, "interactive", &ep);
    i.send("watch k1 --rev=5 --prev-kv");
    i.wait_for("final event", |o| o.contains("end\n"));
    i.send("progress");
    i.wait_for("progress notification", |o| o.contains("progress notify"));
    outputs.push(("interactive".into(), i.stop()));
    outputs
}

#[test]
fn etcdctl_watch_output_matches_real_etcd() {
    let ours = etcdctl_scenario(Server::Rustcd);
    let theirs = etcdctl_scenario(Server::Etcd);
    for ((label, o), (_, t)) in ours.iter().zip(&theirs) {
        assert_eq!(
            o, t,
            "`{label}` differs from etcd\n--- rustcd ---\n{o}\n--- etcd ---\n{t}"
        );
    }
    assert_eq!(ours.len(), theirs.len());
    // And what that output is, spelled out for a few.
    let get = |l: &str| ours.iter().find(|(x, _)| x == l).unwrap().1.clone();
    assert_eq!(
        get("key"),
        "PUT\nk1\nv1\nPUT\nk1\nv1b\nDELETE\nk1\n\nPUT\nk1\nv1c\nDELETE\nk1\n\nPUT\nk1\nend\n"
    );
    assert!(get("compacted")
        .contains("watch was canceled (etcdserver: mvcc: required revision has been compacted)"));
    assert!(get("interactive").ends_with("progress notify: 12\n"));
    assert!(get("prefix-prev-kv").starts_with("PUT\nk2\nv2\nPUT\nk1\nv1\nk1\nv1b\n"));
}

#[test]
fn etcdctl_watch_sees_live_writes_on_key_and_prefix() {
    let c = Cluster::start(Server::Rustcd, 1, &[]);
    let ep = c.ep(0);
    let dir = tempfile::tempdir().unwrap();
    let key = WatchProc::start(dir.path(), "key", ep, &["live"]);
    let prefix = WatchProc::start(dir.path(), "prefix", ep, &["live", "--prefix", "--prev-kv"]);
    // Without --rev a watch starts "now": probe until both are established.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(key.stdout().contains("probe") && prefix.stdout().contains("probe")) {
        assert!(Instant::now() < deadline, "watches never started");
        ok(ep, &["put", "live", "probe"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(ep, &["put", "live", "v1"]);
    ok(ep, &["put", "live/x", "2"]);
    ok(ep, &["put", "other", "3"]);
    ok(ep, &["del", "live"]);
    ok(ep, &["put", "live", "end"]);
    key.wait_for("final event", |o| o.ends_with("live\nend\n"));
    prefix.wait_for("final event", |o| o.ends_with("live\nend\n"));
    let k = key.stop();
    let tail = k.rsplit("live\nprobe\n").next().unwrap();
    assert_eq!(
        tail, "PUT\nlive\nv1\nDELETE\nlive\n\nPUT\nlive\nend\n",
        "{k}"
    );
    let p = prefix.stop();
    let tail = p.rsplit("live\nprobe\n").next().unwrap();
    assert_eq!(
        tail,
        // (the last probe is the first put's prev_kv)
        "live\nv1\nPUT\nlive/x\n2\nDELETE\nlive\nv1\nlive\n\nPUT\nlive\nend\n",
        "{p}"
    );
}

// ------------------------------------------------------------------ raw gRPC clients

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// A client watch stream.
struct Stream {
    tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<WatchResponse>,
}

impl Stream {
    /// Opens a stream with its first create request (grpc-go sends the response headers only
    /// with the first response, so the call returns only once a request was answered).
    async fn open(url: &str, first: WatchCreateRequest) -> Result<Stream, tonic::Status> {
        Self::open_on(channel(url).await, first).await
    }

    async fn open_on(ch: Channel, first: WatchCreateRequest) -> Result<Stream, tonic::Status> {
        let (tx, req_rx) = mpsc::channel(64);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(first)),
        })
        .await
        .unwrap();
        let mut client = WatchClient::new(ch).max_decoding_message_size(usize::MAX);
        let rx = client
            .watch(ReceiverStream::new(req_rx))
            .await?
            .into_inner();
        Ok(Stream { tx, rx })
    }

    async fn send(&self, r: RequestUnion) {
        self.tx
            .send(WatchRequest {
                request_union: Some(r),
            })
            .await
            .unwrap();
    }

    async fn create(&self, c: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await;
    }

    /// The next response; `None` if the stream ended or failed.
    async fn next(&mut self, timeout: Duration) -> Option<WatchResponse> {
        match tokio::time::timeout(timeout, self.rx.message()).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => None,
            Err(_) => panic!("no watch response within {timeout:?}"),
        }
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    }
}

async fn put(kv: &mut KvClient<Channel>, k: &str, v: &[u8]) -> i64 {
    kv.put(PutRequest {
        key: k.as_bytes().to_vec(),
        value: v.to_vec(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// One response with what legitimately differs between servers cleared.
fn normalized(mut r: WatchResponse) -> String {
    if let Some(h) = &mut r.header {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
    let events: Vec<String> = r
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.clone().unwrap_or_default();
            let prev = e
                .prev_kv
                .as_ref()
                .map(|p| format!(" prev={}@{}", p.value.len(), p.mod_revision))
                .unwrap_or_default();
            format!(
                "{:?} {}={}B c{} m{} v{}{prev}",
                EventType::try_from(e.r#type).unwrap(),
                String::from_utf8_lossy(&kv.key),
                kv.value.len(),
                kv.create_revision,
                kv.mod_revision,
                kv.version
            )
        })
        .collect();
    format!(
        "id={} rev={} created={} canceled={} compact={} reason={:?} fragment={} events={:?}",
        r.watch_id,
        r.header.map_or(-99, |h| h.revision),
        r.created,
        r.canceled,
        r.compact_revision,
        r.cancel_reason,
        r.fragment,
        events
    )
}

/// One stream's requests and responses against one member of `server`, on fixed ports (so
/// the member and cluster ids, and hence response sizes, are the same for both servers).
async fn grpc_scenario(ep: &str) -> Vec<String> {
    let mut kv = KvClient::new(channel(ep).await).max_decoding_message_size(usize::MAX);
    put(&mut kv, "k", b"v1").await; // 2
    put(&mut kv, "k", b"v2").await; // 3
    put(&mut kv, "k", b"v3").await; // 4
    put(&mut kv, "other", b"x").await; // 5
    kv.compact(CompactionRequest {
        revision: 3,
        physical: true,
    })
    .await
    .unwrap();
    let value = vec![b'x'; 10_000];
    for i in 0..250 {
        put(&mut kv, &format!("big/{i:03}"), &value).await; // 6..=255
    }

    let mut log = Vec::new();
    let mut s = Stream::open(ep, create("k", "", 4)).await.unwrap();
    let wait = Duration::from_secs(20);
    // Reads `n` responses, sorted by watch id when several watchers answer one write.
    macro_rules! step {
        ($name:expr, $n:expr) => {{
            let mut rs = Vec::new();
            for _ in 0..$n {
                rs.push(normalized(s.next(wait).await.expect("stream ended")));
            }
            rs.sort_by_key(|r| r.split(' ').next().unwrap().to_string());
            eprintln!("step {}: {rs:?}", $name);
            log.push(format!("== {}", $name));
            log.extend(rs);
        }};
    }
    step!("history from 4", 2);
    s.create(create("k", "", 2)).await;
    step!("start below the compact revision", 2);
    s.create(create("k", "", 3)).await;
    step!("start at the compact revision", 2);
    s.create(WatchCreateRequest {
        watch_id: 7,
        prev_kv: true,
        ..create("k", "", 0)
    })
    .await;
    step!("client-chosen id", 1);
    s.create(WatchCreateRequest {
        watch_id: 7,
        ..create("k", "", 0)
    })
    .await;
    step!("duplicate id", 1);
    s.create(create("b", "a", 0)).await;
    step!("empty range", 1);
    s.create(WatchCreateRequest {
        filters: vec![1], // NODELETE
        ..create("", "\0", 0)
    })
    .await;
    step!("all keys without deletes", 1);
    s.create(create("k", "", 258)).await;
    step!("future revision", 1);
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    step!("progress request", 1);
    s.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 1,
    }))
    .await;
    step!("cancel the compacted watch", 1);
    s.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 99,
    }))
    .await;
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    step!("cancel of an unknown id, then progress", 1);
    put(&mut kv, "k", b"v4").await; // 256
    step!("put", 4);
    kv.delete_range(DeleteRangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap(); // 257
    step!("delete", 3);
    put(&mut kv, "k", b"v5").await; // 258
    step!("put at the future revision", 5);
    s.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 3,
    }))
    .await;
    step!("cancel all keys", 1);

    // Fragments: history and a delete of 250 keys of 10 kB with prev_kv (> 2 MiB each).
    s.create(WatchCreateRequest {
        fragment: true,
        prev_kv: true,
        ..create("big/", "big0", 6)
    })
    .await;
    let mut rs = vec![normalized(s.next(wait).await.unwrap())];
    loop {
        let r = s.next(wait).await.unwrap();
        let more = r.fragment;
        rs.push(normalized(r));
        if !more {
            break;
        }
    }
    log.push("== fragmented history".into());
    log.extend(rs);
    kv.delete_range(DeleteRangeRequest {
        key: b"big/".to_vec(),
        range_end: b"big0".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rs = Vec::new();
    loop {
        let r = s.next(wait).await.unwrap();
        let more = r.fragment;
        rs.push(normalized(r));
        if !more {
            break;
        }
    }
    log.push("== fragmented delete".into());
    log.extend(rs);
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    step!("nothing else was sent", 1);
    log
}

#[test]
fn grpc_watch_protocol_matches_real_etcd() {
    let ports = [(free_port(), free_port())];
    let rt = runtime();
    let theirs = {
        let c = Cluster::start_on(Server::Etcd, tempfile::tempdir().unwrap(), &ports, &[]);
        rt.block_on(grpc_scenario(c.ep(0)))
    };
    let ours = {
        let c = Cluster::start_on(Server::Rustcd, tempfile::tempdir().unwrap(), &ports, &[]);
        rt.block_on(grpc_scenario(c.ep(0)))
    };
    if ours != theirs {
        let mut diff = String::new();
        for i in 0..ours.len().max(theirs.len()) {
            let o = ours.get(i).map_or("<none>", |s| s.as_str());
            let t = theirs.get(i).map_or("<none>", |s| s.as_str());
            let mark = if o == t { "  " } else { "!!" };
            diff.push_str(&format!("{mark} rustcd: {o}\n{mark} etcd:   {t}\n"));
        }
        panic!("watch responses differ from etcd 3.5.1:\n{diff}");
    }
    // Spot checks of what etcd does.
    let find = |p: &str| ours.iter().find(|l| l.contains(p)).cloned();
    assert!(find("compact=3").is_some(), "{ours:#?}");
    assert!(find("fragment=true").is_some(), "{ours:#?}");
    assert!(find("duplicate watch ID").is_some(), "{ours:#?}");
}

#[test]
fn progress_notifications_carry_the_current_revision() {
    let c = Cluster::start(
        Server::Rustcd,
        1,
        &["--experimental-watch-progress-notify-interval=200ms"],
    );
    let rt = runtime();
    rt.block_on(async {
        let mut kv = KvClient::new(channel(c.ep(0)).await);
        let rev = put(&mut kv, "p", b"1").await;
        let first = WatchCreateRequest {
            progress_notify: true,
            ..create("p", "", 0)
        };
        let mut s = Stream::open(c.ep(0), first).await.unwrap();
        let created = s.next(Duration::from_secs(10)).await.unwrap();
        assert!(created.created);
        for _ in 0..2 {
            let r = s.next(Duration::from_secs(10)).await.unwrap();
            assert_eq!(r.watch_id, created.watch_id);
            assert!(r.events.is_empty() && !r.canceled, "{r:?}");
            assert_eq!(r.header.unwrap().revision, rev);
        }
    });
}

// ------------------------------------------------------------------ failover

/// (revision, key, value) of every event of `r`.
fn triples(r: &WatchResponse) -> Vec<(i64, String, String)> {
    r.events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

#[test]
fn leader_kill_9_mid_stream_then_resume_on_a_survivor_sees_every_event_once() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    let eps: Vec<String> = (0..3).map(|i| c.ep(i).to_string()).collect();
    let rt = runtime();
    const WRITES: usize = 240;

    // Writer: puts through member 0, moving to a survivor when a put fails.
    let (acked_tx, mut acked_rx) = mpsc::unbounded_channel::<(usize, String, i64)>();
    let writer_eps = eps.clone();
    let writer = rt.spawn(async move {
        let mut target = 0usize;
        let mut kv = KvClient::new(channel(&writer_eps[target]).await);
        for i in 0..WRITES {
            let mut attempt = 0;
            loop {
                let value = format!("v{i}-{attempt}");
                let req = PutRequest {
                    key: b"w".to_vec(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                match tokio::time::timeout(Duration::from_secs(5), kv.put(req)).await {
                    Ok(Ok(r)) => {
                        let rev = r.into_inner().header.unwrap().revision;
                        let _ = acked_tx.send((i, value, rev));
                        break;
                    }
                    _ => {
                        attempt += 1;
                        assert!(attempt < 100, "writes never resumed");
                        target = (target + 1) % writer_eps.len();
                        if let Ok(ch) = Channel::from_shared(writer_eps[target].clone())
                            .unwrap()
                            .connect_timeout(Duration::from_secs(1))
                            .connect()
                            .await
                        {
                            kv = KvClient::new(ch);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });

    let mut seen: Vec<(i64, String, String)> = Vec::new();
    let mut acked: Vec<(usize, String, i64)> = Vec::new();
    rt.block_on(async {
        let mut member = 2usize;
        let mut s = Stream::open(&eps[member], create("w", "", 0))
            .await
            .unwrap();
        let created = s.next(Duration::from_secs(10)).await.unwrap();
        assert!(created.created);
        let mut killed: Option<usize> = None;
        let mut moved = false;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            assert!(
                Instant::now() < deadline,
                "stuck: {} writes acknowledged, {} events seen",
                acked.len(),
                seen.len()
            );
            while let Ok(a) = acked_rx.try_recv() {
                acked.push(a);
            }
            if killed.is_none() && acked.len() >= WRITES / 3 {
                let leader = c.leader().expect("a leader");
                c.procs[leader].kill9();
                killed = Some(leader);
            }
            let done = acked.len() == WRITES
                && seen.last().map(|e| e.0) >= acked.iter().map(|a| a.2).max();
            if done {
                break;
            }
            // Resume on another survivor: after the kill (once writes go on), or when the
            // stream breaks.
            let must_move = killed.is_some() && !moved && acked.len() >= 2 * WRITES / 3;
            let resp = if must_move || killed == Some(member) {
                None
            } else {
                match tokio::time::timeout(Duration::from_millis(500), s.rx.message()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(r))) => Some(r),
                    Ok(_) => None,
                }
            };
            match resp {
                Some(r) => {
                    assert!(!r.canceled, "{r:?}");
                    seen.extend(triples(&r));
                }
                None => {
                    moved |= killed.is_some();
                    member = (0..3)
                        .map(|d| (member + 1 + d) % 3)
                        .find(|m| Some(*m) != killed)
                        .unwrap();
                    let next = seen
                        .last()
                        .map_or(created.header.unwrap().revision + 1, |e| e.0 + 1);
                    s = loop {
                        if let Ok(s) = Stream::open(&eps[member], create("w", "", next)).await {
                            break s;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    };
                    let r = s.next(Duration::from_secs(10)).await.unwrap();
                    assert!(r.created && !r.canceled, "{r:?}");
                }
            }
        }
        writer.await.unwrap();
        assert!(killed.is_some() && moved);

        // The survivors' full history of the key, read by a fresh watch from revision 1.
        let mut h = Stream::open(&eps[member], create("w", "", 1))
            .await
            .unwrap();
        let last = acked.iter().map(|a| a.2).max().unwrap();
        let mut history = Vec::new();
        while history.last().map(|e: &(i64, String, String)| e.0) < Some(last) {
            let r = h.next(Duration::from_secs(10)).await.unwrap();
            history.extend(triples(&r));
        }
        assert_eq!(seen, history, "the resumed watch saw exactly the history");
    });
    let revs: Vec<i64> = seen.iter().map(|e| e.0).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    for (i, value, rev) in &acked {
        let n = seen.iter().filter(|e| &e.2 == value).count();
        assert_eq!(
            n, 1,
            "acknowledged write {i} ({value} at {rev}) seen {n} times"
        );
        assert!(seen.contains(&(*rev, "w".to_string(), value.clone())));
    }
}

// ------------------------------------------------------------------ slow consumers

#[test]
fn a_consumer_that_stops_reading_blocks_no_one_and_later_gets_every_event_once() {
    let c = Cluster::start(Server::Rustcd, 1, &["--log-level=debug"]);
    let ep = c.ep(0).to_string();
    let rt = runtime();
    const TXNS: usize = 400;
    const PER_TXN: usize = 60;
    rt.block_on(async {
        // The slow stream: created, then not read at all.
        // HTTP/2 flow control windows of 64 KiB, so the server soon cannot send more.
        let small = Channel::from_shared(ep.clone())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let mut slow = Stream::open_on(small, create("s/", "s0", 0)).await.unwrap();
        let created = slow.next(Duration::from_secs(10)).await.unwrap();
        let start = created.header.unwrap().revision;

        // A fast stream on the same keys, read concurrently.
        let mut fast = Stream::open(&ep, create("s/", "s0", 0)).await.unwrap();
        assert!(fast.next(Duration::from_secs(10)).await.unwrap().created);
        let (fast_rev_tx, fast_rev) = tokio::sync::watch::channel(0i64);
        let fast_reader = tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(r) = fast.next(Duration::from_secs(120)).await {
                n += r.events.len();
                if let Some(e) = r.events.last() {
                    let _ = fast_rev_tx.send(e.kv.as_ref().unwrap().mod_revision);
                }
                if n == TXNS * PER_TXN {
                    break;
                }
            }
            n
        });

        let mut kv = KvClient::new(channel(&ep).await);
        let value = vec![b'v'; 100];
        let mut slowest = Duration::ZERO;
        let mut last = 0;
        for t in 0..TXNS {
            let success = (0..PER_TXN)
                .map(|j| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: format!("s/{t:04}/{j:02}").into_bytes(),
                        value: value.clone(),
                        ..Default::default()
                    })),
                })
                .collect();
            let began = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                kv.txn(TxnRequest {
                    success,
                    ..Default::default()
                }),
            )
            .await
            .expect("a write waited for a watcher")
            .unwrap();
            slowest = slowest.max(began.elapsed());
            last = r.into_inner().header.unwrap().revision;
        }
        assert!(slowest < Duration::from_secs(10), "slowest txn {slowest:?}");
        assert_eq!(last, start + TXNS as i64);

        // The fast stream has everything while the slow one still has not been read.
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(60), fast_reader)
                .await
                .expect("fast watcher kept up")
                .unwrap(),
            TXNS * PER_TXN
        );
        assert_eq!(*fast_rev.borrow(), last);

        // Now the slow stream reads: every event, once, in order, each txn in one response.
        let mut next_rev = start + 1;
        let mut count = 0usize;
        while next_rev <= last {
            let r = slow
                .next(Duration::from_secs(60))
                .await
                .expect("slow stream ended");
            assert!(!r.canceled, "{r:?}");
            let mut i = 0;
            while i < r.events.len() {
                let rev = r.events[i].kv.as_ref().unwrap().mod_revision;
                assert_eq!(rev, next_rev, "events in order, none missing or repeated");
                let t = (rev - start - 1) as usize;
                for j in 0..PER_TXN {
                    let e = r
                        .events
                        .get(i + j)
                        .unwrap_or_else(|| panic!("revision {rev} split across responses"));
                    let kv = e.kv.as_ref().unwrap();
                    assert_eq!(kv.mod_revision, rev);
                    assert_eq!(kv.key, format!("s/{t:04}/{j:02}").into_bytes());
                }
                i += PER_TXN;
                count += PER_TXN;
                next_rev += 1;
            }
        }
        assert_eq!(count, TXNS * PER_TXN);
    });
    assert!(
        c.procs[0].log().contains("fell behind"),
        "the slow stream was expected to overflow its queue and catch up from the store"
    );
}

/// A require-leader watch (etcdctl's) on the one member left of three: exit code and stderr.
fn no_leader_scenario(server: Server) -> (i32, String) {
    let mut c = Cluster::start(server, 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let ep = c.ep(0).to_string();
    let mut w = WatchProc::start(dir.path(), "no-leader", &ep, &["k"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.stdout().contains("probe") {
        assert!(Instant::now() < deadline, "watch never started");
        ok(&ep, &["put", "k", "probe"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    c.procs[1].kill9();
    c.procs[2].kill9();
    // etcd cancels require-leader streams after three election timeouts without a leader;
    // etcdctl then reports it and exits.
    let code = w.wait_exit();
    (code, user_lines(&w.stderr()))
}

#[test]
fn etcdctl_watch_on_a_member_that_loses_its_leader_is_canceled_as_by_etcd() {
    let ours = no_leader_scenario(Server::Rustcd);
    assert!(ours.1.contains("etcdserver: no leader"), "{ours:?}");
    assert_eq!(ours, no_leader_scenario(Server::Etcd));
}
