//! etcd's HTTP endpoints on the client port, beside gRPC: `/health`,
//! `/version` and `/metrics` (Prometheus text format with etcd's metric
//! names, written by hand: a handful of gauges and counters do not justify
//! a metrics crate yet).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use rustcd_proto::etcdserverpb::RangeRequest;

use crate::core::Core;
use crate::service::maintenance::ETCD_VERSION;

/// Adds the HTTP endpoints to the gRPC services' router.
pub(crate) fn routes(core: Arc<Core>, grpc: axum::Router) -> axum::Router {
    let http = axum::Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(core);
    grpc.merge(http)
}

fn json(status: StatusCode, body: String) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// etcd 3.5's health check: no alarm, a leader, and a linearizable read that
/// completes.
async fn health(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let reason = if let Some(a) = core.shared.alarms.list(0).first() {
        let name = rustcd_proto::etcdserverpb::AlarmType::try_from(a.alarm)
            .map(|t| t.as_str_name())
            .unwrap_or("UNKNOWN");
        format!("ALARM {name}")
    } else if core.node.status().leader_id == 0 {
        "RAFT NO LEADER".to_string()
    } else {
        let read = async {
            core.linearizable_barrier().await?;
            let rtx = core.store().read()?;
            rtx.range(&RangeRequest {
                key: b"health".to_vec(),
                keys_only: true,
                limit: 1,
                ..Default::default()
            })?;
            Ok::<(), crate::error::ServerError>(())
        };
        match read.await {
            Ok(()) => String::new(),
            Err(_) => "QGET ERROR".to_string(),
        }
    };
    let ok = reason.is_empty();
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        format!("{{\"health\":\"{ok}\",\"reason\":\"{reason}\"}}"),
    )
}

async fn version() -> impl IntoResponse {
    json(
        StatusCode::OK,
        format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"3.5.0\"}}"),
    )
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let st = core.node.status();
    let store = core.store();
    // Walks the whole tree when its cache is stale: not on an async worker.
    let in_use = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.db_size_in_use())
            .await
            .unwrap_or(0)
    };
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        f64::from(u8::from(st.leader_id != 0)),
    );
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        f64::from(u8::from(st.is_leader)),
    );
    gauge(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        f64::from(u8::from(core.is_learner())),
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        st.commit_index as f64,
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        st.applied_index as f64,
    );
    gauge(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        core.shared.waiters.lock().unwrap().len() as f64,
    );
    gauge(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        1.0,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        store.db_size() as f64,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        in_use as f64,
    );
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        store.current_revision() as f64,
    );
    gauge(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        store.compact_revision() as f64,
    );
    gauge(
        "etcd_debugging_lease_total",
        "The number of leases.",
        core.shared.lessor.ids().len() as f64,
    );
    // what `etcdctl check datascale` measures
    if let Some(rss) = resident_memory_bytes() {
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss as f64,
        );
    }
    rustcd_raft::metrics::WAL_FSYNC.render(&mut out);
    rustcd_raft::metrics::BACKEND_COMMIT.render(&mut out);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

/// This process's resident set size (Linux's VmRSS), as Prometheus' process
/// collector reports it for etcd.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}
