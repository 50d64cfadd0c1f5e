//! Global client options, connecting with failover over `--endpoints`
//! (over TLS as etcdctl decides it: see `tls`), authentication,
//! per-request deadlines, and etcd's client-side error texts (what Go's
//! clientv3 makes of a gRPC status).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustcd_proto::etcdserverpb::auth_client::AuthClient;
use rustcd_proto::etcdserverpb::cluster_client::ClusterClient;
use rustcd_proto::etcdserverpb::kv_client::KvClient;
use rustcd_proto::etcdserverpb::lease_client::LeaseClient;
use rustcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rustcd_proto::etcdserverpb::watch_client::WatchClient;
use rustcd_proto::etcdserverpb::AuthenticateRequest;
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::flags::Parsed;
use crate::printer::{Format, Printer};
use crate::tls::{self, SecureCfg, Tls};
use crate::{CtlError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_BAD_FEATURE, EXIT_ERROR};

/// Adds the auth token (if any) to every request.
#[derive(Clone)]
pub struct Token(Option<MetadataValue<Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

pub type Svc = InterceptedService<Channel, Token>;

/// The global options every command that talks to a server uses.
pub struct Global {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub command_timeout_set: bool,
    pub user: Option<(String, String)>,
    /// clientv3's `Config.TLS`.
    pub tls: Tls,
}

/// One connection to one endpoint, with the auth token.
#[derive(Clone)]
pub struct Conn {
    pub channel: Channel,
    pub(crate) token: Token,
    pub command_timeout: Duration,
}

pub const KNOWN_ERROR_TEXTS: &[&str] = &[
    "etcdserver: key is not provided",
    "etcdserver: key not found",
    "etcdserver: value is provided",
    "etcdserver: lease is provided",
    "etcdserver: too many operations in txn request",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: mvcc: required revision has been compacted",
    "etcdserver: mvcc: required revision is a future revision",
    "etcdserver: mvcc: database space exceeded",
    "etcdserver: requested lease not found",
    "etcdserver: lease already exists",
    "etcdserver: too large lease TTL",
    "etcdserver: member ID already exist",
    "etcdserver: Peer URLs already exists",
    "etcdserver: re-configuration failed due to not enough started members",
    "etcdserver: given member URLs are invalid",
    "etcdserver: member not found",
    "etcdserver: can only promote a learner member",
    "etcdserver: can only promote a learner member which is in sync with leader",
    "etcdserver: too many learner members in cluster",
    "etcdserver: request is too large",
    "etcdserver: too many requests",
    "etcdserver: root user does not exist",
    "etcdserver: root user does not have root role",
    "etcdserver: user name already exists",
    "etcdserver: user name is empty",
    "etcdserver: user name not found",
    "etcdserver: role name already exists",
    "etcdserver: role name not found",
    "etcdserver: role name is empty",
    "etcdserver: authentication failed, invalid user ID or password",
    "etcdserver: permission denied",
    "etcdserver: role is not granted to the user",
    "etcdserver: permission is not granted to the role",
    "etcdserver: authentication is not enabled",
    "etcdserver: invalid auth token",
    "etcdserver: invalid auth management",
    "etcdserver: revision of auth store is old",
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: not capable",
    "etcdserver: server stopped",
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: request timed out, possibly due to connection lost",
    "etcdserver: request timed out, waiting for the applied index took too long",
    "etcdserver: unhealthy cluster",
    "etcdserver: corrupt cluster",
    "etcdserver: rpc not supported for learner",
    "etcdserver: bad leader transferee",
    "etcdserver: cluster version not found during downgrade",
    "etcdserver: wrong downgrade target version format",
    "etcdserver: invalid downgrade target version",
    "etcdserver: cluster has a downgrade job in progress",
    "etcdserver: no inflight downgrade job",
    "etcdserver: request canceled",
    "context deadline exceeded",
];

/// Go's name of a gRPC code (`codes.Code.String()`).
fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// What etcdctl prints for a failed RPC: etcd's own error text when the
/// message is one of etcd's, else gRPC's `rpc error: code = X desc = Y`.
pub fn status_text(s: &Status) -> String {
    let msg = s.message();
    if KNOWN_ERROR_TEXTS.contains(&msg) {
        return msg.to_string();
    }
    if s.code() == Code::DeadlineExceeded {
        return "context deadline exceeded".into();
    }
    format!("rpc error: code = {} desc = {}", code_name(s.code()), msg)
}

pub const DEADLINE: &str = "context deadline exceeded";

/// What to dial for one endpoint: etcd's `endpoint.Interpret` (the
/// `host:port` of `http://`, `https://` or bare endpoints) and whether the
/// connection uses TLS, which clientv3 decides for all endpoints at once.
pub struct Target {
    host_port: String,
    tls: Option<Arc<ClientConfig>>,
}

impl Target {
    pub fn new(ep: &str, tls: Option<Arc<ClientConfig>>) -> Result<Target, CtlError> {
        if ep.starts_with("unix://") || ep.starts_with("unixs://") {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                format!("unix socket endpoints are not supported yet by rustcdctl ({ep})"),
            ));
        }
        let host_port = ep
            .strip_prefix("http://")
            .or_else(|| ep.strip_prefix("https://"))
            .unwrap_or(ep);
        // url.Parse's Host: a path after it is not part of the address
        let host_port = host_port.split('/').next().unwrap_or_default().to_string();
        Ok(Target { host_port, tls })
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port)
    }
}

impl Global {
    /// etcdctl's `clientConfigFromCmd`: global flags (and `ETCDCTL_*`),
    /// TLS and auth options, and the printer.
    pub fn from_cmd(p: &mut Parsed) -> Result<(Global, Printer), CtlError> {
        p.apply_env().map_err(|e| CtlError {
            code: EXIT_ERROR,
            msg: e,
            kind: crate::ErrKind::Silent,
        })?;
        let endpoints: Vec<String> = p
            .strs("endpoints")
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        let cert = p.str("cert");
        let key = p.str("key");
        let cacert = p.str("cacert");
        for (name, v) in [("cert", &cert), ("key", &key), ("cacert", &cacert)] {
            if v.is_empty() && p.changed(name) {
                return Err(CtlError::new(
                    EXIT_BAD_ARGS,
                    format!("empty string is passed to --{name} option"),
                ));
            }
        }
        let user = p.str("user");
        let password = p.str("password");
        let user = if user.is_empty() {
            None
        } else if !password.is_empty() {
            Some((user, password))
        } else if let Some((u, pw)) = user.split_once(':') {
            Some((u.to_string(), pw.to_string()))
        } else {
            return Err(CtlError::new(
                EXIT_ERROR,
                "password prompt is not supported yet by rustcdctl: use --user name:password or --password",
            ));
        };
        let format = p.str("write-out");
        let printer = match Format::parse(&format) {
            Some(f) => Printer::new(f, p.bool("hex")),
            None => return Err(CtlError::new(EXIT_BAD_FEATURE, "unsupported output format")),
        };
        let tls = Tls::new(&SecureCfg {
            cert: &cert,
            key: &key,
            cacert: &cacert,
            insecure_transport: p.bool("insecure-transport"),
            insecure_skip_verify: p.bool("insecure-skip-tls-verify"),
        })
        .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
        if !p.str("discovery-srv").is_empty() {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "DNS discovery (--discovery-srv) is not supported yet by rustcdctl",
            ));
        }
        Ok((
            Global {
                endpoints,
                dial_timeout: p.duration("dial-timeout"),
                command_timeout: p.duration("command-timeout"),
                command_timeout_set: p.changed("command-timeout"),
                user,
                tls,
            },
            printer,
        ))
    }

    /// Connects to the first endpoint that answers, trying them in order
    /// (again and again) until the command timeout, as clientv3's
    /// balancer would.
    pub async fn connect(&self) -> Result<Conn, CtlError> {
        self.connect_to(&self.endpoints.clone()).await
    }

    pub async fn connect_to(&self, endpoints: &[String]) -> Result<Conn, CtlError> {
        let deadline = Instant::now() + self.command_timeout;
        let targets = self.targets(endpoints)?;
        if targets.is_empty() {
            return Err(CtlError::new(
                EXIT_BAD_CONNECTION,
                "etcdclient: no available endpoints",
            ));
        }
        loop {
            for target in &targets {
                let now = Instant::now();
                if now >= deadline {
                    return Err(CtlError::new(EXIT_ERROR, DEADLINE));
                }
                let t = self.dial_timeout.min(deadline - now);
                if let Ok(ch) = dial(target, t).await {
                    let token = self.authenticate(&ch, deadline).await?;
                    return Ok(Conn {
                        channel: ch,
                        token,
                        command_timeout: self.command_timeout,
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CtlError::new(EXIT_ERROR, DEADLINE));
            }
            tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
        }
    }

    /// The endpoints to dial, with the TLS the first one's scheme decides
    /// for all (clientv3's `credentialsForEndpoint`).
    fn targets(&self, endpoints: &[String]) -> Result<Vec<Target>, CtlError> {
        let Some(first) = endpoints.first() else {
            return Ok(Vec::new());
        };
        let tls = self
            .tls
            .for_endpoint(first)
            .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
        endpoints
            .iter()
            .map(|ep| Target::new(ep, tls.clone()))
            .collect()
    }

    async fn authenticate(&self, ch: &Channel, deadline: Instant) -> Result<Token, CtlError> {
        let Some((name, password)) = &self.user else {
            return Ok(Token(None));
        };
        let mut c = AuthClient::new(ch.clone());
        let req = AuthenticateRequest {
            name: name.clone(),
            password: password.clone(),
        };
        match tokio::time::timeout_at(deadline, c.authenticate(req)).await {
            Err(_) => Err(CtlError::new(EXIT_BAD_CONNECTION, DEADLINE)),
            Ok(Ok(r)) => {
                let t = r.into_inner().token;
                let v = MetadataValue::try_from(t.as_str())
                    .map_err(|_| CtlError::new(EXIT_BAD_CONNECTION, "invalid auth token"))?;
                Ok(Token(Some(v)))
            }
            // clientv3 goes on without a token when auth is off
            Ok(Err(s)) if s.message() == "etcdserver: authentication is not enabled" => {
                Ok(Token(None))
            }
            Ok(Err(s)) => Err(CtlError::new(EXIT_BAD_CONNECTION, status_text(&s))),
        }
    }
}

/// One HTTP/2 connection, over TLS if the target says so.
pub async fn dial(target: &Target, timeout: Duration) -> Result<Channel, String> {
    let url = target.url();
    let ep = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad endpoint {url:?}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let connecting = async {
        match &target.tls {
            None => ep.connect().await.map_err(|e| e.to_string()),
            Some(cfg) => {
                let host = ep.uri().host().unwrap_or_default();
                let connector = tls::Connector::new(cfg.clone(), host)?;
                ep.connect_with_connector(connector)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(r) => r,
        Err(_) => Err(DEADLINE.into()),
    }
}

impl Conn {
    pub fn kv(&self) -> KvClient<Svc> {
        KvClient::with_interceptor(self.channel.clone(), self.token.clone())
    }
    pub fn lease(&self) -> LeaseClient<Svc> {
        LeaseClient::with_interceptor(self.channel.clone(), self.token.clone())
    }
    pub fn cluster(&self) -> ClusterClient<Svc> {
        ClusterClient::with_interceptor(self.channel.clone(), self.token.clone())
    }
    pub fn maintenance(&self) -> MaintenanceClient<Svc> {
        MaintenanceClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(usize::MAX)
    }
    pub fn watch(&self) -> WatchClient<Svc> {
        WatchClient::with_interceptor(self.channel.clone(), self.token.clone())
    }

    /// Runs one RPC under the command timeout; the error is etcdctl's text.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, String> {
        with_timeout(self.command_timeout, fut).await
    }
}

/// Runs `fut` under `t`; the error is etcdctl's text.
pub async fn with_timeout<T>(
    t: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, fut).await {
        Err(_) => Err(DEADLINE.into()),
        Ok(Err(s)) => Err(status_text(&s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}
