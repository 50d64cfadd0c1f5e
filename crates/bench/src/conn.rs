//! Global options, gRPC connections and leader discovery.

use std::time::Duration;

use rustcd_proto::etcdserverpb::cluster_client::ClusterClient;
use rustcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rustcd_proto::etcdserverpb::{MemberListRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use crate::args::Parsed;

pub struct Global {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub target_leader: bool,
    pub dial_timeout: Duration,
    pub request_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    /// put/range/txn-put: write every request's start and latency here.
    pub latency_log: Option<String>,
    pub json: bool,
    pub precise: bool,
    pub progress: bool,
}

impl Global {
    pub fn from_args(a: &Parsed) -> Result<Global, String> {
        let endpoints: Vec<String> = a
            .str("endpoints")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(normalize_url)
            .collect();
        if endpoints.is_empty() {
            return Err("--endpoints is empty".into());
        }
        let conns = a.usize("conns")?;
        let clients = a.usize("clients")?;
        if conns == 0 || clients == 0 {
            return Err("--conns and --clients must be at least 1".into());
        }
        let output = a.str("output");
        if output != "text" && output != "json" && !output.is_empty() {
            return Err(format!("--output must be text or json, not {output:?}"));
        }
        let rt = a.duration("request-timeout")?;
        let dt = a.duration("dial-timeout")?;
        let md = a.duration("max-duration")?;
        Ok(Global {
            endpoints,
            conns,
            clients,
            target_leader: a.bool("target-leader"),
            dial_timeout: if dt.is_zero() {
                Duration::from_secs(5)
            } else {
                dt
            },
            request_timeout: (!rt.is_zero()).then_some(rt),
            max_duration: (!md.is_zero()).then_some(md),
            latency_log: Some(a.str("latency-log").to_string()).filter(|s| !s.is_empty()),
            json: output == "json",
            precise: a.bool("precise"),
            progress: !a.bool("no-progress"),
        })
    }
}

/// `host:port` means `http://host:port`, like etcd's benchmark.
pub fn normalize_url(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

/// One HTTP/2 connection (tonic opens a new one per `connect`).
pub async fn dial(url: &str, timeout: Duration) -> Result<Channel, String> {
    let ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad endpoint {url:?}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    match tokio::time::timeout(timeout, ep.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!(
            "dial {url}: {e} ({:?})",
            std::error::Error::source(&e)
        )),
        Err(_) => Err(format!("dial {url}: timed out after {timeout:?}")),
    }
}

/// The leader as (index in `g.endpoints` if it is one of them, its URL).
pub async fn find_leader(g: &Global) -> Result<(Option<usize>, String), String> {
    let mut leader_id = 0;
    let mut last_err = String::from("no endpoint answered Status");
    let mut any: Option<Channel> = None;
    for (i, ep) in g.endpoints.iter().enumerate() {
        let ch = match dial(ep, g.dial_timeout).await {
            Ok(c) => c,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        let mut m = MaintenanceClient::new(ch.clone());
        match tokio::time::timeout(g.dial_timeout, m.status(StatusRequest {})).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let me = r.header.as_ref().map_or(0, |h| h.member_id);
                if r.leader != 0 && r.leader == me {
                    return Ok((Some(i), ep.clone()));
                }
                if r.leader != 0 {
                    leader_id = r.leader;
                    any = Some(ch);
                }
            }
            Ok(Err(s)) => last_err = format!("status {ep}: {}", status_text(&s)),
            Err(_) => last_err = format!("status {ep}: timed out"),
        }
    }
    // The leader is not among --endpoints: ask the member list for its URL.
    if let Some(ch) = any {
        let mut c = ClusterClient::new(ch);
        let r = c
            .member_list(MemberListRequest {
                linearizable: false,
            })
            .await
            .map_err(|s| format!("member list: {}", status_text(&s)))?
            .into_inner();
        if let Some(m) = r.members.iter().find(|m| m.id == leader_id) {
            if let Some(u) = m.client_ur_ls.first() {
                return Ok((None, u.clone()));
            }
        }
        return Err(format!(
            "leader {leader_id:x} has no client URL in the member list"
        ));
    }
    Err(format!("failed to find a leader endpoint: {last_err}"))
}

/// `g.conns` connections, round-robin over the endpoints (or all to the
/// leader with `--target-leader`).
pub async fn channels(g: &Global) -> Result<Vec<Channel>, String> {
    let eps = if g.target_leader {
        let (_, url) = find_leader(g).await?;
        vec![url]
    } else {
        g.endpoints.clone()
    };
    let dials = (0..g.conns).map(|i| {
        let url = eps[i % eps.len()].clone();
        let t = g.dial_timeout;
        async move { dial(&url, t).await }
    });
    futures::future::join_all(dials).await.into_iter().collect()
}

/// etcd's client error text: `rpc error: code = X desc = Y`.
pub fn status_text(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

/// Runs `fut` under the optional per-request deadline.
pub async fn with_timeout<T>(
    t: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, String> {
    let r = match t {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(format!(
                    "context deadline exceeded (--request-timeout {t:?})"
                ))
            }
        },
        None => fut.await,
    };
    r.map_err(|s| status_text(&s))
}
