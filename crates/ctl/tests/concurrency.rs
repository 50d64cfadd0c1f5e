//! `lock`, `elect` and `make-mirror` against real servers on loopback:
//! rustcdctl and etcdctl 3.5.1 contending for the same locks and
//! elections (so the recipes are the same on the wire), observers of both
//! printing the same leaders, and mirrors of both copying and following a
//! source the same way; plus argument errors compared with etcdctl.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// Long enough for a waiter to take over a released lock or leadership.
const HANDOVER: Duration = Duration::from_secs(20);
/// How long a contender is watched to make sure it is still waiting.
const STILL: Duration = Duration::from_millis(1500);

// ------------------------------------------------------------- helpers

/// A long-running client (lock holder, candidate, observer, mirror) whose
/// stdout lines are collected as they come; killed if left running.
struct Bg {
    child: Child,
    lines: mpsc::Receiver<String>,
    got: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Bg {
    fn start(bin: &Path, ep: &str, args: &[&str]) -> Bg {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={ep}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || String::from_utf8_lossy(&read_all(stderr)).into());
        Bg {
            child,
            lines,
            got: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Whether it has printed `n` lines in all within `t`.
    fn wait_lines(&mut self, n: usize, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        while self.got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.got.push(l),
                Err(_) => return false,
            }
        }
        true
    }

    /// The lines printed so far.
    fn lines_now(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.got.push(l);
        }
        self.got.clone()
    }

    /// Asserts it prints nothing (more) for a while: still waiting.
    fn assert_waiting(&mut self, what: &str) {
        let before = self.lines_now().len();
        std::thread::sleep(STILL);
        let now = self.lines_now();
        assert_eq!(now.len(), before, "{what} should still wait: {now:?}");
        assert!(self.child.try_wait().unwrap().is_none(), "{what} exited");
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Sends `sig` and waits for the end: exit code (-signal if killed),
    /// every stdout line, stderr.
    fn stop(&mut self, sig: &str) -> (i32, Vec<String>, String) {
        self.signal(sig);
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "client ignored SIG{sig}");
            std::thread::sleep(Duration::from_millis(20));
        };
        // the reader thread ends at EOF
        while let Ok(l) = self.lines.recv() {
            self.got.push(l);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let code = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        (code, self.got.clone(), stderr)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(ep: &str, args: &[&str]) -> Out {
    let mut full = vec![format!("--endpoints={ep}")];
    full.extend(args.iter().map(|a| a.to_string()));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let o = run(&rustcdctl_bin(), &full, None, &[]);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    o
}

fn stdout(o: &Out) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The keys under `prefix`.
fn keys(ep: &str, prefix: &str) -> Vec<String> {
    let o = ctl(ep, &["get", prefix, "--prefix", "--keys-only"]);
    stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Every key and value, as `key=value` lines.
fn contents(ep: &str) -> Vec<String> {
    let o = ctl(ep, &["get", "", "--prefix"]);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|kv| format!("{}={}", kv[0], kv.get(1).unwrap_or(&"")))
        .collect()
}

fn wait_until(t: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + t;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lease_ids(ep: &str) -> Vec<i64> {
    let o = ctl(ep, &["lease", "list"]);
    stdout(&o)
        .lines()
        .skip(1)
        .filter_map(|l| i64::from_str_radix(l, 16).ok())
        .collect()
}

/// Asserts `line` is `<name>/<lease>` with the lease in Go's `%x` (no
/// padding) and one of the server's live leases: the recipe's key.
fn assert_session_key(ep: &str, name: &str, line: &str) {
    let hex = line
        .strip_prefix(&format!("{name}/"))
        .unwrap_or_else(|| panic!("{line:?} is not under {name}/"));
    let id = i64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{line:?}: no lease ID"));
    assert_eq!(format!("{id:x}"), hex, "{line:?}: not Go's %x of the lease");
    assert!(
        lease_ids(ep).contains(&id),
        "{line:?}: {id:x} is not a live lease"
    );
}

fn start(kind: Server) -> (tempfile::TempDir, Member) {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(kind, dir.path(), free_port(), free_port(), &[]);
    (dir, m)
}

// ---------------------------------------------------------------- lock

/// A lock holder that has printed its key (and the empty value).
fn holder(bin: &Path, ep: &str, name: &str) -> Bg {
    let mut h = Bg::start(bin, ep, &["lock", name]);
    assert!(h.wait_lines(2, HANDOVER), "no lock: {:?}", h.lines_now());
    assert_eq!(h.got[1], "", "the lock key's value is empty");
    assert_session_key(ep, name, &h.got[0]);
    h
}

/// A lock contender, started once its key is in line as the `n`th.
fn queued(bin: &Path, ep: &str, name: &str, n: usize) -> Bg {
    let bg = Bg::start(bin, ep, &["lock", name]);
    let pfx = format!("{name}/");
    wait_until(HANDOVER, "a contender's key", || keys(ep, &pfx).len() == n);
    bg
}

/// Waits for a blocked contender to take the lock.
fn takes_over(bg: &mut Bg, ep: &str, name: &str) {
    assert!(bg.wait_lines(2, HANDOVER), "lock not handed over");
    assert_session_key(ep, name, &bg.got[0]);
}

fn released(h: &mut Bg, sig: &str) {
    let (code, _, stderr) = h.stop(sig);
    assert_eq!((code, stderr.as_str()), (0, ""), "unlock on SIG{sig}");
}

/// rustcdctl holders exclude each other and etcdctl's, both ways, and hand
/// over in create-revision order on SIGINT/SIGTERM.
fn lock_handover(kind: Server) {
    let (_dir, m) = start(kind);
    let ep = m.endpoint.as_str();
    let (ours, theirs) = (rustcdctl_bin(), etcdctl_bin());

    let mut a = holder(&ours, ep, "L");
    let mut b = queued(&ours, ep, "L", 2);
    b.assert_waiting("a second rustcdctl");
    let mut c = queued(&theirs, ep, "L", 3);
    c.assert_waiting("etcdctl behind rustcdctl");

    released(&mut a, "INT");
    takes_over(&mut b, ep, "L");
    c.assert_waiting("etcdctl behind the second rustcdctl");
    assert!(!keys(ep, "L/").contains(&a.got[0]), "the first key is gone");

    released(&mut b, "TERM");
    takes_over(&mut c, ep, "L");
    let mut d = queued(&ours, ep, "L", 2);
    d.assert_waiting("rustcdctl behind etcdctl");

    released(&mut c, "INT");
    takes_over(&mut d, ep, "L");
    released(&mut d, "INT");
    assert!(keys(ep, "L/").is_empty());
}

#[test]
fn lock_handover_rustcd() {
    lock_handover(Server::Rustcd);
}

#[test]
fn lock_handover_etcd() {
    lock_handover(Server::Etcd);
}

/// A rustcdctl waiter given SIGINT gives up and takes its key away.
fn lock_wait_interrupted(kind: Server) {
    let (_dir, m) = start(kind);
    let ep = m.endpoint.as_str();
    let mut h = holder(&etcdctl_bin(), ep, "W");
    let mut w = Bg::start(&rustcdctl_bin(), ep, &["lock", "W"]);
    wait_until(HANDOVER, "the waiter's key", || keys(ep, "W/").len() == 2);
    let (code, out, stderr) = w.stop("INT");
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(stderr, "Error: context canceled\n");
    assert_eq!(keys(ep, "W/"), vec![h.got[0].clone()]);
    released(&mut h, "INT");
}

#[test]
fn lock_wait_interrupted_rustcd() {
    lock_wait_interrupted(Server::Rustcd);
}

#[test]
fn lock_wait_interrupted_etcd() {
    lock_wait_interrupted(Server::Etcd);
}

/// `lock name cmd...` waits for the lock, runs cmd holding it with
/// ETCD_LOCK_KEY/ETCD_LOCK_REV, then releases it.
fn lock_runs_command(kind: Server) {
    let (_dir, m) = start(kind);
    let ep = m.endpoint.as_str();
    let mut h = holder(&etcdctl_bin(), ep, "C");
    // the command shows the lock's keys while it runs, then its variables
    let script = format!(
        "{} --endpoints={ep} get C/ --prefix --keys-only; echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\"",
        rustcdctl_bin().display()
    );
    let mut x = Bg::start(
        &rustcdctl_bin(),
        ep,
        &["lock", "C", "--", "sh", "-c", &script],
    );
    x.assert_waiting("a command behind etcdctl's lock");
    released(&mut h, "INT");
    assert!(x.wait_lines(3, HANDOVER), "{:?}", x.lines_now());
    let (code, out, stderr) = x.stop("CONT");
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(out.len(), 3, "only our key while the command runs: {out:?}");
    let key = &out[0];
    assert_session_key(ep, "C", key);
    let (env_key, env_rev) = out[2].split_once(' ').unwrap();
    assert_eq!(env_key, key, "ETCD_LOCK_KEY");
    assert!(env_rev.parse::<i64>().expect("ETCD_LOCK_REV") > 0);
    assert!(keys(ep, "C/").is_empty(), "released after the command");
}

#[test]
fn lock_runs_command_rustcd() {
    lock_runs_command(Server::Rustcd);
}

#[test]
fn lock_runs_command_etcd() {
    lock_runs_command(Server::Etcd);
}

// --------------------------------------------------------------- elect

/// A candidate that has printed its key and proposal: the leader.
fn leads(c: &mut Bg, ep: &str, name: &str, prop: &str) {
    assert!(
        c.wait_lines(2, HANDOVER),
        "not elected: {:?}",
        c.lines_now()
    );
    assert_session_key(ep, name, &c.got[0]);
    assert_eq!(c.got[1], prop);
}

/// Candidates of both clients take turns as leaders resign (SIGINT);
/// observers of both print the same leaders, in simple and JSON output.
fn elect_observed(kind: Server) {
    let (_dir, m) = start(kind);
    let ep = m.endpoint.as_str();
    let (ours, theirs) = (rustcdctl_bin(), etcdctl_bin());
    let mut observers = [
        Bg::start(&ours, ep, &["elect", "-l", "E"]),
        Bg::start(&theirs, ep, &["elect", "-l", "E"]),
        Bg::start(&ours, ep, &["-w", "json", "elect", "E", "--listen"]),
        Bg::start(&theirs, ep, &["-w", "json", "elect", "E", "--listen"]),
    ];
    // the observers' sessions
    wait_until(HANDOVER, "observers", || lease_ids(ep).len() == 4);

    let props = [(&theirs, "p1"), (&ours, "p2 with spaces"), (&theirs, "p3")];
    let mut cands: Vec<Bg> = Vec::new();
    for (i, (bin, prop)) in props.iter().enumerate() {
        cands.push(Bg::start(bin, ep, &["elect", "E", prop]));
        wait_until(HANDOVER, "a candidate's key", || {
            keys(ep, "E/").len() == i + 1
        });
    }
    let mut leaders = Vec::new();
    for i in 0..cands.len() {
        leads(&mut cands[i], ep, "E", props[i].1);
        for later in &mut cands[i + 1..] {
            later.assert_waiting("a later candidate");
        }
        leaders.extend(cands[i].got.clone());
        for (j, o) in observers.iter_mut().enumerate() {
            let want = if j < 2 { 2 * (i + 1) } else { i + 1 };
            assert!(
                o.wait_lines(want, HANDOVER),
                "observer {j}: {:?}",
                o.lines_now()
            );
        }
        let (code, out, stderr) = cands[i].stop("INT");
        assert_eq!((code, stderr.as_str()), (0, ""), "resign");
        assert_eq!(out.len(), 2, "{out:?}");
    }
    let outs: Vec<Vec<String>> = observers
        .iter_mut()
        .map(|o| {
            let (code, out, stderr) = o.stop("INT");
            assert_eq!((code, stderr.as_str()), (0, ""), "observer stopped");
            out
        })
        .collect();
    assert_eq!(outs[0], leaders, "rustcdctl's observer");
    assert_eq!(outs[1], leaders, "etcdctl's observer");
    assert_eq!(outs[2], outs[3], "JSON observers");
    assert!(keys(ep, "E/").is_empty());
}

#[test]
fn elect_observed_rustcd() {
    elect_observed(Server::Rustcd);
}

#[test]
fn elect_observed_etcd() {
    elect_observed(Server::Etcd);
}

// --------------------------------------------------------- make-mirror

/// The source's keys before the mirrors start, and its changes while
/// they run (with the txn changing three keys at one revision).
fn seed(ep: &str) {
    for (k, v) in [
        ("k/1", "v1"),
        ("k/2", "v2"),
        ("k/3", "v3"),
        ("other/x", "x"),
    ] {
        ctl(ep, &["put", k, v]);
    }
}

fn change(ep: &str) {
    ctl(ep, &["put", "k/4", "v4"]);
    ctl(ep, &["del", "k/1"]);
    let o = run(
        &rustcdctl_bin(),
        &[&format!("--endpoints={ep}"), "txn"],
        Some("\nput k/5 v5\nput k/6 v6\ndel k/2\n\n\n"),
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    ctl(ep, &["put", "other/y", "y"]);
}

fn with_prefix(pfx: &str, kvs: &[&str]) -> Vec<String> {
    kvs.iter().map(|kv| format!("{pfx}{kv}")).collect()
}

/// Every key copied, then every change followed, under each naming:
/// all keys as they are, `--prefix` to a `--dest-prefix`, and
/// `--no-dest-prefix`.
fn mirror_follows(dst_kind: Server) {
    let (_d1, src) = start(Server::Rustcd);
    let (_d2, dst) = start(dst_kind);
    let (s, d) = (src.endpoint.as_str(), dst.endpoint.as_str());
    seed(s);
    let ours = rustcdctl_bin();
    let mut mirrors = [
        Bg::start(&ours, s, &["make-mirror", d]),
        Bg::start(
            &ours,
            s,
            &["make-mirror", "--prefix=k/", "--dest-prefix=m/", d],
        ),
        Bg::start(
            &ours,
            s,
            &["make-mirror", "--prefix", "k/", "--no-dest-prefix", d],
        ),
    ];
    let mut base = [
        with_prefix("", &["1=v1", "2=v2", "3=v3"]),
        with_prefix("k/", &["1=v1", "2=v2", "3=v3"]),
        with_prefix("m/", &["1=v1", "2=v2", "3=v3"]),
        vec!["other/x=x".into()],
    ]
    .concat();
    base.sort();
    wait_until(HANDOVER, "the initial copy", || contents(d) == base);
    change(s);
    let left = ["3=v3", "4=v4", "5=v5", "6=v6"];
    let mut want = [
        with_prefix("", &left),
        with_prefix("k/", &left),
        with_prefix("m/", &left),
        vec!["other/x=x".into(), "other/y=y".into()],
    ]
    .concat();
    want.sort();
    wait_until(HANDOVER, "the changes mirrored", || contents(d) == want);
    for mm in &mut mirrors {
        let (code, out, stderr) = mm.stop("INT");
        // no progress line before 30 s, no error; SIGINT kills as etcdctl's
        assert_eq!((code, out.len(), stderr.as_str()), (-2, 0, ""));
    }
}

#[test]
fn mirror_follows_rustcd_to_rustcd() {
    mirror_follows(Server::Rustcd);
}

#[test]
fn mirror_follows_rustcd_to_etcd() {
    mirror_follows(Server::Etcd);
}

/// rustcdctl's and etcdctl's mirrors, side by side from one source into
/// one destination (under different prefixes): the same copy, and the
/// same progress line at 30 s.
#[test]
fn mirror_progress_like_etcdctl() {
    let (_d1, src) = start(Server::Rustcd);
    let (_d2, dst) = start(Server::Etcd);
    let (s, d) = (src.endpoint.as_str(), dst.endpoint.as_str());
    seed(s);
    let started = Instant::now();
    let mut ours = Bg::start(
        &rustcdctl_bin(),
        s,
        &["make-mirror", "--prefix=k/", "--dest-prefix=r/", d],
    );
    let mut theirs = Bg::start(
        &etcdctl_bin(),
        s,
        &["make-mirror", "--prefix=k/", "--dest-prefix=e/", d],
    );
    wait_until(HANDOVER, "the initial copies", || keys(d, "").len() == 6);
    change(s);
    let want = |p: &str| with_prefix(p, &["3=v3", "4=v4", "5=v5", "6=v6"]);
    wait_until(HANDOVER, "the changes mirrored", || {
        contents(d) == [want("e/"), want("r/")].concat()
    });
    // 3 keys copied + 5 changes under k/; printed at 30 s
    let (t, max) = (Duration::from_secs(30), Duration::from_secs(55));
    assert!(ours.wait_lines(1, t + HANDOVER), "no progress line");
    assert!(theirs.wait_lines(1, t + HANDOVER), "etcdctl printed none");
    assert!(started.elapsed() < max, "too slow to compare one tick");
    let (_, ours_out, ours_err) = ours.stop("KILL");
    let (_, theirs_out, _) = theirs.stop("KILL");
    assert_eq!(theirs_out, vec!["8".to_string()], "etcdctl's count");
    assert_eq!(ours_out, theirs_out);
    assert_eq!(ours_err, "");
}

// --------------------------------------------------------------- errors

fn arg_error_steps() -> Vec<Step> {
    [
        "lock",
        "lock L -- sh -c 'echo $ETCD_LOCK_REV; exit 3'",
        "lock L -- sh -c 'kill -9 $$'",
        "lock L -- no-such-command-xyz",
        "lock L -- ./no-such-command-xyz",
        "lock --ttl=abc L",
        "lock --ttl 0 L -- true",
        "-w json lock L -- sh -c 'echo $ETCD_LOCK_REV'",
        "get L --prefix",
        "lock --help",
        "elect",
        "elect E",
        "elect -l E p",
        "elect a b c",
        "elect --help",
        "make-mirror",
        "make-mirror a b",
        "make-mirror --help",
        "make-mirror --dest-cert=/nonexistent 127.0.0.1:1",
        "make-mirror --dest-cacert=/nonexistent 127.0.0.1:1",
        "make-mirror --dest-prefix=x --no-dest-prefix $EP",
    ]
    .iter()
    .map(|s| step(s))
    .collect()
}

#[test]
fn errors_and_exit_codes_like_etcdctl_rustcd() {
    differential(Server::Rustcd, &[], &arg_error_steps());
}

#[test]
fn errors_and_exit_codes_like_etcdctl_etcd() {
    differential(Server::Etcd, &[], &arg_error_steps());
}
