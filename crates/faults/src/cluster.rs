//! Real rustcd member processes, and the faults done to them: kill -9,
//! SIGSTOP/SIGCONT, network partitions between network namespaces,
//! membership changes, a data dir on a small tmpfs.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::cluster_client::ClusterClient;
use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rustcd_proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberRemoveRequest, RangeRequest, StatusRequest,
    StatusResponse,
};
use tonic::transport::{Channel, Endpoint};

/// The workspace root (this crate is `crates/faults`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The `rustcd` binary of this workspace, built once per test process with
/// the same profile as the tests (`cargo build --bin rustcd`).
pub fn rustcd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let release = !cfg!(debug_assertions);
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root).args(["build", "--bin", "rustcd"]);
        if release {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build --bin rustcd");
        assert!(
            out.status.success(),
            "cargo build --bin rustcd failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let target = if target.is_relative() {
            root.join(target)
        } else {
            target
        };
        let bin = target
            .join(if release { "release" } else { "debug" })
            .join("rustcd");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// Nanoseconds since the first call in this process: the history's clock.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A loopback port nobody listens on, from a block chosen by the process id
/// below the ephemeral range, each handed out once.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 30_000 + (std::process::id() % 300) * 80;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + n % 8_000;
        let port = if port >= 56_000 { port - 26_000 } else { port } as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A lazily connecting channel to a client URL.
pub fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .expect("client url")
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy()
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

// ------------------------------------------------------------------ netns

/// Which packet filter drops the partitioned traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Firewall {
    Iptables,
    Nft,
}

/// Network namespaces for one cluster: a hub namespace holding a bridge, and
/// one namespace per member with a veth into the bridge and the address
/// `10.231.0.<i+1>/24`. These addresses exist only inside these namespaces;
/// the host namespace is not touched.
pub struct Netns {
    hub: String,
    members: Vec<String>,
    firewall: Firewall,
}

const SUBNET: &str = "10.231.0";

impl Netns {
    /// Whether namespaces, veths, a bridge and a packet filter work here;
    /// `Err` says why not.
    pub fn probe() -> Result<(), String> {
        static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
        PROBE
            .get_or_init(|| match Netns::create(2) {
                Ok(n) => {
                    drop(n);
                    Ok(())
                }
                Err(e) => Err(e),
            })
            .clone()
    }

    fn create(n: usize) -> Result<Netns, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Self::collect_garbage();
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rcdf-{}-{k}", std::process::id());
        let firewall = if run("iptables", &["--version"]).is_ok() {
            Firewall::Iptables
        } else if run("nft", &["--version"]).is_ok() {
            Firewall::Nft
        } else {
            return Err("neither iptables nor nft is installed".into());
        };
        let mut net = Netns {
            hub: format!("{prefix}-hub"),
            members: Vec::new(),
            firewall,
        };
        run("ip", &["netns", "add", &net.hub])?;
        run(
            "ip",
            &["-n", &net.hub, "link", "add", "br0", "type", "bridge"],
        )?;
        run("ip", &["-n", &net.hub, "link", "set", "br0", "up"])?;
        run("ip", &["-n", &net.hub, "link", "set", "lo", "up"])?;
        for i in 0..n {
            let ns = format!("{prefix}-m{i}");
            run("ip", &["netns", "add", &ns])?;
            net.members.push(ns.clone());
            let v = format!("v{i}");
            run(
                "ip",
                &[
                    "-n", &net.hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            run("ip", &["-n", &net.hub, "link", "set", &v, "master", "br0"])?;
            run("ip", &["-n", &net.hub, "link", "set", &v, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            let addr = format!("{SUBNET}.{}/24", i + 1);
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            match firewall {
                Firewall::Iptables => {
                    run("ip", &["netns", "exec", &ns, "iptables", "-w", "-S"])?;
                }
                Firewall::Nft => {
                    let script = "add table inet rcdf\n\
                        add chain inet rcdf in { type filter hook input priority 0 ; }\n\
                        add chain inet rcdf out { type filter hook output priority 0 ; }\n";
                    nft(&ns, script)?;
                }
            }
        }
        // The bridge forwards: check that member 0 reaches member 1.
        if n >= 2 {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &net.members[0],
                    "ping",
                    "-c1",
                    "-W2",
                    &format!("{SUBNET}.2"),
                ],
            )
            .or_else(|e| {
                // No ping binary is not a failure of the network.
                if e.contains("No such file") {
                    Ok(String::new())
                } else {
                    Err(e)
                }
            })?;
        }
        Ok(net)
    }

    /// Deletes namespaces left by test processes that no longer exist.
    fn collect_garbage() {
        let Ok(list) = run("ip", &["netns", "list"]) else {
            return;
        };
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix("rcdf-") else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }

    pub fn ip(i: usize) -> String {
        format!("{SUBNET}.{}", i + 1)
    }

    /// Drops packets arriving at member `at` from member `from`.
    fn drop_from(&self, at: usize, from: usize) {
        let ns = &self.members[at];
        let ip = Self::ip(from);
        let r = match self.firewall {
            Firewall::Iptables => run(
                "ip",
                &[
                    "netns", "exec", ns, "iptables", "-w", "-A", "INPUT", "-s", &ip, "-j", "DROP",
                ],
            ),
            Firewall::Nft => nft(ns, &format!("add rule inet rcdf in ip saddr {ip} drop\n")),
        };
        r.expect("install a drop rule");
    }

    /// Drops packets member `at` sends to member `to`.
    fn drop_to(&self, at: usize, to: usize) {
        let ns = &self.members[at];
        let ip = Self::ip(to);
        let r = match self.firewall {
            Firewall::Iptables => run(
                "ip",
                &[
                    "netns", "exec", ns, "iptables", "-w", "-A", "OUTPUT", "-d", &ip, "-j", "DROP",
                ],
            ),
            Firewall::Nft => nft(ns, &format!("add rule inet rcdf out ip daddr {ip} drop\n")),
        };
        r.expect("install a drop rule");
    }

    fn heal(&self) {
        for ns in &self.members {
            let r = match self.firewall {
                Firewall::Iptables => run("ip", &["netns", "exec", ns, "iptables", "-w", "-F"]),
                Firewall::Nft => nft(ns, "flush chain inet rcdf in\nflush chain inet rcdf out\n"),
            };
            r.expect("remove the drop rules");
        }
    }
}

fn nft(ns: &str, script: &str) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::new())
    } else {
        Err(format!("nft: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.members.iter().chain([&self.hub]) {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

// ------------------------------------------------------------------ tmpfs

/// A small tmpfs mounted on a directory, unmounted on drop.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size_mib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m"),
                "tmpfs",
                &path.display().to_string(),
            ],
        )?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Bytes still free.
    pub fn available(&self) -> u64 {
        run(
            "df",
            &["--output=avail", "-B1", &self.path.display().to_string()],
        )
        .ok()
        .and_then(|s| s.lines().nth(1).and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0)
    }

    /// Writes a filler file until the file system is full; returns its path.
    pub fn fill(&self) -> PathBuf {
        let p = self.path.join("filler");
        let mut f = std::fs::File::create(&p).expect("create filler");
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        for _ in 0..64 {
            if f.write_all(&[0x5a; 512]).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = self.path.display().to_string();
        if run("umount", &[&p]).is_err() {
            let _ = run("umount", &["-l", &p]);
        }
    }
}

// ------------------------------------------------------------------ members

/// One rustcd process.
pub struct Member {
    pub name: String,
    /// The URL the test's clients dial (host loopback; a relay for members in
    /// a namespace).
    pub client_url: String,
    /// The URL the members reach each other on.
    pub peer_url: String,
    pub data_dir: PathBuf,
    /// The member's namespace, when the cluster runs in namespaces.
    pub netns: Option<String>,
    pub log: PathBuf,
    /// Set once removed from the cluster.
    pub removed: bool,
    /// The member id, once asked.
    id: OnceLock<u64>,
    args: Vec<String>,
    child: Option<Child>,
    relay: Option<Child>,
    paused: bool,
}

impl Member {
    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("member log");
        let _ = writeln!(log, "=== faults harness: starting {} ===", self.name);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(rustcd_bin());
                c
            }
            None => Command::new(rustcd_bin()),
        };
        let child = cmd
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rustcd");
        self.child = Some(child);
        self.paused = false;
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The exit code, if the process has exited by itself.
    pub fn exit_status(&mut self) -> Option<Option<i32>> {
        let st = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(st.code())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let t = self.log_text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        for c in [self.child.take(), self.relay.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct Spec {
    pub members: usize,
    /// Run each member in its own network namespace (needs `relay`).
    pub netns: bool,
    /// The `faults-relay` binary (`env!("CARGO_BIN_EXE_faults-relay")`).
    pub relay: Option<PathBuf>,
    /// Flags for every member, after the cluster flags.
    pub args: Vec<String>,
    /// Data dirs to use instead of `<tmp>/<name>.etcd`, by member index.
    pub data_dirs: HashMap<usize, PathBuf>,
}

impl Spec {
    /// `n` members on loopback, elections faster than etcd's defaults
    /// (heartbeat 50 ms, election timeout 500 ms).
    pub fn new(n: usize) -> Spec {
        Spec {
            members: n,
            netns: false,
            relay: None,
            args: fast_election(),
            data_dirs: HashMap::new(),
        }
    }

    pub fn in_netns(mut self, relay: &str) -> Spec {
        self.netns = true;
        self.relay = Some(PathBuf::from(relay));
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Spec {
        self.args.push(flag.into());
        self.args.push(value.into());
        self
    }
}

pub fn fast_election() -> Vec<String> {
    ["--heartbeat-interval", "50", "--election-timeout", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A running cluster. Dropping it kills every process and removes the
/// namespaces; its directory is kept if the test panicked.
pub struct Cluster {
    pub members: Vec<Member>,
    pub dir: Option<tempfile::TempDir>,
    net: Option<Netns>,
    extra_args: Vec<String>,
    token: String,
}

impl Cluster {
    /// Starts the members and waits until each answers a linearizable read.
    /// `Err` (only for namespaces) says why the cluster cannot be built here.
    pub async fn start(spec: Spec) -> Result<Cluster, String> {
        let _ = rustcd_bin();
        let dir = tempfile::Builder::new()
            .prefix("rustcd-faults-")
            .tempdir()
            .expect("temp dir");
        let net = if spec.netns {
            Netns::probe()?;
            Some(Netns::create(spec.members)?)
        } else {
            None
        };
        let mut peers = Vec::new();
        let mut clients = Vec::new();
        for i in 0..spec.members {
            if net.is_some() {
                let ip = Netns::ip(i);
                peers.push(format!("http://{ip}:2380"));
                clients.push(format!("http://{ip}:2379"));
            } else {
                peers.push(format!("http://127.0.0.1:{}", free_port()));
                clients.push(format!("http://127.0.0.1:{}", free_port()));
            }
        }
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={p}"))
            .collect();
        let token = format!("faults-{}", std::process::id());
        let mut c = Cluster {
            members: Vec::new(),
            dir: Some(dir),
            net,
            extra_args: spec.args.clone(),
            token,
        };
        for i in 0..spec.members {
            let name = format!("m{i}");
            let data_dir = spec
                .data_dirs
                .get(&i)
                .cloned()
                .unwrap_or_else(|| c.path().join(format!("{name}.etcd")));
            let (listen_client, test_url, relay, ns) = match &c.net {
                Some(net) => {
                    let ns = net.members[i].clone();
                    let l = TcpListener::bind("127.0.0.1:0").expect("relay port");
                    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
                    let relay = Command::new("ip")
                        .args(["netns", "exec", &ns])
                        .arg(spec.relay.as_ref().expect("Spec.relay for netns"))
                        .arg("127.0.0.1:2379")
                        .arg(std::process::id().to_string())
                        .stdin(Stdio::from(OwnedFd::from(l)))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start faults-relay");
                    (
                        format!("http://127.0.0.1:2379,{}", clients[i]),
                        url,
                        Some(relay),
                        Some(ns),
                    )
                }
                None => (clients[i].clone(), clients[i].clone(), None, None),
            };
            let args = c.member_args(
                &name,
                &data_dir,
                &listen_client,
                &clients[i],
                &peers[i],
                &initial.join(","),
                "new",
            );
            let mut m = Member {
                log: c.path().join(format!("{name}.log")),
                name,
                client_url: test_url,
                peer_url: peers[i].clone(),
                data_dir,
                netns: ns,
                removed: false,
                id: OnceLock::new(),
                args,
                child: None,
                relay,
                paused: false,
            };
            m.spawn();
            c.members.push(m);
        }
        c.wait_ready(Duration::from_secs(30)).await?;
        Ok(c)
    }

    #[allow(clippy::too_many_arguments)]
    fn member_args(
        &self,
        name: &str,
        data_dir: &Path,
        listen_client: &str,
        advertise_client: &str,
        peer: &str,
        initial: &str,
        state: &str,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &data_dir.display().to_string(),
            "--listen-client-urls",
            listen_client,
            "--advertise-client-urls",
            advertise_client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            state,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Client URLs of the members not removed.
    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| !m.removed)
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// Indexes of members not removed.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| !self.members[i].removed)
            .collect()
    }

    /// Waits until every running member answers a linearizable read.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for i in self.live() {
            if self.members[i].child.is_none() {
                continue;
            }
            let mut kv = KvClient::new(channel(&self.members[i].client_url));
            loop {
                let r = tokio::time::timeout(
                    Duration::from_secs(2),
                    kv.range(RangeRequest {
                        key: b"/faults-ready-probe".to_vec(),
                        ..Default::default()
                    }),
                )
                .await;
                let exited = !self.members[i].is_running();
                match r {
                    Ok(Ok(_)) => break,
                    _ if exited || Instant::now() > deadline => {
                        let running = self.members[i].is_running();
                        return Err(format!(
                            "{} (running: {running}) does not answer a linearizable read (waited up to {timeout:?}): {r:?}\n{}",
                            self.members[i].name,
                            self.logs(40)
                        ));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// Maintenance.Status of member `i`, within `timeout`.
    pub async fn status(&self, i: usize, timeout: Duration) -> Option<StatusResponse> {
        let mut m = MaintenanceClient::new(channel(&self.members[i].client_url));
        match tokio::time::timeout(timeout, m.status(StatusRequest {})).await {
            Ok(Ok(r)) => Some(r.into_inner()),
            _ => None,
        }
    }

    /// The member that says it leads, at the highest term; `None` if none
    /// answers.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.live() {
            if self.members[i].child.is_none() || self.members[i].paused {
                continue;
            }
            if let Some(st) = self.status(i, Duration::from_millis(500)).await {
                let me = st.header.as_ref().map_or(0, |h| h.member_id);
                if st.leader != 0 && st.leader == me && best.is_none_or(|(t, _)| st.raft_term > t) {
                    best = Some((st.raft_term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The leader as the members in `group` see it: one of them that says
    /// it leads, at the highest term.
    pub async fn leader_among(&self, group: &[usize]) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for &i in group {
            if let Some(st) = self.status(i, Duration::from_millis(500)).await {
                let me = st.header.as_ref().map_or(0, |h| h.member_id);
                if st.leader != 0 && st.leader == me && best.is_none_or(|(t, _)| st.raft_term > t) {
                    best = Some((st.raft_term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The live members, the current leader (if one answers) first: a
    /// follower forwards a proposal to the leader it knows, and right after
    /// a leader change that may be a stopped member, so the request waits out
    /// the server's request timeout ("etcdserver: request timed out").
    async fn leader_first(&self) -> Vec<usize> {
        let mut live = self.live();
        if let Some(l) = self.wait_leader(Duration::from_secs(5)).await {
            if let Some(p) = live.iter().position(|&i| i == l) {
                live.swap(0, p);
            }
        }
        live
    }

    /// Waits up to `timeout` for a leader.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The member id of `i` (from its Status header, asked once).
    pub async fn member_id(&self, i: usize) -> Option<u64> {
        if let Some(id) = self.members[i].id.get() {
            return Some(*id);
        }
        let id = self
            .status(i, Duration::from_secs(2))
            .await
            .and_then(|s| s.header.map(|h| h.member_id))?;
        Some(*self.members[i].id.get_or_init(|| id))
    }

    // -------------------------------------------------------------- faults

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.paused = false;
    }

    /// Starts a stopped member again on its data dir.
    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "{} is still running", m.name);
        m.spawn();
    }

    pub fn is_up(&mut self, i: usize) -> bool {
        self.members[i].is_running()
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) {
        if let Some(pid) = self.members[i].pid() {
            signal(pid, "STOP");
            self.members[i].paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        if let Some(pid) = self.members[i].pid() {
            signal(pid, "CONT");
        }
        self.members[i].paused = false;
    }

    pub fn net(&self) -> Option<&Netns> {
        self.net.as_ref()
    }

    /// Cuts every link between members in different groups (both ways).
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let net = self.net.as_ref().expect("partitions need netns");
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for a in 0..net.members.len() {
            for b in 0..net.members.len() {
                if a != b && group_of(a) != group_of(b) {
                    net.drop_from(a, b);
                    net.drop_to(a, b);
                }
            }
        }
    }

    /// Cuts the link between `a` and `b` only (both ways); e.g. a bridge
    /// topology is cutting one pair of a triangle.
    pub fn cut(&self, a: usize, b: usize) {
        let net = self.net.as_ref().expect("partitions need netns");
        net.drop_from(a, b);
        net.drop_to(a, b);
        net.drop_from(b, a);
        net.drop_to(b, a);
    }

    /// Drops the packets `from` sends to `to`, one way only (over TCP the
    /// connection soon breaks both ways, but who hears whom first differs).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let net = self.net.as_ref().expect("partitions need netns");
        net.drop_to(from, to);
        net.drop_from(to, from);
    }

    /// Removes every drop rule.
    pub fn heal(&self) {
        if let Some(net) = &self.net {
            net.heal();
        }
    }

    /// Resumes paused members, restarts dead ones (not removed ones), heals
    /// the network and waits for every member to answer.
    pub async fn heal_all(&mut self) -> Result<(), String> {
        self.heal();
        for i in self.live() {
            if self.members[i].paused {
                self.resume(i);
            }
            if !self.members[i].is_running() {
                self.members[i].child = None;
                self.restart(i);
            }
        }
        self.wait_ready(Duration::from_secs(30)).await
    }

    // ---------------------------------------------------------- membership

    /// Cluster.MemberRemove of `i`, asked of another member; then waits up
    /// to `exit_within` for the removed process to exit by itself (etcd's
    /// removed member shuts down). Returns `Ok(Some(exit code))`, or
    /// `Ok(None)` if it was still running (it is then left running: see
    /// [`Cluster::kill9`]).
    pub async fn remove_member(
        &mut self,
        i: usize,
        exit_within: Duration,
    ) -> Result<Option<Option<i32>>, String> {
        let id = self
            .member_id(i)
            .await
            .ok_or_else(|| format!("{} does not answer Status", self.members[i].name))?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(45);
        let mut last = String::new();
        'ask: loop {
            if Instant::now() > deadline {
                return Err(format!("MemberRemove did not succeed: {last}"));
            }
            for j in self.leader_first().await {
                if j == i {
                    continue;
                }
                let mut c = ClusterClient::new(channel(&self.members[j].client_url));
                match tokio::time::timeout(
                    Duration::from_secs(8),
                    c.member_remove(MemberRemoveRequest { id }),
                )
                .await
                {
                    Ok(Ok(_)) => break 'ask,
                    Ok(Err(s)) if s.message().contains("member not found") => break 'ask,
                    Ok(Err(s)) => last = format!("{s:?}"),
                    Err(_) => last = "timed out".into(),
                }
                eprintln!(
                    "faults: MemberRemove via {} failed after {:?}: {last}",
                    self.members[j].name,
                    started.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.members[i].removed = true;
        let deadline = Instant::now() + exit_within;
        loop {
            if let Some(code) = self.members[i].exit_status() {
                return Ok(Some(code));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cluster.MemberAdd of a new member on fresh loopback ports, then starts
    /// it with an empty data dir and `--initial-cluster-state existing`.
    /// Returns its index.
    pub async fn add_member(&mut self) -> Result<usize, String> {
        assert!(self.net.is_none(), "membership tests run on loopback");
        let idx = self.members.len();
        let name = format!("m{idx}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client = format!("http://127.0.0.1:{}", free_port());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(45);
        let mut last = String::new();
        let members = 'ask: loop {
            if Instant::now() > deadline {
                return Err(format!("MemberAdd did not succeed: {last}"));
            }
            for j in self.leader_first().await {
                let mut c = ClusterClient::new(channel(&self.members[j].client_url));
                match tokio::time::timeout(
                    Duration::from_secs(8),
                    c.member_add(MemberAddRequest {
                        peer_ur_ls: vec![peer.clone()],
                        is_learner: false,
                    }),
                )
                .await
                {
                    Ok(Ok(r)) => break 'ask r.into_inner().members,
                    Ok(Err(s)) if s.message().contains("Peer URLs already exists") => {
                        // An earlier attempt that timed out went through.
                        let mut c = ClusterClient::new(channel(&self.members[j].client_url));
                        if let Ok(Ok(r)) = tokio::time::timeout(
                            Duration::from_secs(5),
                            c.member_list(MemberListRequest { linearizable: true }),
                        )
                        .await
                        {
                            break 'ask r.into_inner().members;
                        }
                    }
                    Ok(Err(s)) => last = format!("{s:?}"),
                    Err(_) => last = "timed out".into(),
                }
                // Captured by the test harness; shown only when the test fails.
                eprintln!(
                    "faults: MemberAdd via {} failed after {:?}: {last}",
                    self.members[j].name,
                    started.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        // --initial-cluster: every member by name (the new one has none yet).
        let mut initial = Vec::new();
        for m in &members {
            for u in &m.peer_ur_ls {
                let n = if *u == peer {
                    name.clone()
                } else {
                    self.members
                        .iter()
                        .find(|x| x.peer_url == *u)
                        .map(|x| x.name.clone())
                        .unwrap_or_else(|| m.name.clone())
                };
                initial.push(format!("{n}={u}"));
            }
        }
        let data_dir = self.path().join(format!("{name}.etcd"));
        let args = self.member_args(
            &name,
            &data_dir,
            &client,
            &client,
            &peer,
            &initial.join(","),
            "existing",
        );
        let mut m = Member {
            log: self.path().join(format!("{name}.log")),
            name,
            client_url: client,
            peer_url: peer,
            data_dir,
            netns: None,
            removed: false,
            id: OnceLock::new(),
            args,
            child: None,
            relay: None,
            paused: false,
        };
        m.spawn();
        self.members.push(m);
        Ok(idx)
    }

    /// The last `n` lines of every member's log.
    pub fn logs(&self, n: usize) -> String {
        let mut s = String::new();
        for m in &self.members {
            s.push_str(&format!(
                "----- {} ({}) last {n} log lines -----\n{}\n",
                m.name,
                m.log.display(),
                m.log_tail(n)
            ));
        }
        s
    }

    /// Keeps the cluster's directory (logs, data dirs) after the test, and
    /// returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        match self.dir.take() {
            Some(d) => d.keep(),
            None => PathBuf::new(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(mut c) = m.relay.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            if let Some(d) = self.dir.take() {
                eprintln!(
                    "faults: kept the cluster's logs and data in {}",
                    d.keep().display()
                );
            }
        }
        self.net = None;
    }
}
