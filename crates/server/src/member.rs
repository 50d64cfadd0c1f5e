//! A running member: bootstrap or restart from the data dir, start Raft,
//! serve peers and clients, stop cleanly.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use protobuf::Message as _;
use rustcd_mvcc::Store;
use rustcd_proto::etcdserverpb::cluster_server::ClusterServer;
use rustcd_proto::etcdserverpb::kv_server::KvServer;
use rustcd_proto::etcdserverpb::lease_server::LeaseServer;
use rustcd_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use rustcd_proto::etcdserverpb::watch_server::WatchServer;
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use rustcd_proto::rustcdpb::raft_transport_client::RaftTransportClient;
use rustcd_proto::rustcdpb::raft_transport_server::RaftTransportServer;
use rustcd_proto::rustcdpb::PublishAttributes;
use rustcd_proto::rustcdpb::{MembersRequest, MembersResponse};
use rustcd_raft::eraftpb::ConfState;
use rustcd_raft::{Node, NodeConfig, PeerDirectory, PeerService, Transport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use crate::alarm::Alarms;
use crate::apply::{
    load_membership, load_removed, Applier, StoreSnapshots, META_CLUSTER_ID, META_CONF_STATE,
    META_MEMBERS,
};
use crate::compactor::run_compactor;
use crate::config::{ClusterState, ServerConfig};
use crate::core::{Core, Shared};
use crate::lease::Lessor;
use crate::membership::{self, Members};
use crate::service::cluster::ClusterService;
use crate::service::kv::KvService;
use crate::service::lease::{run_lessor, LeaseService};
use crate::service::maintenance::MaintenanceService;
use crate::service::watch::WatchService;

/// Why a member could not start. Each names what the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("data dir {path}: {msg}")]
    DataDir { path: PathBuf, msg: String },
    #[error("listen {url}: {source}")]
    Listen { url: String, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(String),
}

/// gRPC framing on top of `--max-request-bytes`, as etcd allows.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Local identity of a member, kept beside (not inside) the replicated db.
#[derive(Clone, Copy)]
struct Identity {
    member_id: u64,
    cluster_id: u64,
}

/// Why a member stopped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The Raft loop hit an error it cannot continue after (see the log).
    Fatal,
    /// A conf change removed this member from the cluster.
    Removed,
}

/// A running member.
pub struct Member {
    core: Arc<Core>,
    node: Node,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Last: dropped after the tasks running on it were stopped.
    _peer_runtime: PeerRuntime,
}

/// Peer traffic (Raft messages in and out) runs on its own small runtime.
/// On the shared one, a flood of client requests (1,000 clients on 2 cores)
/// delayed heartbeats and their responses past the election timeout, and
/// overloaded members kept electing new leaders; on its own thread the OS
/// scheduler gives Raft its share whatever the client load.
struct PeerRuntime(Option<tokio::runtime::Runtime>);

impl PeerRuntime {
    fn start() -> std::io::Result<PeerRuntime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("peer")
            .enable_all()
            .build()?;
        Ok(PeerRuntime(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("peer runtime").handle().clone()
    }
}

impl Drop for PeerRuntime {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside another runtime.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Member {
    /// Opens or bootstraps the data dir, starts Raft and serves peers and clients.
    pub async fn start(cfg: ServerConfig) -> Result<Member, StartError> {
        let member_dir = cfg.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        let wal_dir = cfg
            .wal_dir
            .clone()
            .unwrap_or_else(|| member_dir.join("wal"));
        let db_path = snap_dir.join("db");
        let id_path = member_dir.join("identity");
        let data_err = |path: &Path, msg: String| StartError::DataDir {
            path: path.to_path_buf(),
            msg,
        };

        let restart = db_path.exists() || id_path.exists();
        let (store, ident, members, conf_state) = if restart {
            if !id_path.exists() {
                return Err(data_err(
                    &id_path,
                    "missing; the data dir is incomplete or corrupt, refusing to start".into(),
                ));
            }
            if !db_path.exists() {
                return Err(data_err(
                    &db_path,
                    "missing; the data dir is incomplete or corrupt, refusing to start".into(),
                ));
            }
            let ident = read_identity(&id_path).map_err(|m| data_err(&id_path, m))?;
            let store = Store::open(&db_path).map_err(|e| data_err(&db_path, e.to_string()))?;
            let (members, conf_state) =
                load_membership(&store).map_err(|m| data_err(&db_path, m))?;
            tracing::info!(
                data_dir = %cfg.data_dir.display(),
                member_id = %format!("{:x}", ident.member_id),
                cluster_id = %format!("{:x}", ident.cluster_id),
                "restarting member from its data dir; bootstrap flags are ignored"
            );
            (store, ident, members, conf_state)
        } else if cfg.initial_cluster_state == ClusterState::Existing {
            join(&cfg, &snap_dir, &db_path, &id_path).await?
        } else {
            bootstrap(&cfg, &snap_dir, &db_path, &id_path, None)?
        };
        let (applied, applied_term) = store.consistent_index();

        // Listeners first, so a bad URL or a busy port fails before Raft runs.
        let peer_listeners = bind_all(&cfg.listen_peer_urls).await?;
        let client_listeners = bind_all(&cfg.listen_client_urls).await?;

        let peer_runtime = PeerRuntime::start()
            .map_err(|e| StartError::Config(format!("cannot start the peer runtime: {e}")))?;
        let (inbox, inbox_rx) = rustcd_raft::inbox();
        let transport = Transport::new(
            ident.member_id,
            ident.cluster_id,
            peer_runtime.handle(),
            inbox.clone(),
        );
        for m in members.0.values() {
            transport.add_peer(m.id, m.peer_urls.clone());
        }
        let heartbeat = cfg.heartbeat_interval.max(Duration::from_millis(1));
        let election_ticks = (cfg.election_timeout.as_millis() / heartbeat.as_millis()).max(2);
        // etcd's minimum lease TTL: 1.5 election timeouts, rounded up to seconds.
        let min_lease_ttl =
            ((3 * election_ticks / 2) * heartbeat.as_millis()).div_ceil(1000) as i64;
        let lessor = Lessor::recover(&store, min_lease_ttl).map_err(|m| data_err(&db_path, m))?;
        let alarms = Alarms::recover(&store).map_err(|m| data_err(&db_path, m))?;
        let (applied_tx, _) = watch::channel(applied);
        let shared = Arc::new(Shared {
            member_id: ident.member_id,
            cluster_id: ident.cluster_id,
            store: store.clone(),
            waiters: Mutex::new(HashMap::new()),
            applied_tx,
            members: RwLock::new(members),
            transport: transport.clone(),
            watch_hub: Arc::new(crate::watch::WatchHub::new(store.current_revision())),
            lessor,
            alarms,
            removed: watch::channel(false).0,
            removed_ids: RwLock::new(load_removed(&store).map_err(|m| data_err(&db_path, m))?),
        });
        // A peer telling us we were removed (we missed the commit of our own
        // removal) stops this member, as etcd's peers do with 410 Gone.
        let weak = Arc::downgrade(&shared);
        transport.on_removed(move || {
            if let Some(s) = weak.upgrade() {
                s.removed.send_replace(true);
            }
        });
        let node_cfg = NodeConfig {
            id: ident.member_id,
            tick: heartbeat,
            election_ticks: election_ticks as usize,
            pre_vote: cfg.pre_vote,
            snapshot_count: cfg.snapshot_count,
            wal_dir,
            applied,
            applied_term,
            conf_state,
        };
        let node = Node::start(
            node_cfg,
            inbox.clone(),
            inbox_rx,
            Box::new(Applier::new(shared.clone())),
            Arc::new(StoreSnapshots(store.clone())),
            transport,
        )
        .map_err(StartError::Raft)?;
        let core = Arc::new(Core::new(cfg.clone(), shared, node.handle()));

        let (shutdown, _) = watch::channel(false);
        let (ready_tx, ready_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (url, l) in peer_listeners {
            let svc = RaftTransportServer::new(PeerService::new(
                ident.cluster_id,
                inbox.clone(),
                Arc::new(Directory(Arc::downgrade(&core.shared))),
            ))
            .max_decoding_message_size(usize::MAX);
            let router = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc);
            tasks.push(spawn_server(
                &peer_runtime.handle(),
                url,
                "peer",
                router,
                l,
                shutdown.subscribe(),
            ));
        }
        for (url, l) in client_listeners {
            let max = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
            let grpc = tonic::service::Routes::new(
                KvServer::new(KvService::new(core.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX),
            )
            .add_service(
                WatchServer::new(WatchService::new(core.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX),
            )
            .add_service(
                MaintenanceServer::new(MaintenanceService::new(core.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX),
            )
            .add_service(
                ClusterServer::new(ClusterService::new(core.clone()))
                    .max_decoding_message_size(max),
            )
            .add_service(
                LeaseServer::new(LeaseService::new(core.clone())).max_decoding_message_size(max),
            );
            // gRPC and HTTP/1.1 (/health, /version, /metrics) share the port, as in etcd.
            let app = crate::http::routes(core.clone(), grpc.into_axum_router());
            let router = tonic::transport::Server::builder()
                .accept_http1(true)
                .http2_keepalive_interval(Some(Duration::from_secs(7200)))
                .add_routes(tonic::service::Routes::from(app));
            // Like etcd, serve clients only once this member has published
            // itself to the cluster (its client URLs are then known to all);
            // connections made meanwhile wait in the listen backlog.
            let mut ready = ready_rx.clone();
            let mut stop = shutdown.subscribe();
            let task_shutdown = shutdown.subscribe();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    r = ready.wait_for(|r| *r) => if r.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
                let rt = tokio::runtime::Handle::current();
                let _ = spawn_server(&rt, url, "client", router, l, task_shutdown).await;
            }));
        }
        tasks.push(tokio::spawn(publish(
            core.clone(),
            shutdown.subscribe(),
            ready_tx,
        )));
        tasks.push(tokio::spawn(run_lessor(core.clone(), shutdown.subscribe())));
        tasks.push(tokio::spawn(run_compactor(
            core.clone(),
            shutdown.subscribe(),
        )));
        tracing::info!(
            name = %cfg.name,
            member_id = %format!("{:x}", core.shared.member_id),
            cluster_id = %format!("{:x}", core.shared.cluster_id),
            client_urls = ?cfg.listen_client_urls,
            peer_urls = ?cfg.listen_peer_urls,
            "serving"
        );
        Ok(Member {
            core,
            node,
            shutdown,
            tasks,
            _peer_runtime: peer_runtime,
        })
    }

    pub fn member_id(&self) -> u64 {
        self.core.shared.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.core.shared.cluster_id
    }

    /// Resolves if the Raft loop stopped on its own (a fatal error).
    pub async fn failed(&self) -> Stopped {
        let mut removed = self.core.shared.removed.subscribe();
        loop {
            if *removed.borrow_and_update() {
                return Stopped::Removed;
            }
            if !self.node.is_running() {
                return Stopped::Fatal;
            }
            tokio::select! {
                _ = removed.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Stops serving, stops Raft (making applied state durable) and returns.
    pub async fn shutdown(mut self) {
        tracing::info!("stopping member");
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        let mut node = self.node;
        tokio::task::spawn_blocking(move || node.stop()).await.ok();
        tracing::info!("member stopped");
    }
}

/// Writes a new data dir: membership, cluster id and conf state durably in
/// the store, then the identity file (last, so a crash in between leaves a
/// dir that is refused rather than half-bootstrapped).
#[allow(clippy::too_many_arguments)]
fn create_store(
    snap_dir: &Path,
    db_path: &Path,
    id_path: &Path,
    members: &Members,
    ident: Identity,
    conf_state: &ConfState,
    applied: (u64, u64),
    seed: Option<&[u8]>,
) -> Result<Store, StartError> {
    let data_err = |path: &Path, e: &dyn std::fmt::Display| StartError::DataDir {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    fs::create_dir_all(snap_dir).map_err(|e| data_err(snap_dir, &e))?;
    let store = Store::open(db_path).map_err(|e| data_err(db_path, &e))?;
    if let Some(dump) = seed {
        // The saved key space, leases and revisions; the cluster around
        // them is new, so its membership and alarms are replaced below.
        store.restore(dump).map_err(|e| data_err(db_path, &e))?;
    }
    let mut batch = store.begin_batch().map_err(|e| data_err(db_path, &e))?;
    batch
        .delete_meta(crate::alarm::META_ALARMS)
        .map_err(|e| data_err(db_path, &e))?;
    batch
        .put_meta(META_MEMBERS, &members.encode())
        .and_then(|()| batch.put_meta(META_CLUSTER_ID, &ident.cluster_id.to_be_bytes()))
        .and_then(|()| {
            batch.put_meta(
                META_CONF_STATE,
                &conf_state.write_to_bytes().expect("encode conf state"),
            )
        })
        .map_err(|e| data_err(db_path, &e))?;
    if applied.0 > 0 {
        batch.set_consistent_index(applied.0, applied.1);
    }
    batch.commit(true).map_err(|e| data_err(db_path, &e))?;
    write_identity(id_path, ident.member_id, ident.cluster_id)
        .map_err(|e| data_err(id_path, &e))?;
    Ok(store)
}

/// `--initial-cluster-state existing`: ask the other members listed in
/// `--initial-cluster` who is in the cluster, find this member (added with
/// `etcdctl member add`) by its peer URLs, and start with an empty log; the
/// leader sends a snapshot.
async fn join(
    cfg: &ServerConfig,
    snap_dir: &Path,
    db_path: &Path,
    id_path: &Path,
) -> Result<(Store, Identity, Members, ConfState), StartError> {
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    advertised.sort();
    let mut last_err = String::from("no other member listed in --initial-cluster");
    let mut found = None;
    for (_, url) in &cfg.initial_cluster {
        if advertised.contains(url) {
            continue;
        }
        let ch = match tonic::transport::Endpoint::from_shared(url.clone()) {
            Ok(ep) => ep.connect_timeout(Duration::from_secs(2)).connect().await,
            Err(e) => {
                last_err = format!("{url}: {e}");
                continue;
            }
        };
        let mut client = match ch {
            Ok(ch) => RaftTransportClient::new(ch),
            Err(e) => {
                last_err = format!("{url}: {e}");
                continue;
            }
        };
        match client.members(MembersRequest {}).await {
            Ok(r) => {
                found = Some(r.into_inner());
                break;
            }
            Err(e) => last_err = format!("{url}: {}", e.message()),
        }
    }
    let Some(resp) = found else {
        return Err(StartError::Config(format!(
            "could not get the cluster's members from its peers ({last_err})"
        )));
    };
    let members = Members(resp.members.into_iter().map(|m| (m.id, m)).collect());
    let me = members.0.values().find(|m| {
        let mut urls = m.peer_urls.clone();
        urls.sort();
        urls == advertised
    });
    let Some(me) = me else {
        return Err(StartError::Config(format!(
            "no member with peer URLs {} in the cluster; add it first with `etcdctl member add {} --peer-urls={}`",
            advertised.join(","),
            cfg.name,
            advertised.join(",")
        )));
    };
    let ident = Identity {
        member_id: me.id,
        cluster_id: resp.cluster_id,
    };
    let conf_state = ConfState::default();
    let store = create_store(
        snap_dir,
        db_path,
        id_path,
        &members,
        Identity { ..ident },
        &conf_state,
        (0, 0),
        None,
    )?;
    tracing::info!(
        name = %cfg.name,
        member_id = %format!("{:x}", ident.member_id),
        cluster_id = %format!("{:x}", ident.cluster_id),
        "joining an existing cluster"
    );
    Ok((store, ident, members, conf_state))
}

/// `rustcd snapshot restore`: a new data dir for a member of a NEW cluster
/// (from `cfg`'s bootstrap flags) holding the data of a snapshot saved with
/// `etcdctl snapshot save`. The file's SHA-256 is checked first.
pub fn restore_snapshot(file: &Path, cfg: &ServerConfig) -> Result<(), StartError> {
    use sha2::Digest;
    let bad = |msg: String| StartError::DataDir {
        path: file.to_path_buf(),
        msg,
    };
    if cfg.data_dir.exists() {
        return Err(StartError::Config(format!(
            "data-dir {:?} exists",
            cfg.data_dir.display().to_string()
        )));
    }
    let data = fs::read(file).map_err(|e| bad(e.to_string()))?;
    if data.len() < 32 || (data.len() - 32) % 512 != 0 {
        return Err(bad("not a snapshot file (sha256 checksum not found)".into()));
    }
    let (body, sum) = data.split_at(data.len() - 32);
    if sha2::Sha256::digest(body).as_slice() != sum {
        return Err(bad(
            "snapshot file is corrupt: sha256 checksum mismatch".into()
        ));
    }
    // The dump ends itself; the zero padding after it is allowed.
    let dump = body;
    let member_dir = cfg.data_dir.join("member");
    bootstrap(
        cfg,
        &member_dir.join("snap"),
        &member_dir.join("snap").join("db"),
        &member_dir.join("identity"),
        Some(dump),
    )?;
    Ok(())
}

/// A fresh data dir: compute ids as etcd does, write the initial membership
/// and conf state durably, then the identity file.
fn bootstrap(
    cfg: &ServerConfig,
    snap_dir: &Path,
    db_path: &Path,
    id_path: &Path,
    seed: Option<&[u8]>,
) -> Result<(Store, Identity, Members, ConfState), StartError> {
    let members = Members::from_initial_cluster(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let Some(me) = members.0.values().find(|m| m.name == cfg.name) else {
        return Err(StartError::Config(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        )));
    };
    let mut mine = me.peer_urls.clone();
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    mine.sort();
    advertised.sort();
    if mine != advertised {
        return Err(StartError::Config(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (\"{}\" != \"{}\")",
            cfg.name,
            mine.join(","),
            advertised.join(","),
            mine.join(","),
            advertised.join(","),
        )));
    }
    let member_id = me.id;
    let ids = members.ids();
    let cluster_id = membership::cluster_id(&ids);
    let conf_state = ConfState {
        voters: ids,
        ..Default::default()
    };

    // The initial configuration sits in a snapshot at index 1, term 1, not
    // in the log: a member added later has an empty log, so the leader must
    // send it a snapshot, which carries the configuration.
    let store = create_store(
        snap_dir,
        db_path,
        id_path,
        &members,
        Identity {
            member_id,
            cluster_id,
        },
        &conf_state,
        (1, 1),
        seed,
    )?;
    tracing::info!(
        name = %cfg.name,
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{cluster_id:x}"),
        members = members.0.len(),
        "bootstrapped a new cluster member"
    );
    Ok((
        store,
        Identity {
            member_id,
            cluster_id,
        },
        members,
        conf_state,
    ))
}

fn write_identity(path: &Path, member_id: u64, cluster_id: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "member_id={member_id:016x}")?;
    writeln!(f, "cluster_id={cluster_id:016x}")?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_identity(path: &Path) -> Result<Identity, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| format!("no valid {name}; the file is corrupt"))
    };
    Ok(Identity {
        member_id: field("member_id")?,
        cluster_id: field("cluster_id")?,
    })
}

/// Splits `http://host:port` into the address to bind.
fn listen_addr(url: &str) -> Result<String, StartError> {
    let bad = |msg: &str| StartError::Config(format!("invalid listen URL {url:?}: {msg}"));
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err(bad("TLS listeners are not supported yet"));
    } else {
        return Err(bad("URL scheme must be http"));
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(bad("URL must not have a path"));
    }
    match hostport.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => Ok(hostport.to_string()),
        _ => Err(bad("missing port in address")),
    }
}

async fn bind_all(urls: &[String]) -> Result<Vec<(String, TcpListener)>, StartError> {
    let mut out = Vec::new();
    for url in urls {
        let addr = listen_addr(url)?;
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Listen {
                url: url.clone(),
                source,
            })?;
        out.push((url.clone(), l));
    }
    Ok(out)
}

fn spawn_server(
    runtime: &tokio::runtime::Handle,
    url: String,
    kind: &'static str,
    router: tonic::transport::server::Router,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    // The listener moves to `runtime`'s I/O driver.
    let listener = listener.into_std();
    runtime.spawn(async move {
        let listener = match listener.and_then(TcpListener::from_std) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(url, kind, error = %e, "listener failed");
                return;
            }
        };
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        // tonic ignores its own tcp_nodelay setting for a caller-supplied
        // listener; without it small responses wait ~40 ms on Nagle.
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        });
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(url, kind, error = %e, "listener failed");
        }
    })
}

/// Announces this member's name and client URLs through Raft once there is
/// a leader, as etcd does, so `member list` shows them everywhere.
async fn publish(core: Arc<Core>, mut shutdown: watch::Receiver<bool>, ready: watch::Sender<bool>) {
    let req = PublishAttributes {
        member_id: core.shared.member_id,
        name: core.cfg.name.clone(),
        client_urls: core.cfg.advertise_client_urls.clone(),
    };
    loop {
        match core.propose(Internal::Publish(req.clone())).await {
            Ok(_) => {
                tracing::info!("published local member attributes to the cluster; serving clients");
                ready.send_replace(true);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "publish attributes failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The peer service's view of the member set.
struct Directory(std::sync::Weak<Shared>);

impl PeerDirectory for Directory {
    fn members(&self) -> MembersResponse {
        let Some(shared) = self.0.upgrade() else {
            return MembersResponse::default();
        };
        let members = shared.members.read().unwrap().0.values().cloned().collect();
        MembersResponse {
            cluster_id: shared.cluster_id,
            members,
        }
    }

    fn is_removed(&self, id: u64) -> bool {
        self.0
            .upgrade()
            .is_some_and(|s| s.removed_ids.read().unwrap().contains(&id))
    }
}
