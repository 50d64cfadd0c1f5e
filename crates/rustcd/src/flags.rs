//! The `rustcd` server flag surface: etcd 3.5's flags, `ETCD_*` environment
//! variables and `--config-file`, turned into a checked [`ServerConfig`].
//!
//! The parser is hand-written rather than built on clap because etcd uses Go's
//! `flag` package, whose rules clap does not model: `-flag` and `--flag` are
//! the same, `-flag=value` works, bool flags never take a separate value
//! (`-flag false` stops parsing at `false`), and parsing stops at the first
//! non-flag argument. The messages of errors reproduce Go's / etcd's texts
//! where etcd has one (see the tests), so scripts and people that know etcd
//! see what they expect.
//!
//! Precedence, as in etcd (`etcdmain/config.go`): a config file, if one is
//! named by `--config-file` or `ETCD_CONFIG_FILE`, replaces every other flag
//! and variable; otherwise a command-line flag beats its `ETCD_*` variable,
//! which beats the default.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rustcd_server::config::{
    parse_go_duration, AutoCompactionMode, ClusterState, LogConfig, ServerConfig, TlsConfig,
};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a member with this configuration. The strings are warnings for
    /// main to log once logging is up, each a complete line to log as-is:
    /// flags that were accepted (for etcd compatibility) but are not used by
    /// rustcd, shadowed or unrecognised `ETCD_*` variables, unknown config
    /// file keys, and the like.
    Run(Box<ServerConfig>, Vec<String>),
    /// `--version`: print [`version_text`] to stdout and exit 0.
    Version,
    /// `-h` / `--help`: print the text to stdout and exit 0.
    Help(String),
}

/// A flag problem. Print it to stderr and exit with [`FlagError::exit_code`]:
/// 2 for a command line Go's flag package would reject (unknown flag, bad
/// syntax, bad value), 1 for a configuration etcd rejects after parsing
/// (validation, environment, config file) — the codes etcd exits with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagError {
    message: String,
    exit_code: i32,
}

impl FlagError {
    /// Command-line syntax error (exit 2), with a hint where to find usage.
    fn usage(message: impl Into<String>) -> Self {
        FlagError {
            message: format!(
                "{}\nRun 'rustcd --help' for the list of flags.",
                message.into()
            ),
            exit_code: 2,
        }
    }

    /// Configuration error (exit 1).
    fn invalid(message: impl Into<String>) -> Self {
        FlagError {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// The process exit code etcd uses for this kind of error.
    #[allow(dead_code)] // main should exit with this; it does not call it yet.
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// The message, without a trailing newline.
    #[allow(dead_code)] // Display prints the same; kept for callers and tests.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FlagError {}

/// etcd logs and dies when a flag is given both on the command line and as
/// its `ETCD_*` variable ("conflicting environment variable ... is shadowed by
/// corresponding command-line flag", `pkg/flags/flag.go` `verifyEnv`, fatal in
/// 3.4 and 3.5). rustcd, as asked, lets the flag win and only warns. Set this
/// to `true` to fail like etcd.
const SHADOWED_ENV_IS_FATAL: bool = false;

const DEFAULT_NAME: &str = "default";
const DEFAULT_LISTEN_PEER_URLS: &str = "http://localhost:2380";
const DEFAULT_LISTEN_CLIENT_URLS: &str = "http://localhost:2379";
const DEFAULT_INITIAL_ADVERTISE_PEER_URLS: &str = "http://localhost:2380";
const DEFAULT_ADVERTISE_CLIENT_URLS: &str = "http://localhost:2379";
/// `embed.NewConfig().InitialCluster`: `InitialClusterFromName("default")`
/// with the default advertise peer URL.
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
/// `maxElectionMs` in etcd's embed/config.go.
const MAX_ELECTION_MS: u64 = 50_000;
const DEFAULT_LOG_ROTATION_CONFIG: &str =
    r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#;

// ---------------------------------------------------------------------------
// The flag table.
// ---------------------------------------------------------------------------

/// How a flag's value is parsed and checked (as Go's `flag.Value` would).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `flag.BoolVar`: `-f`, `-f=true|false|1|0|t|f|...`.
    Bool,
    /// `flag.StringVar`.
    Str,
    /// `flag.UintVar` / `Uint64Var` (Go's base-0 syntax: `0x10`, `010`, ...).
    Uint,
    /// `flags.Uint32Value`.
    Uint32,
    /// `flag.IntVar` / `Int64Var`.
    Int,
    /// `flag.DurationVar`: Go durations like `10m0s`, `500ms`, `1h`.
    Duration,
    /// `flags.UniqueURLs`: comma-separated http/https/unix/unixs URLs.
    Urls,
    /// `flags.UniqueURLsWithExceptions(_, "*")`: URLs, or exactly `*`.
    UrlsOrStar,
    /// Comma-separated strings.
    Strings,
    /// `flags.SelectiveStringValue`: one of these.
    Choice(&'static [&'static str]),
    /// `flags.SelectiveStringsValue`: comma-separated, each one of these.
    MultiChoice(&'static [&'static str]),
    /// etcd's `IgnoredFlag`: a legacy bool-like flag that only warns.
    Ignored,
}

impl Kind {
    /// Go's `boolFlag`: set by `-f` alone; never consumes the next argument.
    fn is_bool_like(self) -> bool {
        matches!(self, Kind::Bool | Kind::Ignored)
    }
}

/// Help groups, in the order etcd's help lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Member,
    Clustering,
    Security,
    Auth,
    Profiling,
    Logging,
    Tracing,
    Proxy,
    Experimental,
    Unsafe,
    Deprecated,
    Legacy,
}

const GROUPS: [(Group, &str); 11] = [
    (Group::Member, "Member"),
    (Group::Clustering, "Clustering"),
    (Group::Security, "Security"),
    (Group::Auth, "Auth"),
    (Group::Profiling, "Profiling and Monitoring"),
    (Group::Logging, "Logging"),
    (Group::Tracing, "Distributed tracing (experimental)"),
    (
        Group::Proxy,
        "v2 Proxy (not supported by rustcd: only 'off' is accepted)",
    ),
    (Group::Experimental, "Experimental features"),
    (
        Group::Unsafe,
        "Unsafe features (they may break the guarantees of the consensus protocol)",
    ),
    (
        Group::Deprecated,
        "etcd 3.4 flags, accepted for compatibility",
    ),
];

/// One flag.
#[derive(Debug)]
struct Spec {
    /// The name, without dashes.
    name: &'static str,
    kind: Kind,
    /// etcd's default, as shown in help and used to tell whether an unused
    /// flag was actually changed.
    default: &'static str,
    group: Group,
    /// rustcd acts on it (it has a `ServerConfig` field or a check).
    used: bool,
    /// It is also a top-level key of etcd's YAML config file.
    file: bool,
    help: &'static str,
}

/// Used by rustcd; also a config-file key.
const fn used(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        default,
        group,
        used: true,
        file: true,
        help,
    }
}

/// Used by rustcd; command line / environment only.
const fn used_cli(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        default,
        group,
        used: true,
        file: false,
        help,
    }
}

/// Accepted and ignored; also a config-file key.
const fn unused(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        default,
        group,
        used: false,
        file: true,
        help,
    }
}

/// Accepted and ignored; command line / environment only.
const fn unused_cli(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        default,
        group,
        used: false,
        file: false,
        help,
    }
}

/// etcd's `ignored` list: pre-v2 flags that only log a warning.
const fn legacy(name: &'static str) -> Spec {
    unused_cli(name, Kind::Ignored, "", Group::Legacy, "")
}

use Group as G;
use Kind as K;

/// Every etcd 3.5 server flag (plus the few 3.4 ones 3.5 dropped), from
/// etcd's etcdmain/config.go and embed/config.go. One line per flag.
#[rustfmt::skip]
static SPECS: &[Spec] = &[
    // Member.
    used_cli("config-file", K::Str, "", G::Member, "Path to an etcd YAML configuration file. When given, every other flag and ETCD_* variable is ignored."),
    used("name", K::Str, "default", G::Member, "Human-readable name for this member."),
    used("data-dir", K::Str, "${name}.etcd", G::Member, "Path to the data directory."),
    used("wal-dir", K::Str, "", G::Member, "Path to a dedicated WAL directory."),
    used("snapshot-count", K::Uint, "100000", G::Member, "Number of committed transactions that triggers a snapshot to disk."),
    used("heartbeat-interval", K::Uint, "100", G::Member, "Time (in milliseconds) of a heartbeat interval."),
    used("election-timeout", K::Uint, "1000", G::Member, "Time (in milliseconds) for an election to time out; at least 5 heartbeat intervals, at most 50000."),
    unused("initial-election-tick-advance", K::Bool, "true", G::Member, "Fast-forward the initial election ticks on boot for a faster election."),
    used("listen-peer-urls", K::Urls, DEFAULT_LISTEN_PEER_URLS, G::Member, "Comma-separated URLs to listen on for peer traffic."),
    used("listen-client-urls", K::Urls, DEFAULT_LISTEN_CLIENT_URLS, G::Member, "Comma-separated URLs to listen on for client traffic."),
    unused("listen-client-http-urls", K::Urls, "", G::Member, "Comma-separated URLs to serve HTTP (non-gRPC) client traffic on."),
    unused("max-snapshots", K::Uint, "5", G::Member, "Maximum number of snapshot files to retain (0 is unlimited)."),
    unused("max-wals", K::Uint, "5", G::Member, "Maximum number of WAL files to retain (0 is unlimited)."),
    used("quota-backend-bytes", K::Int, "0", G::Member, "Raise an alarm when the backend exceeds this size (0 means the default quota, 2 GiB)."),
    unused("backend-bbolt-freelist-type", K::Str, "map", G::Member, "bbolt freelist type (array or map)."),
    unused("backend-batch-interval", K::Duration, "0s", G::Member, "Maximum time before committing a backend transaction."),
    unused("backend-batch-limit", K::Int, "0", G::Member, "Maximum operations before committing a backend transaction."),
    used("max-txn-ops", K::Uint, "128", G::Member, "Maximum number of operations permitted in a transaction."),
    used("max-request-bytes", K::Uint, "1572864", G::Member, "Maximum client request size in bytes the server accepts."),
    unused("max-concurrent-streams", K::Uint32, "4294967295", G::Member, "Maximum concurrent gRPC streams each client can open."),
    unused("grpc-keepalive-min-time", K::Duration, "5s", G::Member, "Minimum interval a client should wait before pinging the server."),
    unused("grpc-keepalive-interval", K::Duration, "2h", G::Member, "Frequency of server-to-client pings to check a connection is alive (0 disables)."),
    unused("grpc-keepalive-timeout", K::Duration, "20s", G::Member, "Extra wait before closing a non-responsive connection (0 disables)."),
    unused_cli("socket-reuse-port", K::Bool, "false", G::Member, "Set SO_REUSEPORT on listeners."),
    unused_cli("socket-reuse-address", K::Bool, "false", G::Member, "Set SO_REUSEADDR on listeners."),
    unused_cli("raft-read-timeout", K::Duration, "5s", G::Member, "Read timeout on each raft peer connection."),
    unused_cli("raft-write-timeout", K::Duration, "5s", G::Member, "Write timeout on each raft peer connection."),
    unused("enable-grpc-gateway", K::Bool, "true", G::Member, "Serve the JSON/HTTP gateway to the v3 gRPC API."),
    // Clustering.
    used("initial-advertise-peer-urls", K::Urls, DEFAULT_INITIAL_ADVERTISE_PEER_URLS, G::Clustering, "This member's peer URLs to advertise to the rest of the cluster."),
    used("initial-cluster", K::Str, DEFAULT_INITIAL_CLUSTER, G::Clustering, "Initial cluster configuration for bootstrapping: name=peer-url,name=peer-url,... (default: <name>=<initial-advertise-peer-urls>)."),
    used("initial-cluster-state", K::Choice(&["new", "existing"]), "new", G::Clustering, "Initial cluster state ('new' or 'existing')."),
    used("initial-cluster-token", K::Str, "etcd-cluster", G::Clustering, "Initial cluster token for the cluster during bootstrap."),
    used("advertise-client-urls", K::Urls, DEFAULT_ADVERTISE_CLIENT_URLS, G::Clustering, "This member's client URLs to advertise to the public. Required when --listen-client-urls is set."),
    used("discovery", K::Str, "", G::Clustering, "Discovery URL used to bootstrap the cluster (not supported by rustcd)."),
    unused("discovery-fallback", K::Choice(&["proxy", "exit"]), "proxy", G::Clustering, "Behaviour ('exit' or 'proxy') when the discovery service fails."),
    unused("discovery-proxy", K::Str, "", G::Clustering, "HTTP proxy for traffic to the discovery service."),
    used("discovery-srv", K::Str, "", G::Clustering, "DNS SRV domain used to bootstrap the cluster (not supported by rustcd)."),
    unused("discovery-srv-name", K::Str, "", G::Clustering, "Suffix of the DNS SRV name queried when bootstrapping."),
    used("strict-reconfig-check", K::Bool, "true", G::Clustering, "Reject reconfiguration requests that would cause quorum loss."),
    used("pre-vote", K::Bool, "true", G::Clustering, "Run an additional Raft election phase (pre-vote)."),
    used("auto-compaction-retention", K::Str, "0", G::Clustering, "Auto compaction retention (0 disables): hours or a duration in periodic mode, revisions in revision mode."),
    used("auto-compaction-mode", K::Str, "periodic", G::Clustering, "How to read --auto-compaction-retention: 'periodic' or 'revision'."),
    unused("enable-v2", K::Bool, "false", G::Clustering, "Accept etcd v2 client requests."),
    unused("v2-deprecation", K::MultiChoice(&["not-yet", "write-only", "write-only-drop-data", "gone"]), "not-yet", G::Clustering, "v2store deprecation stage."),
    unused("experimental-enable-v2v3", K::Str, "", G::Clustering, "v3 prefix for serving emulated v2 state."),
    // Security.
    used_cli("cert-file", K::Str, "", G::Security, "Path to the client server TLS cert file."),
    used_cli("key-file", K::Str, "", G::Security, "Path to the client server TLS key file."),
    unused_cli("client-cert-file", K::Str, "", G::Security, "Path to an explicit client TLS cert file used when client auth is required."),
    unused_cli("client-key-file", K::Str, "", G::Security, "Path to an explicit client TLS key file used when client auth is required."),
    used_cli("client-cert-auth", K::Bool, "false", G::Security, "Enable client cert authentication."),
    unused_cli("client-crl-file", K::Str, "", G::Security, "Path to the client certificate revocation list file."),
    unused_cli("client-cert-allowed-hostname", K::Str, "", G::Security, "Allowed TLS hostname for client cert authentication."),
    used_cli("trusted-ca-file", K::Str, "", G::Security, "Path to the client server TLS trusted CA cert file."),
    used_cli("auto-tls", K::Bool, "false", G::Security, "Client TLS using generated certificates."),
    used_cli("peer-cert-file", K::Str, "", G::Security, "Path to the peer server TLS cert file."),
    used_cli("peer-key-file", K::Str, "", G::Security, "Path to the peer server TLS key file."),
    unused_cli("peer-client-cert-file", K::Str, "", G::Security, "Path to an explicit peer client TLS cert file."),
    unused_cli("peer-client-key-file", K::Str, "", G::Security, "Path to an explicit peer client TLS key file."),
    used_cli("peer-client-cert-auth", K::Bool, "false", G::Security, "Enable peer client cert authentication."),
    used_cli("peer-trusted-ca-file", K::Str, "", G::Security, "Path to the peer server TLS trusted CA file."),
    unused_cli("peer-cert-allowed-cn", K::Str, "", G::Security, "Required CN for client certs connecting to the peer endpoint."),
    unused_cli("peer-cert-allowed-hostname", K::Str, "", G::Security, "Allowed TLS hostname for inter-peer authentication."),
    used_cli("peer-auto-tls", K::Bool, "false", G::Security, "Peer TLS using self-generated certificates."),
    unused("self-signed-cert-validity", K::Uint, "1", G::Security, "Validity period, in years, of the auto-TLS certificates."),
    unused_cli("peer-crl-file", K::Str, "", G::Security, "Path to the peer certificate revocation list file."),
    unused("cipher-suites", K::Strings, "", G::Security, "Comma-separated list of TLS cipher suites between client/server and peers."),
    unused("tls-min-version", K::Str, "", G::Security, "Minimum TLS version (TLS1.2 or TLS1.3)."),
    unused("tls-max-version", K::Str, "", G::Security, "Maximum TLS version (TLS1.2 or TLS1.3; empty means no limit)."),
    unused("cors", K::UrlsOrStar, "*", G::Security, "Comma-separated origins allowed for CORS (* allows all)."),
    unused("host-whitelist", K::Strings, "*", G::Security, "Acceptable hostnames from HTTP client requests if the server is not secure (* allows all)."),
    unused_cli("experimental-peer-skip-client-san-verification", K::Bool, "false", G::Security, "Skip verification of the SAN field in client certificates for peer connections."),
    // Auth.
    used("auth-token", K::Str, "simple", G::Auth, "Auth token type and its options ('simple' or 'jwt,...')."),
    unused("bcrypt-cost", K::Uint, "10", G::Auth, "bcrypt cost for hashing auth passwords (4..31)."),
    unused("auth-token-ttl", K::Uint, "300", G::Auth, "Lifetime in seconds of simple auth tokens."),
    // Profiling and monitoring.
    unused("enable-pprof", K::Bool, "false", G::Profiling, "Serve runtime profiling data at <client URL>/debug/pprof/."),
    unused("metrics", K::Str, "basic", G::Profiling, "Level of detail of exported metrics ('basic' or 'extensive')."),
    used("listen-metrics-urls", K::Urls, "", G::Profiling, "Comma-separated URLs to serve the metrics and health endpoints on."),
    // Logging.
    used("logger", K::Str, "zap", G::Logging, "'zap' for JSON lines (etcd's format), 'capnslog' for plain text."),
    used("log-outputs", K::Strings, "default", G::Logging, "Log targets: 'default' or 'stderr' (rustcd logs to stderr only for now)."),
    used("log-level", K::Str, "info", G::Logging, "Log level: debug, info, warn, error, panic or fatal. RUST_LOG overrides it."),
    used("log-format", K::Str, "json", G::Logging, "Log format with the zap logger: 'json' or 'console'."),
    unused("enable-log-rotation", K::Bool, "false", G::Logging, "Rotate a single log-outputs file target."),
    unused("log-rotation-config-json", K::Str, DEFAULT_LOG_ROTATION_CONFIG, G::Logging, "Log rotation configuration, as JSON."),
    // Distributed tracing.
    unused("experimental-enable-distributed-tracing", K::Bool, "false", G::Tracing, "Enable OpenTelemetry distributed tracing."),
    unused("experimental-distributed-tracing-address", K::Str, "localhost:4317", G::Tracing, "Address of the OpenTelemetry collector."),
    unused("experimental-distributed-tracing-service-name", K::Str, "etcd", G::Tracing, "Service name reported to OpenTelemetry."),
    unused("experimental-distributed-tracing-instance-id", K::Str, "", G::Tracing, "Service instance ID reported to OpenTelemetry (unique per member)."),
    unused("experimental-distributed-tracing-sampling-rate", K::Int, "0", G::Tracing, "Samples to collect per million spans."),
    // v2 proxy.
    used("proxy", K::Choice(&["off", "readonly", "on"]), "off", G::Proxy, "Proxy mode ('off', 'readonly' or 'on')."),
    unused("proxy-failure-wait", K::Uint, "5000", G::Proxy, "Time (ms) an endpoint is held in a failed state."),
    unused("proxy-refresh-interval", K::Uint, "30000", G::Proxy, "Time (ms) of the endpoints refresh interval."),
    unused("proxy-dial-timeout", K::Uint, "1000", G::Proxy, "Time (ms) for a dial to time out."),
    unused("proxy-write-timeout", K::Uint, "5000", G::Proxy, "Time (ms) for a write to time out."),
    unused("proxy-read-timeout", K::Uint, "0", G::Proxy, "Time (ms) for a read to time out."),
    // Experimental.
    unused("experimental-initial-corrupt-check", K::Bool, "false", G::Experimental, "Check data corruption before serving any client/peer traffic."),
    unused("experimental-corrupt-check-time", K::Duration, "0s", G::Experimental, "Time between cluster corruption check passes."),
    unused("experimental-compact-hash-check-enabled", K::Bool, "false", G::Experimental, "Check the hashes of compacted revisions across members."),
    unused("experimental-compact-hash-check-time", K::Duration, "1m", G::Experimental, "Time between compacted-revision hash checks (must be >0)."),
    used("experimental-enable-lease-checkpoint", K::Bool, "false", G::Experimental, "Leader sends lease checkpoints so remaining TTLs survive leader changes."),
    unused("experimental-enable-lease-checkpoint-persist", K::Bool, "false", G::Experimental, "Persist lease remaining TTLs (requires --experimental-enable-lease-checkpoint)."),
    unused("experimental-compaction-batch-limit", K::Int, "1000", G::Experimental, "Maximum revisions deleted in each compaction batch."),
    unused("experimental-compaction-sleep-interval", K::Duration, "0s", G::Experimental, "Sleep between compaction batches."),
    used("experimental-watch-progress-notify-interval", K::Duration, "10m", G::Experimental, "Interval of periodic watch progress notifications (Go duration)."),
    unused("experimental-downgrade-check-time", K::Duration, "5s", G::Experimental, "Time between two downgrade status checks."),
    unused("experimental-warning-apply-duration", K::Duration, "100ms", G::Experimental, "Warn when applying a request takes longer than this."),
    unused("experimental-warning-unary-request-duration", K::Duration, "300ms", G::Experimental, "Warn when a unary request takes longer than this."),
    unused("experimental-memory-mlock", K::Bool, "false", G::Experimental, "Keep the process's pages in RAM (mlock)."),
    unused("experimental-txn-mode-write-with-shared-buffer", K::Bool, "true", G::Experimental, "Write transactions use a shared buffer for their read-only checks."),
    unused("experimental-bootstrap-defrag-threshold-megabytes", K::Uint, "0", G::Experimental, "Defragment on boot if that frees at least this many MB (0 disables)."),
    unused("experimental-max-learners", K::Int, "1", G::Experimental, "Maximum number of learners in the cluster."),
    unused("experimental-snapshot-catchup-entries", K::Uint, "5000", G::Experimental, "Entries kept for slow followers to catch up after a snapshot."),
    unused("experimental-stop-grpc-service-on-defrag", K::Bool, "false", G::Experimental, "Report not-serving on the gRPC health service during defragmentation."),
    unused("experimental-backend-bbolt-freelist-type", K::Str, "map", G::Experimental, "etcd 3.4 name of --backend-bbolt-freelist-type."),
    // Unsafe.
    unused("unsafe-no-fsync", K::Bool, "false", G::Unsafe, "Disable fsync: unsafe, will lose data on a crash."),
    unused("force-new-cluster", K::Bool, "false", G::Unsafe, "Force a new one-member cluster from the existing data."),
    // etcd 3.4 flags removed in 3.5.
    used("debug", K::Bool, "false", G::Deprecated, "Same as --log-level=debug."),
    unused("log-package-levels", K::Str, "", G::Deprecated, "Per-package capnslog levels."),
    unused("log-output", K::Strings, "default", G::Deprecated, "Old name of --log-outputs."),
    // Version.
    used_cli("version", K::Bool, "false", G::Member, "Print the version and exit."),
    // etcd's `ignored` flags.
    legacy("cluster-active-size"),
    legacy("cluster-remove-delay"),
    legacy("cluster-sync-interval"),
    legacy("config"),
    legacy("force"),
    legacy("max-result-buffer"),
    legacy("max-retry-attempts"),
    legacy("peer-heartbeat-interval"),
    legacy("peer-election-timeout"),
    legacy("retry-interval"),
    legacy("snapshot"),
    legacy("v"),
    legacy("vv"),
    legacy("test.coverprofile"),
    legacy("test.outputdir"),
];

fn lookup(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// A flag rustcd's own code names; the table must have it.
fn spec(name: &str) -> &'static Spec {
    lookup(name).unwrap_or_else(|| panic!("flag table has no --{name}"))
}

/// `flags.FlagToEnv("ETCD", name)`.
fn env_key(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

// ---------------------------------------------------------------------------
// Values as given.
// ---------------------------------------------------------------------------

/// The raw values given for flags, from one source set (command line plus
/// environment, or a config file).
#[derive(Default)]
struct Values {
    vals: HashMap<&'static str, String>,
    /// Flags given on the command line, first-seen order.
    cmdline: Vec<&'static str>,
    warnings: Vec<String>,
}

impl Values {
    /// Go's `flag.Value.Set`: check, then store (the last one wins).
    fn set(&mut self, spec: &'static Spec, raw: &str) -> Result<(), String> {
        check_value(spec.kind, raw)?;
        if spec.kind == Kind::Ignored {
            // etcd's IgnoredFlag.Set.
            self.warnings.push(format!(
                "flag \"-{}\" is no longer supported - ignoring.",
                spec.name
            ));
        }
        self.vals.insert(spec.name, raw.to_string());
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vals.get(name).map(String::as_str)
    }

    fn is_set(&self, name: &str) -> bool {
        self.vals.contains_key(name)
    }

    /// The value, or etcd's default.
    fn get_or_default(&self, name: &str) -> &str {
        self.get(name).unwrap_or(spec(name).default)
    }

    /// A non-empty value.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    fn bool(&self, name: &str) -> bool {
        parse_go_bool(self.get_or_default(name)).unwrap_or(false)
    }
}

/// Checks a raw value as the flag's Go `Set` would; the error is the text Go
/// puts after `invalid value "x" for flag -name: `.
fn check_value(kind: Kind, raw: &str) -> Result<(), String> {
    match kind {
        Kind::Bool | Kind::Ignored => {
            if kind == Kind::Bool {
                parse_go_bool(raw)?;
            }
            Ok(())
        }
        Kind::Str | Kind::Strings => Ok(()),
        Kind::Uint => parse_go_uint(raw, 64).map(drop),
        Kind::Uint32 => parse_go_uint(raw, 32).map(drop),
        Kind::Int => parse_go_int(raw).map(drop),
        Kind::Duration => parse_go_duration(raw)
            .map(drop)
            .map_err(|_| "parse error".to_string()),
        Kind::Urls => parse_urls(raw).map(drop),
        Kind::UrlsOrStar => {
            if raw == "*" {
                Ok(())
            } else {
                parse_urls(raw).map(drop)
            }
        }
        Kind::Choice(valid) => {
            if valid.contains(&raw) {
                Ok(())
            } else {
                Err("invalid value".into())
            }
        }
        Kind::MultiChoice(valid) => {
            for v in raw.split(',') {
                if !valid.contains(&v) {
                    return Err(format!("invalid value {v:?}"));
                }
            }
            Ok(())
        }
    }
}

/// Whether a raw value means the same as etcd's default for the flag.
fn is_default(spec: &Spec, raw: &str) -> bool {
    match spec.kind {
        Kind::Bool => parse_go_bool(raw).ok() == parse_go_bool(spec.default).ok(),
        Kind::Uint | Kind::Uint32 => {
            parse_go_uint(raw, 64).ok() == parse_go_uint(spec.default, 64).ok()
        }
        Kind::Int => parse_go_int(raw).ok() == parse_go_int(spec.default).ok(),
        Kind::Duration => parse_go_duration(raw).ok() == parse_go_duration(spec.default).ok(),
        _ => raw.trim() == spec.default,
    }
}

// ---------------------------------------------------------------------------
// Go value syntax.
// ---------------------------------------------------------------------------

/// `strconv.ParseBool`, with the flag package's error text.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// `strconv.ParseUint(s, 0, bits)` (Go's base prefixes: 0x, 0o, 0b, leading
/// 0 for octal; underscores only after a prefix), with the flag package's
/// error texts.
fn parse_go_uint(s: &str, bits: u32) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (r, 16, true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r, 2, true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (r, 8, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8, true)
    } else {
        (lower.as_str(), 10, false)
    };
    if !prefixed && digits.contains('_') {
        return Err("parse error".into());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error".into());
    }
    let v = u64::from_str_radix(&digits, radix).map_err(|_| "value out of range".to_string())?;
    if bits < 64 && v >= 1u64 << bits {
        return Err("value out of range".into());
    }
    Ok(v)
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = parse_go_uint(body, 64)?;
    if neg {
        if v > i64::MAX as u64 + 1 {
            return Err("value out of range".into());
        }
        Ok((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).map_err(|_| "value out of range".to_string())
    }
}

/// A URL that passed `types.NewURLs`' checks.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    /// As Go's `url.String()` would print it (scheme lower-cased).
    text: String,
    scheme: String,
    host: String,
}

/// `net.SplitHostPort`.
fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let missing_port = || format!("address {hostport}: missing port in address");
    let too_many = || format!("address {hostport}: too many colons in address");
    if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("address {hostport}: missing ']' in address"))?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = after.strip_prefix(':').ok_or_else(|| {
            if after.is_empty() {
                missing_port()
            } else {
                too_many()
            }
        })?;
        if port.contains(':') {
            return Err(too_many());
        }
        return Ok((host.to_string(), port.to_string()));
    }
    let i = hostport.rfind(':').ok_or_else(missing_port)?;
    let (host, port) = (&hostport[..i], &hostport[i + 1..]);
    if host.contains(':') {
        return Err(too_many());
    }
    if host.contains('[') || host.contains(']') || port.contains('[') || port.contains(']') {
        return Err(format!(
            "address {hostport}: unexpected '[' or ']' in address"
        ));
    }
    Ok((host.to_string(), port.to_string()))
}

/// One URL, checked like etcd's `types.NewURLs` (same messages).
fn parse_url(raw: &str) -> Result<Url, String> {
    let s = raw.trim();
    let scheme_err = || format!("URL scheme must be http, https, unix, or unixs: {s}");
    let colon = s.find(':').ok_or_else(scheme_err)?;
    let scheme = s[..colon].to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(scheme_err());
    }
    let rest = &s[colon + 1..];
    let hostport_err = || format!("URL address does not have the form \"host:port\": {s}");
    let Some(after_slashes) = rest.strip_prefix("//") else {
        return Err(hostport_err());
    };
    let auth_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let authority = &after_slashes[..auth_end];
    let tail = &after_slashes[auth_end..];
    let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, _port) = split_host_port(hostport).map_err(|_| hostport_err())?;
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {s}"));
    }
    Ok(Url {
        text: format!("{scheme}://{after_slashes}"),
        scheme,
        host,
    })
}

/// A comma-separated URL flag value: checked, sorted and de-duplicated as
/// etcd's `flags.UniqueURLs` does.
fn parse_urls(raw: &str) -> Result<Vec<Url>, String> {
    let mut out = raw
        .split(',')
        .map(parse_url)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.text.cmp(&b.text));
    out.dedup_by(|a, b| a.text == b.text);
    Ok(out)
}

/// etcd's `checkBindURLs`: listen URLs must name an IP (or localhost).
fn check_bind_urls(urls: &[Url]) -> Result<(), String> {
    for u in urls {
        if u.scheme == "unix" || u.scheme == "unixs" || u.host == "localhost" {
            continue;
        }
        if u.host.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("expected IP in URL for binding ({})", u.text));
        }
    }
    Ok(())
}

/// etcd's `checkHostURLs`: advertised URLs need a host.
fn check_host_urls(urls: &[Url]) -> Result<(), String> {
    for u in urls {
        if u.host.is_empty() {
            return Err(format!("unexpected empty host ({})", u.text));
        }
    }
    Ok(())
}

fn join_urls(urls: &[Url]) -> String {
    urls.iter()
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `--initial-cluster`: `name=url,name=url,...`, in flag order. One name may
/// appear several times (a member with several peer URLs).
fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in s.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((name, url)) = entry.split_once('=') else {
            return Err(format!(
                "--initial-cluster {s:?}: entry {entry:?} is not of the form name=peer-url"
            ));
        };
        if name.is_empty() {
            return Err(format!(
                "--initial-cluster {s:?}: entry {entry:?} has an empty member name"
            ));
        }
        let url = parse_url(url).map_err(|e| format!("--initial-cluster {s:?}: {e}"))?;
        out.push((name.to_string(), url.text));
    }
    Ok(out)
}

/// etcd's `parseCompactionRetention` check (embed/etcd.go).
fn check_compaction_retention(retention: &str) -> Result<(), String> {
    if let Ok(h) = retention.parse::<i64>() {
        if h >= 0 {
            return Ok(());
        }
    }
    parse_go_duration(retention)
        .map(drop)
        .map_err(|e| format!("error parsing CompactionRetention: {e}"))
}

// ---------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------

/// Parses `args` (including `argv[0]`) and the environment the way etcd 3.5
/// does, into a checked configuration.
pub fn parse(args: Vec<String>, env: &[(String, String)]) -> Result<Command, FlagError> {
    let argv = args.get(1..).unwrap_or(&[]);
    if let Some(first) = argv.first() {
        if first == "gateway" || first == "grpc-proxy" {
            return Err(FlagError::invalid(format!(
                "'etcd {first}' is not supported by rustcd: rustcd only runs as a cluster member"
            )));
        }
    }

    // Go's flag.FlagSet.Parse.
    let mut cli = Values::default();
    let mut i = 0;
    let mut positional: Option<&str> = None;
    while i < argv.len() {
        let s = argv[i].as_str();
        let b = s.as_bytes();
        if b.len() < 2 || b[0] != b'-' {
            positional = Some(s);
            break;
        }
        let mut minuses = 1;
        if b[1] == b'-' {
            minuses = 2;
            if b.len() == 2 {
                // "--" ends the flags.
                positional = argv.get(i + 1).map(String::as_str);
                break;
            }
        }
        let body = &s[minuses..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::usage(format!("bad flag syntax: {s}")));
        }
        i += 1;
        let (name, value) = match body.find('=') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        let Some(spec) = lookup(name) else {
            if name == "help" || name == "h" {
                return Ok(Command::Help(help_text()));
            }
            return Err(FlagError::usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        if spec.kind.is_bool_like() {
            match value {
                Some(v) => cli.set(spec, v).map_err(|e| {
                    FlagError::usage(format!("invalid boolean value {v:?} for -{name}: {e}"))
                })?,
                None => cli
                    .set(spec, "true")
                    .map_err(|e| FlagError::usage(format!("invalid boolean flag {name}: {e}")))?,
            }
        } else {
            let v = match value {
                Some(v) => v,
                None => {
                    let Some(next) = argv.get(i) else {
                        return Err(FlagError::usage(format!("flag needs an argument: -{name}")));
                    };
                    i += 1;
                    next.as_str()
                }
            };
            cli.set(spec, v).map_err(|e| {
                FlagError::usage(format!("invalid value {v:?} for flag -{name}: {e}"))
            })?;
        }
        if !cli.cmdline.contains(&spec.name) {
            cli.cmdline.push(spec.name);
        }
    }
    if let Some(p) = positional {
        return Err(FlagError::invalid(format!("'{p}' is not a valid flag")));
    }
    if cli.bool("version") {
        return Ok(Command::Version);
    }

    let env_map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The config file replaces everything else.
    let config_file = cli
        .non_empty("config-file")
        .map(str::to_string)
        .or_else(|| {
            env_map
                .get("ETCD_CONFIG_FILE")
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        });
    if let Some(path) = config_file {
        let mut file = Values::default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| FlagError::invalid(format!("cannot read config file {path:?}: {e}")))?;
        load_config_file(&mut file, &path, &text)?;
        let ignored_flags: Vec<String> = cli
            .cmdline
            .iter()
            .filter(|n| **n != "config-file")
            .map(|n| format!("--{n}"))
            .collect();
        let ignored_env: Vec<&str> = env
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("ETCD_") && *k != "ETCD_CONFIG_FILE")
            .collect();
        if !ignored_flags.is_empty() || !ignored_env.is_empty() {
            let mut what = Vec::new();
            if !ignored_flags.is_empty() {
                what.push(format!("command-line flags {}", ignored_flags.join(" ")));
            }
            if !ignored_env.is_empty() {
                what.push(format!("environment variables {}", ignored_env.join(" ")));
            }
            file.warnings.push(format!(
                "loaded server configuration from {path:?}; ignoring {}",
                what.join(" and ")
            ));
        }
        return build(file, Mode::File);
    }

    apply_env(&mut cli, env, &env_map)?;
    build(cli, Mode::CmdLine)
}

/// etcd's `flags.SetFlagsFromEnv` + `verifyEnv`.
fn apply_env(
    cli: &mut Values,
    env: &[(String, String)],
    env_map: &HashMap<&str, &str>,
) -> Result<(), FlagError> {
    let mut used_keys: HashSet<String> = HashSet::new();
    let mut shadowed: HashSet<String> = HashSet::new();
    for spec in SPECS {
        let key = env_key(spec.name);
        if key == "ETCD_VERSION" {
            continue; // Special: etcd unsets it and warns.
        }
        if cli.cmdline.contains(&spec.name) {
            shadowed.insert(key);
            continue;
        }
        if let Some(v) = env_map.get(key.as_str()).filter(|v| !v.is_empty()) {
            cli.set(spec, v)
                .map_err(|e| FlagError::invalid(format!("invalid value {v:?} for {key}: {e}")))?;
            used_keys.insert(key);
        }
    }
    for (k, v) in env {
        if used_keys.contains(k) {
            continue;
        }
        if k == "ETCD_VERSION" {
            if !v.is_empty() {
                cli.warnings.push(format!(
                    "cannot set special environment variable ETCD_VERSION={v} (ignored)"
                ));
            }
            continue;
        }
        if shadowed.contains(k) {
            let msg = format!(
                "conflicting environment variable {k:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            );
            if SHADOWED_ENV_IS_FATAL {
                return Err(FlagError::invalid(msg));
            }
            cli.warnings
                .push(format!("{msg}; using the command-line value"));
            continue;
        }
        if k.starts_with("ETCD_") && k != "ETCD_UNSUPPORTED_ARCH" {
            cli.warnings
                .push(format!("unrecognized environment variable {k}={v}"));
        }
    }
    Ok(())
}

/// Where the values came from: the two paths differ in small ways in etcd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    CmdLine,
    File,
}

/// etcd's `configFromCmdLine` / `configFromFile` tail, `Config.Validate`,
/// `UpdateDefaultClusterFromName` and the data-dir default, in etcd's order.
fn build(v: Values, mode: Mode) -> Result<Command, FlagError> {
    fn err(message: impl Into<String>) -> FlagError {
        FlagError::invalid(message)
    }
    let mut warnings = v.warnings.clone();

    let name = v.get_or_default("name").to_string();

    // setupLogging.
    let logger = v.get_or_default("logger");
    let mut json = match logger {
        "zap" => true,
        "capnslog" => false,
        other => return Err(err(format!("unknown logger option {other:?}"))),
    };
    match v.get_or_default("log-format") {
        "json" => {}
        "console" => json = false,
        other => return Err(err(format!("unsupported log format: {other}"))),
    }
    let level = match v.get("log-level") {
        Some(l) => l.to_string(),
        None if v.bool("debug") => "debug".to_string(),
        None => "info".to_string(),
    };
    let level = match level.as_str() {
        "" => "info".to_string(),
        "debug" | "DEBUG" | "info" | "INFO" | "warn" | "WARN" | "error" | "ERROR" | "dpanic"
        | "DPANIC" | "panic" | "PANIC" | "fatal" | "FATAL" => level.to_ascii_lowercase(),
        other => return Err(err(format!("unrecognized level: {other:?}"))),
    };
    let outputs: Vec<&str> = v
        .get_or_default("log-outputs")
        .split(',')
        .filter(|o| !o.is_empty())
        .collect();
    if outputs.len() > 1 && outputs.contains(&"default") {
        return Err(err("multi logoutput for \"default\" is not supported yet"));
    }
    if outputs.iter().any(|o| *o != "default" && *o != "stderr") {
        warnings.push(format!(
            "--log-outputs={} is not supported yet: rustcd logs to stderr",
            outputs.join(",")
        ));
    }

    // URLs.
    let urls = |flag: &str, default: &str| -> Result<Vec<Url>, FlagError> {
        match v.get(flag) {
            Some(raw) => parse_urls(raw).map_err(|e| err(format!("invalid --{flag}: {e}"))),
            None if default.is_empty() => Ok(Vec::new()),
            None => parse_urls(default).map_err(|e| err(e.to_string())),
        }
    };
    let lpurls = urls("listen-peer-urls", DEFAULT_LISTEN_PEER_URLS)?;
    let lcurls = urls("listen-client-urls", DEFAULT_LISTEN_CLIENT_URLS)?;
    let apurls = urls(
        "initial-advertise-peer-urls",
        DEFAULT_INITIAL_ADVERTISE_PEER_URLS,
    )?;
    let mut acurls = Some(urls(
        "advertise-client-urls",
        DEFAULT_ADVERTISE_CLIENT_URLS,
    )?);
    let metrics_urls = urls("listen-metrics-urls", "")?;
    // "disable default advertise-client-urls if lcurls is set"
    if mode == Mode::CmdLine && v.is_set("listen-client-urls") && !v.is_set("advertise-client-urls")
    {
        acurls = None;
    }
    check_bind_urls(&lpurls).map_err(err)?;
    check_bind_urls(&lcurls).map_err(err)?;
    check_bind_urls(&metrics_urls).map_err(err)?;
    check_host_urls(&apurls).map_err(|e| {
        err(format!(
            "--initial-advertise-peer-urls {:?} must be \"host:port\" ({e})",
            join_urls(&apurls)
        ))
    })?;
    if let Some(ac) = &acurls {
        check_host_urls(ac).map_err(|e| {
            err(format!(
                "--advertise-client-urls {:?} must be \"host:port\" ({e})",
                join_urls(ac)
            ))
        })?;
    }

    // Bootstrap flags.
    let durl = v.get_or_default("discovery").to_string();
    let dns = v.get_or_default("discovery-srv").to_string();
    let dns_name = v.get_or_default("discovery-srv-name");
    let mut initial_cluster = v.get_or_default("initial-cluster").to_string();
    match mode {
        Mode::CmdLine => {
            if (!durl.is_empty() || !dns.is_empty() || !dns_name.is_empty())
                && !v.is_set("initial-cluster")
            {
                initial_cluster.clear();
            }
        }
        Mode::File => {
            if (!durl.is_empty() || !dns.is_empty()) && initial_cluster == DEFAULT_INITIAL_CLUSTER {
                initial_cluster.clear();
            }
        }
    }
    let cluster_state = match v.get_or_default("initial-cluster-state") {
        "new" | "" => ClusterState::New,
        "existing" => ClusterState::Existing,
        other => return Err(err(format!("unexpected clusterState {other:?}"))),
    };
    let bootstrap_sources = [&durl, &initial_cluster, &dns]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    if bootstrap_sources > 1 {
        return Err(err(
            "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"",
        ));
    }

    // Raft timing.
    let uint = |flag: &str| -> Result<u64, FlagError> {
        parse_go_uint(v.get_or_default(flag), 64).map_err(|e| err(format!("invalid --{flag}: {e}")))
    };
    let tick_ms = uint("heartbeat-interval")?;
    let election_ms = uint("election-timeout")?;
    if tick_ms == 0 {
        return Err(err(format!(
            "--heartbeat-interval must be >0 (set to {tick_ms}ms)"
        )));
    }
    if election_ms == 0 {
        return Err(err(format!(
            "--election-timeout must be >0 (set to {election_ms}ms)"
        )));
    }
    if tick_ms.saturating_mul(5) > election_ms {
        return Err(err(format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as --heartbeat-interval[{tick_ms}ms]"
        )));
    }
    if election_ms > MAX_ELECTION_MS {
        return Err(err(format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        )));
    }

    // "check this last since proxying in etcdmain may make this OK"
    let Some(acurls) = acurls else {
        return Err(err(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly",
        ));
    };

    let auto_compaction_mode = match v.get_or_default("auto-compaction-mode") {
        "periodic" | "" => AutoCompactionMode::Periodic,
        "revision" => AutoCompactionMode::Revision,
        other => return Err(err(format!("unknown auto-compaction-mode {other:?}"))),
    };

    let lease_checkpoint = v.bool("experimental-enable-lease-checkpoint");
    let lease_persist = v.bool("experimental-enable-lease-checkpoint-persist");
    if lease_checkpoint && !lease_persist {
        warnings.push("Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist".into());
    }
    if lease_persist && !lease_checkpoint {
        return Err(err("setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"));
    }
    let hash_check_time = v.get_or_default("experimental-compact-hash-check-time");
    if parse_go_duration(hash_check_time).unwrap_or(0) <= 0 {
        return Err(err(format!(
            "--experimental-compact-hash-check-time must be >0 (set to {hash_check_time})"
        )));
    }

    // TLS versions (embed.Config.Validate, 3.5.x).
    let tls_version = |flag: &str| -> Result<u8, FlagError> {
        match v.get_or_default(flag) {
            "" => Ok(0),
            "TLS1.2" => Ok(2),
            "TLS1.3" => Ok(3),
            other => Err(err(format!(
                "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    };
    let (tls_min, tls_max) = (
        tls_version("tls-min-version")?,
        tls_version("tls-max-version")?,
    );
    if tls_max != 0 && tls_min > tls_max {
        return Err(err(format!(
            "min version ({}) is greater than max version ({})",
            v.get_or_default("tls-min-version"),
            v.get_or_default("tls-max-version")
        )));
    }
    if tls_min == 3 && !v.get_or_default("cipher-suites").is_empty() {
        return Err(err(
            "cipher suites cannot be configured when only TLS1.3 is enabled",
        ));
    }

    // What rustcd cannot do: better a clear error than a member that quietly
    // bootstraps (or runs) as something else than was asked.
    if !durl.is_empty() {
        return Err(err(
            "--discovery is not supported by rustcd; bootstrap with --initial-cluster",
        ));
    }
    if !dns.is_empty() {
        return Err(err(
            "--discovery-srv is not supported by rustcd; bootstrap with --initial-cluster",
        ));
    }
    let proxy = v.get_or_default("proxy");
    if proxy != "off" {
        return Err(err(format!(
            "--proxy={proxy} is not supported by rustcd: it does not implement the v2 proxy"
        )));
    }

    // UpdateDefaultClusterFromName: `etcd --name=abc` alone bootstraps
    // "abc=<initial-advertise-peer-urls>".
    if name != DEFAULT_NAME && initial_cluster == DEFAULT_INITIAL_CLUSTER && !apurls.is_empty() {
        let n = if name.is_empty() { DEFAULT_NAME } else { &name };
        initial_cluster = apurls
            .iter()
            .map(|u| format!("{n}={}", u.text))
            .collect::<Vec<_>>()
            .join(",");
    }
    let initial_cluster = parse_initial_cluster(&initial_cluster).map_err(err)?;

    let retention = v.get_or_default("auto-compaction-retention");
    let retention = if retention.is_empty() { "0" } else { retention };
    check_compaction_retention(retention).map_err(err)?;

    let quota = parse_go_int(v.get_or_default("quota-backend-bytes"))
        .map_err(|e| err(format!("invalid --quota-backend-bytes: {e}")))?;
    let quota_backend_bytes = u64::try_from(quota).map_err(|_| {
        err(format!(
            "--quota-backend-bytes={quota}: a negative quota (no quota at all) is not supported by rustcd"
        ))
    })?;
    let to_usize = |flag: &str| -> Result<usize, FlagError> {
        usize::try_from(uint(flag)?).map_err(|_| err(format!("--{flag} is too large")))
    };
    let notify_flag = "experimental-watch-progress-notify-interval";
    let notify = parse_go_duration(v.get_or_default(notify_flag))
        .map_err(|e| err(format!("invalid --{notify_flag}: {e}")))?;
    let notify =
        u64::try_from(notify).map_err(|_| err(format!("--{notify_flag} must not be negative")))?;

    let data_dir = match v.non_empty("data-dir") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(format!("{name}.etcd")),
    };
    let path = |flag: &str| v.non_empty(flag).map(PathBuf::from);

    let cfg = ServerConfig {
        name,
        data_dir,
        wal_dir: path("wal-dir"),
        listen_client_urls: lcurls.into_iter().map(|u| u.text).collect(),
        advertise_client_urls: acurls.into_iter().map(|u| u.text).collect(),
        listen_peer_urls: lpurls.into_iter().map(|u| u.text).collect(),
        initial_advertise_peer_urls: apurls.into_iter().map(|u| u.text).collect(),
        initial_cluster,
        initial_cluster_token: v.get_or_default("initial-cluster-token").to_string(),
        initial_cluster_state: cluster_state,
        snapshot_count: uint("snapshot-count")?,
        heartbeat_interval: Duration::from_millis(tick_ms),
        election_timeout: Duration::from_millis(election_ms),
        quota_backend_bytes,
        max_request_bytes: to_usize("max-request-bytes")?,
        max_txn_ops: to_usize("max-txn-ops")?,
        auto_compaction_mode,
        auto_compaction_retention: retention.to_string(),
        strict_reconfig_check: v.bool("strict-reconfig-check"),
        pre_vote: v.bool("pre-vote"),
        watch_progress_notify_interval: Duration::from_nanos(notify),
        lease_checkpoint,
        auth_token: v.get_or_default("auth-token").to_string(),
        listen_metrics_urls: metrics_urls.into_iter().map(|u| u.text).collect(),
        client_tls: TlsConfig {
            cert_file: path("cert-file"),
            key_file: path("key-file"),
            trusted_ca_file: path("trusted-ca-file"),
            client_cert_auth: v.bool("client-cert-auth"),
            auto_tls: v.bool("auto-tls"),
        },
        peer_tls: TlsConfig {
            cert_file: path("peer-cert-file"),
            key_file: path("peer-key-file"),
            trusted_ca_file: path("peer-trusted-ca-file"),
            client_cert_auth: v.bool("peer-client-cert-auth"),
            auto_tls: v.bool("peer-auto-tls"),
        },
        log: LogConfig { json, level },
    };

    // Accepted but unused: report those that differ from etcd's default.
    for spec in SPECS {
        if spec.used || spec.kind == Kind::Ignored {
            continue;
        }
        if let Some(raw) = v.get(spec.name) {
            if !is_default(spec, raw) {
                warnings.push(format!(
                    "--{}={raw} is accepted for etcd compatibility but not used by rustcd (ignored)",
                    spec.name
                ));
            }
        }
    }

    Ok(Command::Run(Box::new(cfg), warnings))
}

// ---------------------------------------------------------------------------
// Config file.
//
// etcd reads it with sigs.k8s.io/yaml (YAML → JSON → Go struct). The
// workspace has no YAML crate and we keep dependencies lean, so this is a
// small parser for the subset etcd's config files use (etcd.conf.yml.sample):
// top-level `key: value` lines with plain, 'single' or "double" quoted
// scalars, `#` comments, empty values (null: keep the default), lists as
// `[a, b]` (possibly over several lines) or `- item` lines, and one level of
// nested mapping for `client-transport-security`, `peer-transport-security`
// and `socket-options` (block or `{k: v, ...}`). Anchors, tags, multi-line
// strings and deeper nesting are rejected with the file and line.
//
// Values are read leniently where etcd's JSON step would be strict: a plain
// `1` is accepted for a string key, a list for a comma-string key, and a
// duration as either Go's JSON form (integer nanoseconds) or a Go duration
// string ("10m"). Unknown keys are ignored, as etcd ignores them, but
// reported in the warnings.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum YVal {
    Null,
    Scalar { text: String, quoted: bool },
    List(Vec<String>),
    Map(Vec<YEntry>),
}

#[derive(Clone, Debug, PartialEq)]
struct YEntry {
    key: String,
    value: YVal,
    line: usize,
}

/// A significant line: number (1-based), indentation, content.
type YLine<'a> = (usize, usize, &'a str);

fn parse_yaml(text: &str) -> Result<Vec<YEntry>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<YLine<'_>> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        let trimmed = content.trim_end();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if content.starts_with('\t') {
            return Err((no, "tabs are not allowed for indentation".into()));
        }
        if indent == 0 && (strip_comment(trimmed) == "---" || strip_comment(trimmed) == "...") {
            continue;
        }
        lines.push((no, indent, trimmed));
    }
    let mut out: Vec<YEntry> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (no, indent, s) = lines[i];
        if indent != 0 {
            return Err((no, "unexpected indentation".into()));
        }
        let (key, rest) = split_key(s).map_err(|m| (no, m))?;
        i += 1;
        let value = parse_yaml_value(rest, &lines, &mut i, 0, no, true)?;
        if out.iter().any(|e| e.key == key) {
            return Err((no, format!("duplicate key {key:?}")));
        }
        out.push(YEntry {
            key,
            value,
            line: no,
        });
    }
    Ok(out)
}

/// Splits `key: rest` (key plain or quoted).
fn split_key(s: &str) -> Result<(String, &str), String> {
    if s.starts_with("- ") || s == "-" {
        return Err("unexpected list item: expected `key: value`".into());
    }
    if s.starts_with('"') || s.starts_with('\'') {
        let (key, rest) = parse_quoted(s)?;
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            return Err("expected `:` after the key".into());
        };
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            return Err("expected a space after `:`".into());
        }
        return Ok((key, rest.trim_start()));
    }
    let bytes = s.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t') {
            let key = s[..i].trim_end();
            if key.is_empty() {
                return Err("empty key".into());
            }
            return Ok((key.to_string(), s[i + 1..].trim_start()));
        }
    }
    Err("expected `key: value`".into())
}

/// Removes a trailing `# comment` (outside quotes) and surrounding blanks.
fn strip_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(b'"') => {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    quote = None;
                }
            }
            Some(_) => {
                if c == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        quote = None;
                    }
                }
            }
            None => {
                if (c == b'"' || c == b'\'')
                    && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'[' | b',' | b'{' | b':'))
                {
                    quote = Some(c);
                } else if c == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) {
                    return s[..i].trim();
                }
            }
        }
        i += 1;
    }
    s.trim()
}

/// A quoted scalar at the start of `s`: (value, the rest after the quote).
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, q)) = chars.next() else {
        return Err("expected a quoted string".into());
    };
    let mut out = String::new();
    if q == '\'' {
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if s[i + 1..].starts_with('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((out, &s[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        return Err("unterminated quoted string".into());
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    ' ' => out.push(' '),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..n)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == n)
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid escape \\{e}{hex}"))?;
                        out.push(ch);
                    }
                    other => return Err(format!("unsupported escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// A scalar (plain or quoted) that must fill `s`.
fn parse_scalar(s: &str) -> Result<YVal, String> {
    let s = strip_comment(s);
    if s.starts_with('"') || s.starts_with('\'') {
        let (text, rest) = parse_quoted(s)?;
        if !rest.trim().is_empty() {
            return Err(format!(
                "unexpected text after the quoted string: {:?}",
                rest.trim()
            ));
        }
        return Ok(YVal::Scalar { text, quoted: true });
    }
    if let Some(c) = s.chars().next() {
        if "|>&*!%@`".contains(c) {
            return Err(format!(
                "unsupported YAML syntax {s:?} (rustcd reads a simple subset of YAML)"
            ));
        }
    }
    if matches!(s, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(YVal::Null);
    }
    Ok(YVal::Scalar {
        text: s.to_string(),
        quoted: false,
    })
}

/// Splits the inside of a flow collection on commas outside quotes.
fn split_flow(inner: &str) -> Result<Vec<&str>, String> {
    let bytes = inner.as_bytes();
    let mut parts = Vec::new();
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(b'"') if c == b'\\' => i += 1,
            Some(q) if c == q => {
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'{' => return Err("nested collections are not supported".into()),
                b',' => {
                    parts.push(inner[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(inner[start..].trim());
    Ok(parts.into_iter().filter(|p| !p.is_empty()).collect())
}

/// Gathers a flow collection (`[...]` or `{...}`) that may go on over the
/// next lines; returns its inside.
fn gather_flow(
    first: &str,
    close: char,
    lines: &[YLine<'_>],
    i: &mut usize,
    no: usize,
) -> Result<String, (usize, String)> {
    let mut buf = strip_comment(first).to_string();
    loop {
        if let Some(end) = flow_end(&buf, close) {
            let rest = buf[end + 1..].trim();
            if !rest.is_empty() {
                return Err((no, format!("unexpected text after `{close}`: {rest:?}")));
            }
            return Ok(buf[1..end].to_string());
        }
        let Some(&(_, _, s)) = lines.get(*i) else {
            return Err((no, format!("missing `{close}`")));
        };
        *i += 1;
        buf.push(' ');
        buf.push_str(strip_comment(s));
    }
}

/// The index of the `close` bracket that ends `s` (quote-aware).
fn flow_end(s: &str, close: char) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 1;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(b'"') if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == close as u8 => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

fn scalar_text(v: YVal) -> Option<String> {
    match v {
        YVal::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// The value after `key:`; may consume following lines (block list, nested
/// map, multi-line flow collection).
fn parse_yaml_value(
    rest: &str,
    lines: &[YLine<'_>],
    i: &mut usize,
    parent_indent: usize,
    no: usize,
    allow_map: bool,
) -> Result<YVal, (usize, String)> {
    let rest = strip_comment(rest);
    if rest.starts_with('[') {
        let inner = gather_flow(rest, ']', lines, i, no)?;
        let mut items = Vec::new();
        for part in split_flow(&inner).map_err(|m| (no, m))? {
            match parse_scalar(part).map_err(|m| (no, m))? {
                YVal::Null => {}
                v => items.extend(scalar_text(v)),
            }
        }
        return Ok(YVal::List(items));
    }
    if rest.starts_with('{') {
        if !allow_map {
            return Err((no, "nesting deeper than one level is not supported".into()));
        }
        let inner = gather_flow(rest, '}', lines, i, no)?;
        let mut entries: Vec<YEntry> = Vec::new();
        for part in split_flow(&inner).map_err(|m| (no, m))? {
            let (key, value) = split_key(part).map_err(|m| (no, m))?;
            let value = parse_scalar(value).map_err(|m| (no, m))?;
            entries.push(YEntry {
                key,
                value,
                line: no,
            });
        }
        return Ok(YVal::Map(entries));
    }
    if !rest.is_empty() {
        return parse_scalar(rest).map_err(|m| (no, m));
    }
    // Empty: null, or a block below.
    let Some(&(_, indent, first)) = lines.get(*i) else {
        return Ok(YVal::Null);
    };
    let is_item = |s: &str| s == "-" || s.starts_with("- ");
    if is_item(first) && indent >= parent_indent {
        let mut items = Vec::new();
        while let Some(&(lno, ind, s)) = lines.get(*i) {
            if ind != indent || !is_item(s) {
                if ind > indent {
                    return Err((lno, "unexpected indentation in list".into()));
                }
                break;
            }
            *i += 1;
            let item = s[1..].trim_start();
            if item.starts_with('[') || item.starts_with('{') || split_key(item).is_ok() {
                return Err((lno, "nested collections in lists are not supported".into()));
            }
            match parse_scalar(item).map_err(|m| (lno, m))? {
                YVal::Null => {}
                v => items.extend(scalar_text(v)),
            }
        }
        return Ok(YVal::List(items));
    }
    if indent <= parent_indent {
        return Ok(YVal::Null);
    }
    if !allow_map {
        return Err((
            lines[*i].0,
            "nesting deeper than one level is not supported".into(),
        ));
    }
    let mut entries: Vec<YEntry> = Vec::new();
    while let Some(&(lno, ind, s)) = lines.get(*i) {
        if ind <= parent_indent {
            break;
        }
        if ind != indent {
            return Err((lno, "inconsistent indentation".into()));
        }
        let (key, rest) = split_key(s).map_err(|m| (lno, m))?;
        *i += 1;
        let value = parse_yaml_value(rest, lines, i, indent, lno, false)?;
        if entries.iter().any(|e| e.key == key) {
            return Err((lno, format!("duplicate key {key:?}")));
        }
        entries.push(YEntry {
            key,
            value,
            line: lno,
        });
    }
    Ok(YVal::Map(entries))
}

/// A YAML value as the flag text etcd's field would hold; `None` keeps the
/// default (YAML null, or an empty URL string, which etcd skips).
fn yaml_flag_text(spec: &Spec, v: &YVal) -> Result<Option<String>, String> {
    match v {
        YVal::Null => Ok(None),
        YVal::Scalar { text, quoted } => Ok(match spec.kind {
            Kind::Bool if !quoted => Some(
                match text.as_str() {
                    "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => "true",
                    "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => "false",
                    t => t,
                }
                .to_string(),
            ),
            // Go's JSON form of time.Duration: integer nanoseconds.
            Kind::Duration if is_decimal_int(text) => Some(format!("{text}ns")),
            Kind::Urls | Kind::UrlsOrStar if text.is_empty() => None,
            _ => Some(text.clone()),
        }),
        YVal::List(items) => match spec.kind {
            Kind::Urls | Kind::UrlsOrStar | Kind::Strings | Kind::MultiChoice(_) => {
                if items.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(items.join(",")))
                }
            }
            _ => Err("expected a single value, not a list".into()),
        },
        YVal::Map(_) => Err("expected a single value, not a mapping".into()),
    }
}

/// `-?[0-9]+`.
fn is_decimal_int(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Reads etcd's YAML config file into `v`.
fn load_config_file(v: &mut Values, path: &str, text: &str) -> Result<(), FlagError> {
    let at = |line: usize, msg: String| {
        FlagError::invalid(format!("config file {path:?}: line {line}: {msg}"))
    };
    let entries = parse_yaml(text).map_err(|(line, m)| at(line, m))?;
    let apply = |v: &mut Values, flag: &str, key: &str, value: &YVal, line: usize| {
        let spec = spec(flag);
        let text = yaml_flag_text(spec, value).map_err(|m| at(line, format!("{key:?}: {m}")))?;
        if let Some(t) = text {
            v.set(spec, &t)
                .map_err(|e| at(line, format!("invalid value {t:?} for {key:?}: {e}")))?;
        }
        Ok::<(), FlagError>(())
    };
    for e in &entries {
        match e.key.as_str() {
            section @ ("client-transport-security"
            | "peer-transport-security"
            | "socket-options") => {
                let sub = match &e.value {
                    YVal::Null => continue,
                    YVal::Map(sub) => sub,
                    _ => return Err(at(e.line, format!("{section:?}: expected a mapping"))),
                };
                let peer = section == "peer-transport-security";
                for s in sub {
                    let flag = match (section, s.key.as_str()) {
                        ("socket-options", "reuse-port") => Some("socket-reuse-port"),
                        ("socket-options", "reuse-address") => Some("socket-reuse-address"),
                        ("socket-options", _) => None,
                        (_, "cert-file") => Some(if peer { "peer-cert-file" } else { "cert-file" }),
                        (_, "key-file") => Some(if peer { "peer-key-file" } else { "key-file" }),
                        (_, "client-cert-auth") => Some(if peer {
                            "peer-client-cert-auth"
                        } else {
                            "client-cert-auth"
                        }),
                        (_, "trusted-ca-file") => Some(if peer {
                            "peer-trusted-ca-file"
                        } else {
                            "trusted-ca-file"
                        }),
                        (_, "auto-tls") => Some(if peer { "peer-auto-tls" } else { "auto-tls" }),
                        (_, "client-cert-file") => Some(if peer {
                            "peer-client-cert-file"
                        } else {
                            "client-cert-file"
                        }),
                        (_, "client-key-file") => Some(if peer {
                            "peer-client-key-file"
                        } else {
                            "client-key-file"
                        }),
                        _ => None,
                    };
                    let key = format!("{section}.{}", s.key);
                    match flag {
                        Some(f) => apply(v, f, &key, &s.value, s.line)?,
                        None => v.warnings.push(format!(
                            "config file {path:?}: line {}: unknown key {key:?} (ignored)",
                            s.line
                        )),
                    }
                }
            }
            key => match lookup(key) {
                Some(spec) if spec.file => apply(v, spec.name, key, &e.value, e.line)?,
                _ => v.warnings.push(format!(
                    "config file {path:?}: line {}: unknown key {key:?} (ignored)",
                    e.line
                )),
            },
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Version and help.
// ---------------------------------------------------------------------------

/// Go's GOOS/GOARCH names for this build.
fn go_os_arch() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    (os, arch)
}

/// `rustcd --version`, shaped like etcd's.
pub fn version_text() -> String {
    let (os, arch) = go_os_arch();
    let mut s = format!(
        "rustcd Version: {}\netcd API Version: 3.5\nGit SHA: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("RUSTCD_GIT_SHA").unwrap_or("unknown"),
    );
    if let Some(rustc) = option_env!("RUSTCD_RUSTC_VERSION") {
        s.push_str(&format!("Rust Version: {rustc}\n"));
    }
    s.push_str(&format!("OS/Arch: {os}/{arch}\n"));
    s
}

/// `rustcd --help`.
fn help_text() -> String {
    let mut s = String::from(
        "Usage:

  rustcd [flags]
    Start a rustcd member (an etcd v3 compatible server).

  rustcd --version
    Show the version of rustcd.

  rustcd -h | --help
    Show this help.

  rustcd --config-file FILE
    Read the configuration from an etcd YAML config file. Other command line
    flags and environment variables are then ignored.

Flags take one or two dashes (-name or --name) and a value as '--flag value'
or '--flag=value'; bool flags are '--flag' or '--flag=true|false'. Every flag
can also be set by an environment variable: ETCD_ + the name in upper case
with '-' turned into '_' (--initial-cluster is ETCD_INITIAL_CLUSTER). A flag
on the command line wins over its variable. Flags marked [ignored] are
accepted for etcd compatibility but have no effect in rustcd yet.
",
    );
    for (group, title) in GROUPS {
        s.push('\n');
        s.push_str(title);
        s.push_str(":\n");
        for spec in SPECS.iter().filter(|f| f.group == group) {
            let default = match spec.kind {
                Kind::Uint | Kind::Uint32 | Kind::Int => spec.default.to_string(),
                _ => format!("'{}'", spec.default),
            };
            s.push_str(&format!("  --{} {default}\n    {}", spec.name, spec.help));
            if !spec.used {
                s.push_str(" [ignored]");
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("rustcd")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run_env(cmdline: &str, vars: &[(&str, &str)]) -> (ServerConfig, Vec<String>) {
        match parse(args(cmdline), &env(vars)) {
            Ok(Command::Run(cfg, warnings)) => (*cfg, warnings),
            other => panic!("{cmdline:?}: expected Run, got {other:?}"),
        }
    }

    fn run(cmdline: &str) -> ServerConfig {
        run_env(cmdline, &[]).0
    }

    fn fail_env(cmdline: &str, vars: &[(&str, &str)]) -> FlagError {
        match parse(args(cmdline), &env(vars)) {
            Err(e) => e,
            Ok(other) => panic!("{cmdline:?}: expected an error, got {other:?}"),
        }
    }

    fn fail(cmdline: &str) -> FlagError {
        fail_env(cmdline, &[])
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        env(v)
    }

    /// A scratch config file, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &str) -> TempFile {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "rustcd-flags-test-{}-{}.yml",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn every_flag_name_is_unique_and_named_flags_exist() {
        let mut seen = HashSet::new();
        for s in SPECS {
            assert!(seen.insert(s.name), "duplicate flag {}", s.name);
        }
        for name in [
            "name",
            "data-dir",
            "wal-dir",
            "listen-client-urls",
            "advertise-client-urls",
            "listen-peer-urls",
            "initial-advertise-peer-urls",
            "initial-cluster",
            "initial-cluster-token",
            "initial-cluster-state",
            "snapshot-count",
            "heartbeat-interval",
            "election-timeout",
            "quota-backend-bytes",
            "max-request-bytes",
            "max-txn-ops",
            "auto-compaction-mode",
            "auto-compaction-retention",
            "strict-reconfig-check",
            "pre-vote",
            "experimental-watch-progress-notify-interval",
            "experimental-enable-lease-checkpoint",
            "experimental-enable-lease-checkpoint-persist",
            "experimental-compact-hash-check-enabled",
            "experimental-compact-hash-check-time",
            "auth-token",
            "bcrypt-cost",
            "auth-token-ttl",
            "listen-metrics-urls",
            "metrics",
            "enable-pprof",
            "cert-file",
            "key-file",
            "trusted-ca-file",
            "client-cert-auth",
            "auto-tls",
            "peer-cert-file",
            "peer-key-file",
            "peer-trusted-ca-file",
            "peer-client-cert-auth",
            "peer-auto-tls",
            "client-crl-file",
            "peer-crl-file",
            "peer-cert-allowed-cn",
            "peer-cert-allowed-hostname",
            "cipher-suites",
            "tls-min-version",
            "tls-max-version",
            "cors",
            "host-whitelist",
            "enable-v2",
            "v2-deprecation",
            "unsafe-no-fsync",
            "experimental-memory-mlock",
            "experimental-downgrade-check-time",
            "experimental-enable-distributed-tracing",
            "experimental-distributed-tracing-address",
            "experimental-distributed-tracing-service-name",
            "experimental-distributed-tracing-instance-id",
            "experimental-distributed-tracing-sampling-rate",
            "self-signed-cert-validity",
            "experimental-initial-corrupt-check",
            "experimental-corrupt-check-time",
            "socket-reuse-port",
            "socket-reuse-address",
            "log-outputs",
            "log-level",
            "logger",
            "enable-log-rotation",
            "log-rotation-config-json",
            "experimental-warning-apply-duration",
            "experimental-txn-mode-write-with-shared-buffer",
            "experimental-bootstrap-defrag-threshold-megabytes",
            "experimental-max-learners",
            "grpc-keepalive-min-time",
            "grpc-keepalive-interval",
            "grpc-keepalive-timeout",
            "max-concurrent-streams",
            "discovery",
            "discovery-fallback",
            "discovery-proxy",
            "discovery-srv",
            "discovery-srv-name",
            "proxy",
            "proxy-failure-wait",
            "proxy-refresh-interval",
            "proxy-dial-timeout",
            "proxy-write-timeout",
            "proxy-read-timeout",
            "force-new-cluster",
            "config-file",
            "version",
        ] {
            assert!(lookup(name).is_some(), "missing --{name}");
        }
    }

    #[test]
    fn defaults_equal_etcd() {
        let (cfg, warnings) = run_env("", &[]);
        assert_eq!(format!("{cfg:?}"), format!("{:?}", ServerConfig::default()));
        assert!(warnings.is_empty(), "{warnings:?}");
        // And spelled out, against etcd 3.5's embed.NewConfig.
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(cfg.listen_client_urls, ["http://localhost:2379"]);
        assert_eq!(cfg.advertise_client_urls, ["http://localhost:2379"]);
        assert_eq!(cfg.listen_peer_urls, ["http://localhost:2380"]);
        assert_eq!(cfg.initial_advertise_peer_urls, ["http://localhost:2380"]);
        assert_eq!(
            cfg.initial_cluster,
            pairs(&[("default", "http://localhost:2380")])
        );
        assert_eq!(cfg.initial_cluster_token, "etcd-cluster");
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
        assert_eq!(cfg.snapshot_count, 100_000);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(cfg.election_timeout, Duration::from_millis(1000));
        assert_eq!(cfg.max_request_bytes, 1_572_864);
        assert_eq!(cfg.max_txn_ops, 128);
        assert_eq!(cfg.watch_progress_notify_interval, Duration::from_secs(600));
        assert!(cfg.strict_reconfig_check);
        assert_eq!(cfg.auth_token, "simple");
        assert_eq!(
            cfg.log,
            LogConfig {
                json: true,
                level: "info".into()
            }
        );
    }

    #[test]
    fn scenario_command_line() {
        let cfg = run(
            "--name etcd0 --initial-advertise-peer-urls http://localhost:2380 \
             --listen-peer-urls http://localhost:2380 --advertise-client-urls http://localhost:2360 \
             --listen-client-urls http://localhost:2360 --initial-cluster-token etcd-cluster-1 \
             --initial-cluster etcd0=http://localhost:2380,etcd1=http://localhost:2381,etcd2=http://localhost:2382 \
             --initial-cluster-state new",
        );
        assert_eq!(cfg.name, "etcd0");
        assert_eq!(cfg.data_dir, PathBuf::from("etcd0.etcd"));
        assert_eq!(cfg.initial_advertise_peer_urls, ["http://localhost:2380"]);
        assert_eq!(cfg.listen_peer_urls, ["http://localhost:2380"]);
        assert_eq!(cfg.advertise_client_urls, ["http://localhost:2360"]);
        assert_eq!(cfg.listen_client_urls, ["http://localhost:2360"]);
        assert_eq!(cfg.initial_cluster_token, "etcd-cluster-1");
        assert_eq!(
            cfg.initial_cluster,
            pairs(&[
                ("etcd0", "http://localhost:2380"),
                ("etcd1", "http://localhost:2381"),
                ("etcd2", "http://localhost:2382"),
            ])
        );
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
        // Everything else stays at etcd's default.
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(cfg.election_timeout, Duration::from_millis(1000));
        assert_eq!(cfg.snapshot_count, 100_000);
    }

    #[test]
    fn single_dash_and_equals_forms() {
        let a = run("-name=n1 -data-dir /tmp/d -listen-client-urls=http://127.0.0.1:3379 -advertise-client-urls http://127.0.0.1:3379 --heartbeat-interval=50 -election-timeout 500");
        assert_eq!(a.name, "n1");
        assert_eq!(a.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(a.listen_client_urls, ["http://127.0.0.1:3379"]);
        assert_eq!(a.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(a.election_timeout, Duration::from_millis(500));
        // The last occurrence wins, as in Go.
        assert_eq!(run("--name a --name=b").name, "b");
        // Values may start with a dash: a non-bool flag always takes the next argument.
        assert_eq!(
            run("--initial-cluster-token -tok-").initial_cluster_token,
            "-tok-"
        );
        // "--" ends the flags.
        assert_eq!(run("--name x --").name, "x");
        assert_eq!(
            fail("--name x -- extra").message(),
            "'extra' is not a valid flag"
        );
    }

    #[test]
    fn bool_forms() {
        let c = run("--client-cert-auth --auto-tls=true -strict-reconfig-check=false --pre-vote=0 --experimental-enable-lease-checkpoint=T");
        assert!(c.client_tls.client_cert_auth);
        assert!(c.client_tls.auto_tls);
        assert!(!c.strict_reconfig_check);
        assert!(!c.pre_vote);
        assert!(c.lease_checkpoint);
        // Go: a bool flag never takes a separate value, so "false" ends the flags.
        let e = fail("--pre-vote false");
        assert_eq!(e.message(), "'false' is not a valid flag");
        assert_eq!(e.exit_code(), 1);
        let e = fail("--pre-vote=nope");
        assert!(e
            .message()
            .starts_with("invalid boolean value \"nope\" for -pre-vote: parse error"));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn urls_are_lists_checked_sorted_and_deduplicated() {
        let c = run("--listen-client-urls http://127.0.0.1:2379,http://localhost:2379,http://127.0.0.1:2379 --advertise-client-urls=https://a.example:2379,http://b.example:2379");
        assert_eq!(
            c.listen_client_urls,
            ["http://127.0.0.1:2379", "http://localhost:2379"]
        );
        assert_eq!(
            c.advertise_client_urls,
            ["http://b.example:2379", "https://a.example:2379"]
        );
        assert_eq!(
            fail("--listen-peer-urls localhost:2380").message(),
            "invalid value \"localhost:2380\" for flag -listen-peer-urls: URL scheme must be http, https, unix, or unixs: localhost:2380\nRun 'rustcd --help' for the list of flags."
        );
        assert!(fail("--listen-peer-urls http://localhost")
            .message()
            .contains("URL address does not have the form \"host:port\": http://localhost"));
        assert!(fail("--listen-peer-urls http://localhost:2380/x")
            .message()
            .contains("URL must not contain a path: http://localhost:2380/x"));
        // Binding needs an IP (or localhost).
        let e = fail("--listen-peer-urls http://example.com:2380");
        assert_eq!(
            e.message(),
            "expected IP in URL for binding (http://example.com:2380)"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            run("--listen-peer-urls http://[::1]:2380").listen_peer_urls,
            ["http://[::1]:2380"]
        );
        assert_eq!(
            run("--listen-metrics-urls http://0.0.0.0:2381").listen_metrics_urls,
            ["http://0.0.0.0:2381"]
        );
    }

    #[test]
    fn advertise_client_urls_required_with_explicit_listen_client_urls() {
        let msg = "--advertise-client-urls is required when --listen-client-urls is set explicitly";
        let e = fail("--listen-client-urls http://127.0.0.1:2379");
        assert_eq!(e.message(), msg);
        assert_eq!(e.exit_code(), 1);
        // Set through the environment counts as set too.
        let e = fail_env("", &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]);
        assert_eq!(e.message(), msg);
        let (c, _) = run_env(
            "",
            &[
                ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379"),
                ("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:2379"),
            ],
        );
        assert_eq!(c.advertise_client_urls, ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn initial_cluster_defaults_from_name_like_etcd() {
        // --name alone: "<name>=<initial-advertise-peer-urls>".
        let c = run("--name infra1");
        assert_eq!(
            c.initial_cluster,
            pairs(&[("infra1", "http://localhost:2380")])
        );
        let c = run(
            "--name infra1 --initial-advertise-peer-urls http://10.0.0.1:2380,http://10.0.0.2:2380",
        );
        assert_eq!(
            c.initial_cluster,
            pairs(&[
                ("infra1", "http://10.0.0.1:2380"),
                ("infra1", "http://10.0.0.2:2380")
            ])
        );
        // The default name keeps etcd's literal default.
        let c = run("--initial-advertise-peer-urls http://10.0.0.1:2380");
        assert_eq!(
            c.initial_cluster,
            pairs(&[("default", "http://localhost:2380")])
        );
    }

    #[test]
    fn malformed_initial_cluster() {
        let e = fail("--initial-cluster etcd0=http://localhost:2380,etcd1");
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message()
                .contains("entry \"etcd1\" is not of the form name=peer-url"),
            "{e}"
        );
        let e = fail("--initial-cluster etcd0=localhost:2380");
        assert!(
            e.message()
                .contains("URL scheme must be http, https, unix, or unixs: localhost:2380"),
            "{e}"
        );
        let e = fail("--initial-cluster =http://localhost:2380");
        assert!(e.message().contains("empty member name"), "{e}");
        // A member may have several peer URLs; order is kept.
        let c =
            run("--initial-cluster default=http://localhost:2380,default=http://127.0.0.1:2380");
        assert_eq!(
            c.initial_cluster,
            pairs(&[
                ("default", "http://localhost:2380"),
                ("default", "http://127.0.0.1:2380")
            ])
        );
    }

    #[test]
    fn election_and_heartbeat_validation() {
        assert_eq!(
            fail("--heartbeat-interval 300 --election-timeout 1000").message(),
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
        );
        assert_eq!(
            fail("--election-timeout 50001").message(),
            "--election-timeout[50001ms] is too long, and should be set less than 50000ms"
        );
        assert_eq!(
            fail("--heartbeat-interval 0").message(),
            "--heartbeat-interval must be >0 (set to 0ms)"
        );
        assert_eq!(
            fail("--election-timeout 0").message(),
            "--election-timeout must be >0 (set to 0ms)"
        );
        let c = run("--heartbeat-interval 200 --election-timeout 1000");
        assert_eq!(c.election_timeout, Duration::from_millis(1000));
        assert_eq!(
            run("--election-timeout 50000").election_timeout,
            Duration::from_secs(50)
        );
        let e = fail("--heartbeat-interval 1s");
        assert!(e
            .message()
            .starts_with("invalid value \"1s\" for flag -heartbeat-interval: parse error"));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn unknown_and_malformed_flags() {
        let e = fail("--foo");
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.message()
                .starts_with("flag provided but not defined: -foo\n"),
            "{e}"
        );
        assert!(e.message().contains("rustcd --help"));
        assert!(fail("-foo=bar")
            .message()
            .starts_with("flag provided but not defined: -foo"));
        let e = fail("--name");
        assert!(e.message().starts_with("flag needs an argument: -name"));
        assert_eq!(e.exit_code(), 2);
        assert!(fail("---name x")
            .message()
            .starts_with("bad flag syntax: ---name"));
        assert!(fail("-=x").message().starts_with("bad flag syntax: -=x"));
        assert_eq!(fail("extra").message(), "'extra' is not a valid flag");
        assert!(fail("--initial-cluster-state old")
            .message()
            .starts_with("invalid value \"old\" for flag -initial-cluster-state: invalid value"));
        assert!(fail("gateway start").message().contains("not supported"));
    }

    #[test]
    fn help_and_version() {
        for h in ["-h", "--help", "-help", "--h"] {
            match parse(args(&format!("--name x {h} --bogus")), &[]) {
                Ok(Command::Help(text)) => {
                    assert!(text.contains("--initial-cluster 'default=http://localhost:2380'"));
                    assert!(text.contains("\nClustering:\n"));
                    assert!(text.contains(
                        "--enable-v2 'false'\n    Accept etcd v2 client requests. [ignored]"
                    ));
                }
                other => panic!("{h}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(args("--version"), &[]),
            Ok(Command::Version)
        ));
        assert!(matches!(parse(args("-version"), &[]), Ok(Command::Version)));
        assert!(matches!(
            parse(args("--version=false"), &[]),
            Ok(Command::Run(..))
        ));
        // Version wins over a broken environment, as in etcd.
        let bad = env(&[("ETCD_HEARTBEAT_INTERVAL", "x")]);
        assert!(matches!(
            parse(args("--version"), &bad),
            Ok(Command::Version)
        ));
        let v = version_text();
        assert!(v.starts_with(&format!(
            "rustcd Version: {}\netcd API Version: 3.5\nGit SHA: ",
            env!("CARGO_PKG_VERSION")
        )));
        let (os, arch) = go_os_arch();
        assert!(v.ends_with(&format!("OS/Arch: {os}/{arch}\n")), "{v}");
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert!(v.ends_with("OS/Arch: linux/amd64\n"));
        }
    }

    #[test]
    fn environment_variables_and_precedence() {
        let (c, w) = run_env(
            "",
            &[
                ("ETCD_NAME", "envname"),
                ("ETCD_INITIAL_CLUSTER", "envname=http://localhost:2380"),
                ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:4379"),
                ("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:4379"),
                ("ETCD_STRICT_RECONFIG_CHECK", "false"),
                ("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "5s"),
                ("ETCDCTL_ENDPOINTS", "http://x:1"),
                ("ETCDCTL_API", "3"),
                ("HOME", "/root"),
            ],
        );
        assert_eq!(c.name, "envname");
        assert_eq!(c.data_dir, PathBuf::from("envname.etcd"));
        assert_eq!(
            c.initial_cluster,
            pairs(&[("envname", "http://localhost:2380")])
        );
        assert_eq!(c.listen_client_urls, ["http://127.0.0.1:4379"]);
        assert!(!c.strict_reconfig_check);
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
        assert!(w.is_empty(), "ETCDCTL_* and others are not ours: {w:?}");

        // The command line wins; the shadowed variable is reported.
        let (c, w) = run_env(
            "--name cli",
            &[("ETCD_NAME", "env"), ("ETCD_SNAPSHOT_COUNT", "7")],
        );
        assert_eq!(c.name, "cli");
        assert_eq!(c.snapshot_count, 7);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag"));

        // Unrecognised ETCD_* variables are warnings, not errors.
        let (_, w) = run_env("", &[("ETCD_FOO", "bar"), ("ETCD_UNSUPPORTED_ARCH", "arm")]);
        assert_eq!(w, ["unrecognized environment variable ETCD_FOO=bar"]);
        // ETCD_VERSION does not print the version.
        let (_, w) = run_env("", &[("ETCD_VERSION", "true")]);
        assert!(w[0].starts_with("cannot set special environment variable ETCD_VERSION"));
        // Empty variables are not used.
        assert_eq!(run_env("", &[("ETCD_NAME", "")]).0.name, "default");

        let e = fail_env("", &[("ETCD_HEARTBEAT_INTERVAL", "fast")]);
        assert_eq!(
            e.message(),
            "invalid value \"fast\" for ETCD_HEARTBEAT_INTERVAL: parse error"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn accepted_but_unused_flags_are_reported() {
        let (_, w) = run_env(
            "--enable-v2 --metrics=basic --enable-pprof=false --max-snapshots 10 --cors * \
             --experimental-compact-hash-check-enabled --socket-reuse-port \
             --grpc-keepalive-interval 7200s --v2-deprecation write-only -v",
            &[("ETCD_UNSAFE_NO_FSYNC", "true")],
        );
        let w = w.join("\n");
        assert!(
            w.contains(
                "--enable-v2=true is accepted for etcd compatibility but not used by rustcd"
            ),
            "{w}"
        );
        assert!(w.contains("--max-snapshots=10 "), "{w}");
        assert!(
            w.contains("--experimental-compact-hash-check-enabled=true "),
            "{w}"
        );
        assert!(w.contains("--socket-reuse-port=true "), "{w}");
        assert!(w.contains("--v2-deprecation=write-only "), "{w}");
        assert!(w.contains("--unsafe-no-fsync=true "), "{w}");
        assert!(
            w.contains("flag \"-v\" is no longer supported - ignoring."),
            "{w}"
        );
        // Values equal to etcd's default are not noise.
        assert!(!w.contains("--metrics"), "{w}");
        assert!(!w.contains("--enable-pprof"), "{w}");
        assert!(!w.contains("--cors"), "{w}");
        assert!(!w.contains("--grpc-keepalive-interval"), "{w}");
        assert!(fail("--v2-deprecation bogus")
            .message()
            .contains("invalid value \"bogus\""));
    }

    #[test]
    fn logging_flags() {
        assert_eq!(
            run("--log-level debug").log,
            LogConfig {
                json: true,
                level: "debug".into()
            }
        );
        assert_eq!(
            run("--logger capnslog").log,
            LogConfig {
                json: false,
                level: "info".into()
            }
        );
        assert_eq!(
            run("--log-format console --log-level WARN").log,
            LogConfig {
                json: false,
                level: "warn".into()
            }
        );
        assert_eq!(run("--debug").log.level, "debug");
        assert_eq!(run("--debug --log-level error").log.level, "error");
        assert_eq!(run("--log-level fatal").log.level, "fatal");
        assert_eq!(
            fail("--log-level loud").message(),
            "unrecognized level: \"loud\""
        );
        assert_eq!(
            fail("--logger glog").message(),
            "unknown logger option \"glog\""
        );
        assert_eq!(
            fail("--log-outputs default,stdout").message(),
            "multi logoutput for \"default\" is not supported yet"
        );
        let (_, w) = run_env("--log-outputs stderr", &[]);
        assert!(w.is_empty());
        let (_, w) = run_env("--log-outputs /var/log/etcd.log", &[]);
        assert!(w[0].contains("--log-outputs=/var/log/etcd.log is not supported yet"));
    }

    #[test]
    fn other_values_and_checks() {
        let c = run(
            "--snapshot-count 0x10 --quota-backend-bytes 8589934592 --max-request-bytes 10485760 \
             --max-txn-ops 1024 --auto-compaction-mode revision --auto-compaction-retention 1000 \
             --initial-cluster-state existing --wal-dir /wal --auth-token jwt,pub-key=a \
             --cert-file c.pem --key-file k.pem --trusted-ca-file ca.pem \
             --peer-cert-file pc.pem --peer-key-file pk.pem --peer-client-cert-auth --peer-auto-tls \
             --experimental-watch-progress-notify-interval 1m30s",
        );
        assert_eq!(c.snapshot_count, 16);
        assert_eq!(c.quota_backend_bytes, 8 << 30);
        assert_eq!(c.max_request_bytes, 10 << 20);
        assert_eq!(c.max_txn_ops, 1024);
        assert_eq!(c.auto_compaction_mode, AutoCompactionMode::Revision);
        assert_eq!(c.auto_compaction_retention, "1000");
        assert_eq!(c.initial_cluster_state, ClusterState::Existing);
        assert_eq!(c.wal_dir, Some(PathBuf::from("/wal")));
        assert_eq!(c.auth_token, "jwt,pub-key=a");
        assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("c.pem")));
        assert_eq!(c.client_tls.key_file, Some(PathBuf::from("k.pem")));
        assert_eq!(c.client_tls.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(c.client_tls.is_enabled());
        assert_eq!(c.peer_tls.cert_file, Some(PathBuf::from("pc.pem")));
        assert!(c.peer_tls.client_cert_auth && c.peer_tls.auto_tls);
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(90));
        assert_eq!(
            run("--auto-compaction-retention 5m").auto_compaction_retention,
            "5m"
        );

        assert_eq!(
            fail("--auto-compaction-mode hourly").message(),
            "unknown auto-compaction-mode \"hourly\""
        );
        assert_eq!(
            fail("--auto-compaction-retention 1x").message(),
            "error parsing CompactionRetention: time: unknown unit \"x\" in duration \"1x\""
        );
        assert_eq!(
            fail("--experimental-enable-lease-checkpoint-persist").message(),
            "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"
        );
        let (_, w) = run_env("--experimental-enable-lease-checkpoint", &[]);
        assert!(w[0].starts_with("Detected that checkpointing is enabled without persistence"));
        assert_eq!(
            fail("--experimental-compact-hash-check-time 0s").message(),
            "--experimental-compact-hash-check-time must be >0 (set to 0s)"
        );
        assert!(fail("--tls-min-version TLS1.1")
            .message()
            .starts_with("unexpected TLS version \"TLS1.1\""));
        assert!(fail("--tls-min-version TLS1.3 --tls-max-version TLS1.2")
            .message()
            .starts_with("min version (TLS1.3) is greater"));
        assert!(fail("--quota-backend-bytes -1")
            .message()
            .contains("negative quota"));
        assert!(fail("--experimental-watch-progress-notify-interval 10").message().starts_with(
            "invalid value \"10\" for flag -experimental-watch-progress-notify-interval: parse error"
        ));
    }

    #[test]
    fn discovery_and_proxy_are_refused() {
        assert_eq!(
            fail("--initial-cluster a=http://localhost:2380 --discovery https://discovery.etcd.io/x").message(),
            "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\""
        );
        assert!(fail("--discovery https://discovery.etcd.io/x")
            .message()
            .starts_with("--discovery is not supported by rustcd"));
        assert!(fail("--discovery-srv example.com")
            .message()
            .starts_with("--discovery-srv is not supported by rustcd"));
        assert!(fail("--proxy on")
            .message()
            .starts_with("--proxy=on is not supported by rustcd"));
        run("--proxy off");
    }

    #[test]
    fn go_durations() {
        let ok = [
            ("0", 0i128),
            ("10m0s", 600_000_000_000),
            ("500ms", 500_000_000),
            ("1h", 3_600_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5m", 30_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("3µs", 3_000),
            ("-2s", -2_000_000_000),
            ("+7ns", 7),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
        assert_eq!(
            parse_go_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        for bad in ["", "s", ".s", "1..2s", "-", "10000000000000000000h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_go_uint("100", 64), Ok(100));
        assert_eq!(parse_go_uint("0x1F", 64), Ok(31));
        assert_eq!(parse_go_uint("010", 64), Ok(8));
        assert_eq!(parse_go_uint("0b101", 64), Ok(5));
        assert_eq!(parse_go_uint("0", 64), Ok(0));
        assert_eq!(parse_go_uint("1_000", 64), Err("parse error".into()));
        assert_eq!(parse_go_uint("+1", 64), Err("parse error".into()));
        assert_eq!(parse_go_uint("-1", 64), Err("parse error".into()));
        assert_eq!(
            parse_go_uint("4294967296", 32),
            Err("value out of range".into())
        );
        assert_eq!(
            parse_go_uint("99999999999999999999", 64),
            Err("value out of range".into())
        );
        assert_eq!(parse_go_int("-5"), Ok(-5));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_go_int("9223372036854775808").is_err());
    }

    const SAMPLE: &str = r#"# This is the configuration file for the etcd server.

# Human-readable name for this member.
name: 'infra0'

# Path to the data directory.
data-dir:

wal-dir: "/var/lib/etcd/wal"   # trailing comment
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://10.0.1.10:2380
listen-client-urls: http://10.0.1.10:2379,http://127.0.0.1:2379
max-snapshots: 5
cors:
initial-advertise-peer-urls: http://10.0.1.10:2380
advertise-client-urls: http://10.0.1.10:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster: "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380"
initial-cluster-token: 'etcd-cluster-1'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000

client-transport-security:
  # Path to the client server TLS cert file.
  cert-file: /etc/etcd/server.pem
  key-file: '/etc/etcd/server-key.pem'
  client-cert-auth: true
  trusted-ca-file:
  auto-tls: false

peer-transport-security: {cert-file: /etc/etcd/peer.pem, key-file: "/etc/etcd/peer-key.pem", auto-tls: yes}

self-signed-cert-validity: 1
log-level: debug
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
experimental-watch-progress-notify-interval: 5000000000
cipher-suites: [
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,  # first
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
]
host-whitelist:
  - a.example
  - "b.example"
tls-min-version: 'TLS1.2'
tls-max-version: 'TLS1.3'
some-future-key: 1
"#;

    #[test]
    fn config_file_sample() {
        let f = TempFile::new(SAMPLE);
        // The file replaces flags and environment.
        let (c, w) = run_env(
            &format!(
                "--config-file {} --name ignored --heartbeat-interval 1",
                f.path()
            ),
            &[("ETCD_NAME", "ignored-too"), ("ETCD_BOGUS", "x")],
        );
        assert_eq!(c.name, "infra0");
        assert_eq!(c.data_dir, PathBuf::from("infra0.etcd"));
        assert_eq!(c.wal_dir, Some(PathBuf::from("/var/lib/etcd/wal")));
        assert_eq!(c.snapshot_count, 10000);
        assert_eq!(c.listen_peer_urls, ["http://10.0.1.10:2380"]);
        assert_eq!(
            c.listen_client_urls,
            ["http://10.0.1.10:2379", "http://127.0.0.1:2379"]
        );
        assert_eq!(c.advertise_client_urls, ["http://10.0.1.10:2379"]);
        assert_eq!(
            c.initial_cluster,
            pairs(&[
                ("infra0", "http://10.0.1.10:2380"),
                ("infra1", "http://10.0.1.11:2380"),
                ("infra2", "http://10.0.1.12:2380"),
            ])
        );
        assert_eq!(c.initial_cluster_token, "etcd-cluster-1");
        assert!(!c.strict_reconfig_check);
        assert_eq!(
            c.client_tls.cert_file,
            Some(PathBuf::from("/etc/etcd/server.pem"))
        );
        assert_eq!(
            c.client_tls.key_file,
            Some(PathBuf::from("/etc/etcd/server-key.pem"))
        );
        assert!(c.client_tls.client_cert_auth);
        assert_eq!(c.client_tls.trusted_ca_file, None);
        assert_eq!(
            c.peer_tls.cert_file,
            Some(PathBuf::from("/etc/etcd/peer.pem"))
        );
        assert_eq!(
            c.peer_tls.key_file,
            Some(PathBuf::from("/etc/etcd/peer-key.pem"))
        );
        assert!(c.peer_tls.auto_tls);
        assert_eq!(
            c.log,
            LogConfig {
                json: true,
                level: "debug".into()
            }
        );
        assert_eq!(c.auto_compaction_retention, "1");
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
        let w = w.join("\n");
        assert!(w.contains("unknown key \"some-future-key\""), "{w}");
        assert!(
            w.contains("ignoring command-line flags --name --heartbeat-interval"),
            "{w}"
        );
        assert!(w.contains("ETCD_NAME ETCD_BOGUS"), "{w}");
        assert!(w.contains("--enable-pprof=true is accepted"), "{w}");
        assert!(
            w.contains("--host-whitelist=a.example,b.example is accepted"),
            "{w}"
        );
        assert!(w.contains("--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 is accepted"), "{w}");

        // ETCD_CONFIG_FILE works too, and the file path may use the env alone.
        let (c, _) = run_env("", &[("ETCD_CONFIG_FILE", f.path())]);
        assert_eq!(c.name, "infra0");
    }

    #[test]
    fn config_file_defaults_and_rules() {
        // Nothing but a name: everything else is etcd's default, and the
        // initial cluster follows the name, like on the command line.
        let f = TempFile::new("name: solo\n");
        let (c, w) = run_env(&format!("--config-file={}", f.path()), &[]);
        assert_eq!(c.name, "solo");
        assert_eq!(
            c.initial_cluster,
            pairs(&[("solo", "http://localhost:2380")])
        );
        assert_eq!(c.advertise_client_urls, ["http://localhost:2379"]);
        assert!(w.is_empty(), "{w:?}");
        // In a file, listen-client-urls alone keeps the default advertise URL
        // (etcd only clears it for flags).
        let f = TempFile::new("listen-client-urls: http://127.0.0.1:2379\n");
        let (c, _) = run_env(&format!("--config-file {}", f.path()), &[]);
        assert_eq!(c.advertise_client_urls, ["http://localhost:2379"]);
        // Validation applies to files too.
        let f = TempFile::new("heartbeat-interval: 500\nelection-timeout: 1000\n");
        assert_eq!(
            fail(&format!("--config-file {}", f.path())).message(),
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]"
        );
        let f = TempFile::new("initial-cluster-state: maybe\n");
        assert_eq!(
            fail(&format!("--config-file {}", f.path())).message(),
            format!(
                "config file {:?}: line 1: invalid value \"maybe\" for \"initial-cluster-state\": invalid value",
                f.path()
            )
        );
        // Durations as Go strings are accepted too.
        let f = TempFile::new("experimental-watch-progress-notify-interval: 2m\n");
        let (c, _) = run_env(&format!("--config-file {}", f.path()), &[]);
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(120));
        // Flat TLS keys are not config-file keys in etcd: ignored, reported.
        let f = TempFile::new("cert-file: /x.pem\n");
        let (c, w) = run_env(&format!("--config-file {}", f.path()), &[]);
        assert_eq!(c.client_tls.cert_file, None);
        assert!(w[0].contains("unknown key \"cert-file\""), "{w:?}");
    }

    #[test]
    fn config_file_errors_name_file_and_line() {
        let f = TempFile::new("name: a\nheartbeat-interval: fast\n");
        let e = fail(&format!("--config-file {}", f.path()));
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.message(),
            format!(
                "config file {:?}: line 2: invalid value \"fast\" for \"heartbeat-interval\": parse error",
                f.path()
            )
        );
        for (text, line, what) in [
            ("name: a\n  data-dir: x\n", 2, "unexpected indentation"),
            ("name: a\njust some words\n", 2, "expected `key: value`"),
            ("name: 'unterminated\n", 1, "unterminated quoted string"),
            ("name: &anchor x\n", 1, "unsupported YAML syntax"),
            ("name: a\nname: b\n", 2, "duplicate key"),
            (
                "client-transport-security:\n  cert-file:\n    deep: x\n",
                3,
                "nesting deeper",
            ),
            ("cipher-suites: [a,\n  b\n", 1, "missing `]`"),
            ("name: [a, b]\n", 1, "expected a single value, not a list"),
            ("client-transport-security: yes\n", 1, "expected a mapping"),
        ] {
            let f = TempFile::new(text);
            let e = fail(&format!("--config-file {}", f.path()));
            let prefix = format!("config file {:?}: line {line}: ", f.path());
            assert!(
                e.message().starts_with(&prefix) && e.message().contains(what),
                "{text:?}: {e}"
            );
        }
        let e = fail("--config-file /nonexistent/rustcd.yml");
        assert!(
            e.message()
                .starts_with("cannot read config file \"/nonexistent/rustcd.yml\""),
            "{e}"
        );
    }

    #[test]
    fn yaml_subset() {
        let y = parse_yaml(
            "---\n\"quoted key\": \"a \\\"b\\\" \\u00e9\"\nk: 'it''s # not a comment' # a comment\nlist:\n- x\n- 'y'\nempty: ~\nurl: http://a:1 # c\n",
        )
        .unwrap();
        assert_eq!(y[0].key, "quoted key");
        assert_eq!(
            y[0].value,
            YVal::Scalar {
                text: "a \"b\" é".into(),
                quoted: true
            }
        );
        assert_eq!(
            y[1].value,
            YVal::Scalar {
                text: "it's # not a comment".into(),
                quoted: true
            }
        );
        assert_eq!(y[2].value, YVal::List(vec!["x".into(), "y".into()]));
        assert_eq!(y[3].value, YVal::Null);
        assert_eq!(
            y[4].value,
            YVal::Scalar {
                text: "http://a:1".into(),
                quoted: false
            }
        );
        assert_eq!(y[4].line, 8);
    }
}
