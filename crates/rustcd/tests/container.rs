//! The README's two ways to run the three-member cluster without cargo,
//! run exactly as the README tells users to:
//!
//! - `container_cluster_as_in_the_readme`: `scripts/build-image.sh` (the
//!   FROM scratch image, no registry needed), then the user's etcd container
//!   commands with only the image name changed: three `docker run -d --net=host
//!   rustcd:latest /usr/local/bin/etcd ...`, `docker exec ... etcdctl` put and
//!   get, `docker stop`, `docker rm`, and nothing left behind. Every command
//!   is also checked to be in README.md's "Containers" section verbatim.
//!   Skipped (with a message) when docker is missing or its daemon is
//!   unreachable; uses free ports when 2360-2362/2380-2382 are taken.
//! - `local_cluster_script`: `scripts/local-cluster.sh`, etcdctl put/get on
//!   2360/2361, Ctrl-C (SIGINT to its process group) stops every member and
//!   leaves nothing running; started again it keeps the data, and SIGINT to
//!   the script alone stops it too. Skipped when a port is taken.
//!
//! Both need the release build of rustcd (the scripts build it; whichever
//! test runs first builds it once). `RUSTCD_SKIP_RELEASE_TESTS=1` skips both.
mod common;

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{etcd_bin_dir, etcdctl, free_port};

/// Both tests want the README's fixed ports.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

const CLIENT_PORTS: [u16; 3] = [2360, 2361, 2362];
const PEER_PORTS: [u16; 3] = [2380, 2381, 2382];

/// Prints past libtest's output capture, so a skip is visible in CI logs.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn skip_release_tests(test: &str) -> bool {
    let skip = std::env::var("RUSTCD_SKIP_RELEASE_TESTS").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        note(&format!("SKIPPED {test}: RUSTCD_SKIP_RELEASE_TESTS is set"));
    }
    skip
}

fn busy_port(ports: &[u16]) -> Option<u16> {
    ports
        .iter()
        .copied()
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_err())
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------- containers

/// The README's container commands, with the README's container names
/// (etcd0..etcd2) and ports as defaults.
struct Scenario {
    containers: [String; 3],
    client: [u16; 3],
    peer: [u16; 3],
}

impl Scenario {
    fn readme() -> Scenario {
        Scenario {
            containers: ["etcd0".into(), "etcd1".into(), "etcd2".into()],
            client: CLIENT_PORTS,
            peer: PEER_PORTS,
        }
    }

    fn run(&self, i: usize) -> String {
        let [p0, p1, p2] = self.peer;
        format!(
            "docker run -d --name {c} --net=host rustcd:latest /usr/local/bin/etcd --name etcd{i} \
             --initial-advertise-peer-urls http://localhost:{pp} --listen-peer-urls http://localhost:{pp} \
             --advertise-client-urls http://localhost:{cp} --listen-client-urls http://localhost:{cp} \
             --initial-cluster-token etcd-cluster-1 \
             --initial-cluster etcd0=http://localhost:{p0},etcd1=http://localhost:{p1},etcd2=http://localhost:{p2} \
             --initial-cluster-state new",
            c = self.containers[i],
            pp = self.peer[i],
            cp = self.client[i],
        )
    }

    fn put(&self) -> String {
        format!(
            "docker exec {} etcdctl --endpoints=http://localhost:{} put myKey myValue",
            self.containers[0], self.client[0]
        )
    }

    fn get(&self, i: usize) -> String {
        format!(
            "docker exec {} etcdctl --endpoints=http://localhost:{} get myKey",
            self.containers[i], self.client[i]
        )
    }

    fn stop(&self) -> String {
        format!("docker stop {}", self.containers.join(" "))
    }

    fn rm(&self) -> String {
        format!("docker rm {}", self.containers.join(" "))
    }
}

/// README.md with `\`-continued lines joined and blanks collapsed.
fn readme_commands() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    readme
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_in_readme(readme: &str, cmd: &str) {
    let cmd = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.lines().any(|l| l.contains(&cmd)),
        "README.md (Containers) no longer shows the command this test runs:\n  {cmd}"
    );
}

/// Runs one command line (arguments have no spaces or quotes).
fn sh(cmd: &str) -> Output {
    let mut words = cmd.split_whitespace();
    Command::new(words.next().unwrap())
        .args(words)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// Why docker cannot be used here, if it cannot.
fn docker_unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("docker is not installed ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "the docker daemon is unreachable: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Removes the test's containers however the test ends.
struct Containers(Vec<String>);

impl Containers {
    fn remove(&self) {
        let mut args = vec!["rm", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        self.remove();
    }
}

fn container_logs(name: &str) -> String {
    let o = docker(&["logs", "--tail", "40", name]);
    format!(
        "--- docker logs {name} ---\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn container_cluster_as_in_the_readme() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let test = "container_cluster_as_in_the_readme";
    if skip_release_tests(test) {
        return;
    }
    if let Some(why) = docker_unavailable() {
        note(&format!("SKIPPED {test}: {why}"));
        return;
    }
    let readme = readme_commands();
    let doc = Scenario::readme();
    for cmd in [
        "scripts/build-image.sh".to_string(),
        doc.run(0),
        doc.run(1),
        doc.run(2),
        doc.put(),
        doc.get(1),
        doc.stop(),
        doc.rm(),
    ] {
        assert_in_readme(&readme, &cmd);
    }

    // Build the image once (release build of rustcd, reused if current).
    let started = Instant::now();
    note(&format!(
        "{test}: scripts/build-image.sh (release build of rustcd, may take minutes)"
    ));
    let out = Command::new("scripts/build-image.sh")
        .current_dir(repo_root())
        .env("ETCD_BIN_DIR", etcd_bin_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/build-image.sh failed:\n{}",
        text(&out)
    );
    let size = docker(&["image", "inspect", "-f", "{{.Size}}", "rustcd:latest"]);
    note(&format!(
        "{test}: image rustcd:latest built in {:.0?}, {} bytes",
        started.elapsed(),
        String::from_utf8_lossy(&size.stdout).trim()
    ));

    // The image's etcdctl is rustcdctl (a link to it), and it runs there.
    let o = docker(&["run", "--rm", "rustcd:latest", "rustcdctl", "version"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("etcdctl version: 3.5.1"),
        "rustcdctl in the image:\n{}",
        text(&o)
    );
    let c = docker(&["create", "rustcd:latest"]);
    let id = String::from_utf8_lossy(&c.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("etcdctl");
    let cp = docker(&[
        "cp",
        &format!("{id}:/usr/local/bin/etcdctl"),
        dest.to_str().unwrap(),
    ]);
    docker(&["rm", &id]);
    assert!(cp.status.success(), "docker cp etcdctl:\n{}", text(&cp));
    assert_eq!(
        std::fs::read_link(&dest).ok(),
        Some(PathBuf::from("rustcdctl")),
        "/usr/local/bin/etcdctl in the image must be a link to rustcdctl"
    );

    // The README's ports, or free ones if something listens there.
    let all: Vec<u16> = CLIENT_PORTS.iter().chain(&PEER_PORTS).copied().collect();
    let (client, peer) = match busy_port(&all) {
        None => (CLIENT_PORTS, PEER_PORTS),
        Some(p) => {
            note(&format!("{test}: port {p} is in use, using free ports"));
            (
                [free_port(), free_port(), free_port()],
                [free_port(), free_port(), free_port()],
            )
        }
    };
    // Unique container names, so the test never touches a user's etcd0.
    let prefix = format!("rustcd-test-{}-", std::process::id());
    let s = Scenario {
        containers: [0, 1, 2].map(|i| format!("{prefix}etcd{i}")),
        client,
        peer,
    };
    let guard = Containers(s.containers.to_vec());
    guard.remove(); // leftovers of an earlier run with the same pid

    for i in 0..3 {
        let o = sh(&s.run(i));
        assert!(o.status.success(), "{}:\n{}", s.run(i), text(&o));
    }

    // Wait until every member answers a linearizable read.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..3 {
        let c = &s.containers[i];
        let ep = format!("--endpoints=http://localhost:{}", s.client[i]);
        loop {
            let o = docker(&[
                "exec",
                c,
                "etcdctl",
                &ep,
                "--dial-timeout=1s",
                "get",
                "ready-probe",
            ]);
            if o.status.success() {
                break;
            }
            let running = docker(&["inspect", "-f", "{{.State.Running}}", c]);
            if Instant::now() > deadline
                || String::from_utf8_lossy(&running.stdout).trim() != "true"
            {
                panic!("{c} not ready:\n{}\n{}", text(&o), container_logs(c));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let o = sh(&s.put());
    assert!(o.status.success(), "{}:\n{}", s.put(), text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK\n", "{}", s.put());
    for i in 0..3 {
        let o = sh(&s.get(i));
        assert!(o.status.success(), "{}:\n{}", s.get(i), text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "myKey\nmyValue\n",
            "{}",
            s.get(i)
        );
    }

    // No --data-dir: each member writes <name>.etcd in the image's working dir.
    for i in 0..3 {
        let o = docker(&["diff", &s.containers[i]]);
        let want = format!("/var/lib/etcd/etcd{i}.etcd");
        assert!(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.ends_with(&want)),
            "{want} not in the container's changes:\n{}",
            text(&o)
        );
    }

    let started = Instant::now();
    let o = sh(&s.stop());
    assert!(o.status.success(), "{}:\n{}", s.stop(), text(&o));
    // Exit code 0: each member stopped on SIGTERM (as PID 1), not killed
    // after docker's 10 s grace period.
    for c in &s.containers {
        let o = docker(&["inspect", "-f", "{{.State.ExitCode}}", c]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "0",
            "{c} did not stop cleanly on docker stop\n{}",
            container_logs(c)
        );
    }
    note(&format!(
        "{test}: docker stop took {:.1?}",
        started.elapsed()
    ));
    let o = sh(&s.rm());
    assert!(o.status.success(), "{}:\n{}", s.rm(), text(&o));

    let filter = format!("name={prefix}");
    let o = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "",
        "containers left after docker stop/rm"
    );
    let ports: Vec<u16> = s.client.iter().chain(&s.peer).copied().collect();
    assert_eq!(
        busy_port(&ports),
        None,
        "a port is still in use after docker rm"
    );
    drop(guard);
}

// --------------------------------------------------------------- local script

/// `scripts/local-cluster.sh` in its own process group, as in a terminal.
struct Script {
    child: Child,
    log: PathBuf,
}

impl Script {
    fn start(data: &Path, log: PathBuf) -> Script {
        let f = File::create(&log).unwrap();
        let mut cmd = Command::new("scripts/local-cluster.sh");
        cmd.arg(data)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .process_group(0);
        // A shell started with SIGINT ignored cannot trap it; give the
        // script the default disposition, as a terminal does.
        unsafe {
            cmd.pre_exec(|| {
                extern "C" {
                    fn signal(signum: i32, handler: usize) -> usize;
                }
                const SIGINT: i32 = 2;
                const SIG_DFL: usize = 0;
                signal(SIGINT, SIG_DFL);
                Ok(())
            });
        }
        Script {
            child: cmd.spawn().expect("start scripts/local-cluster.sh"),
            log,
        }
    }

    fn pgid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the banner, then for every member to answer a read.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(900); // may build
        while !self.log().contains("rustcd cluster up") {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("local-cluster.sh exited ({st}):\n{}", tail(&self.log(), 40));
            }
            assert!(
                Instant::now() < deadline,
                "no banner:\n{}",
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in CLIENT_PORTS {
            let ep = format!("http://localhost:{port}");
            loop {
                if etcdctl(&ep, &["get", "--dial-timeout=1s", "ready-probe"]).ok {
                    break;
                }
                if let Some(st) = self.child.try_wait().unwrap() {
                    panic!("local-cluster.sh exited ({st}):\n{}", tail(&self.log(), 40));
                }
                assert!(
                    Instant::now() < deadline,
                    "{ep} not ready:\n{}",
                    tail(&self.log(), 40)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn signal(&self, target: &str) {
        let st = Command::new("kill")
            .args(["-INT", "--", target])
            .status()
            .unwrap();
        assert!(st.success(), "kill -INT {target}");
    }

    /// Waits for the script to exit; returns its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                panic!(
                    "local-cluster.sh still running {timeout:?} after SIGINT:\n{}",
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Processes of the script's process group that are still alive
    /// (zombies waiting for init excluded).
    fn survivors(&self) -> Vec<String> {
        let mut alive = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 2 && f[2] == self.pgid().to_string() && f[0] != "Z" {
                alive.push(stat[..stat.rfind(')').unwrap() + 1].to_string());
            }
        }
        alive
    }

    fn assert_nothing_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.survivors();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still running after the script exited: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let ports: Vec<u16> = CLIENT_PORTS.iter().chain(&PEER_PORTS).copied().collect();
        assert_eq!(busy_port(&ports), None, "a port is still in use");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() || !self.survivors().is_empty() {
            let g = format!("-{}", self.pgid());
            let _ = Command::new("kill").args(["-TERM", "--", &g]).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = Command::new("kill").args(["-KILL", "--", &g]).status();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn local_cluster_script() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let test = "local_cluster_script";
    if skip_release_tests(test) {
        return;
    }
    let all: Vec<u16> = CLIENT_PORTS.iter().chain(&PEER_PORTS).copied().collect();
    if let Some(p) = busy_port(&all) {
        note(&format!("SKIPPED {test}: port {p} is in use"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Start, use as in the README, Ctrl-C (SIGINT to the process group).
    let started = Instant::now();
    let mut s = Script::start(&data, dir.path().join("run1.log"));
    s.wait_ready();
    note(&format!(
        "{test}: cluster up after {:.1?}",
        started.elapsed()
    ));
    let r = etcdctl("http://localhost:2360", &["put", "myKey", "myValue"]);
    assert_eq!(r.stdout, "OK\n", "{r:?}");
    let r = etcdctl("http://localhost:2361", &["get", "myKey"]);
    assert_eq!(r.stdout, "myKey\nmyValue\n", "{r:?}");
    let r = etcdctl("http://localhost:2360", &["member", "list"]);
    for name in ["etcd0", "etcd1", "etcd2"] {
        assert!(r.stdout.contains(&format!(", {name}, ")), "{r:?}");
    }
    s.signal(&format!("-{}", s.pgid()));
    let code = s.wait_exit(Duration::from_secs(30));
    let log = s.log();
    assert_eq!(
        code,
        Some(0),
        "exit status after Ctrl-C:\n{}",
        tail(&log, 40)
    );
    assert!(log.contains("all members stopped"), "{}", tail(&log, 40));
    for i in 0..3 {
        let stopped = format!("[etcd{i}]");
        assert!(
            log.lines()
                .any(|l| l.starts_with(&stopped) && l.contains("member stopped")),
            "etcd{i} did not log a clean stop:\n{}",
            tail(&log, 40)
        );
    }
    s.assert_nothing_left();
    drop(s);

    // Again on the same data: the key is still there. SIGINT to the script
    // alone (kill -INT <pid>) stops the members too.
    let mut s = Script::start(&data, dir.path().join("run2.log"));
    s.wait_ready();
    let r = etcdctl("http://localhost:2362", &["get", "myKey"]);
    assert_eq!(r.stdout, "myKey\nmyValue\n", "{r:?}");
    s.signal(&s.pgid().to_string());
    let code = s.wait_exit(Duration::from_secs(30));
    let log = s.log();
    assert_eq!(
        code,
        Some(0),
        "exit status after SIGINT:\n{}",
        tail(&log, 40)
    );
    for i in 0..3 {
        let p = format!("[etcd{i}]");
        assert!(
            log.lines()
                .any(|l| l.starts_with(&p) && l.contains("member stopped")),
            "etcd{i} did not log a clean stop:\n{}",
            tail(&log, 40)
        );
    }
    s.assert_nothing_left();
}
