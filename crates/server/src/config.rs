//! A member's configuration: what etcd's flags say, already parsed and checked.
//! The `rustcd` binary builds it from flags, `ETCD_*` variables and the
//! config file; tests build it directly.

use std::path::PathBuf;
use std::time::Duration;

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// `--logger` / `--log-outputs` / `--log-level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `zap` (JSON lines, like etcd's default) or `capnslog` (plain text).
    pub json: bool,
    /// debug, info, warn, error, panic, fatal.
    pub level: String,
}

/// `--auto-compaction-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompactionMode {
    Periodic,
    Revision,
}

/// TLS settings for one side (client or peer). Accepted now, served later.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub auto_tls: bool,
}

impl TlsConfig {
    /// Whether any TLS setting was given.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }
}

/// Everything a member needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `--name` (default `default`).
    pub name: String,
    /// `--data-dir` (default `<name>.etcd`).
    pub data_dir: PathBuf,
    /// `--wal-dir`: where the WAL lives if not under the data dir.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls` (default `http://localhost:2379`).
    pub listen_client_urls: Vec<String>,
    /// `--advertise-client-urls` (default `http://localhost:2379`).
    pub advertise_client_urls: Vec<String>,
    /// `--listen-peer-urls` (default `http://localhost:2380`).
    pub listen_peer_urls: Vec<String>,
    /// `--initial-advertise-peer-urls` (default `http://localhost:2380`).
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--initial-cluster`, parsed: (name, peer URL) in flag order; one name
    /// may appear several times with different URLs.
    pub initial_cluster: Vec<(String, String)>,
    /// `--initial-cluster-token` (default `etcd-cluster`).
    pub initial_cluster_token: String,
    /// `--initial-cluster-state` (default new).
    pub initial_cluster_state: ClusterState,
    /// `--snapshot-count` (default 100000).
    pub snapshot_count: u64,
    /// `--heartbeat-interval` (default 100ms).
    pub heartbeat_interval: Duration,
    /// `--election-timeout` (default 1000ms).
    pub election_timeout: Duration,
    /// `--quota-backend-bytes` (0 = default 2 GiB).
    pub quota_backend_bytes: u64,
    /// `--max-request-bytes` (default 1.5 MiB).
    pub max_request_bytes: usize,
    /// `--max-txn-ops` (default 128).
    pub max_txn_ops: usize,
    /// `--auto-compaction-mode` (default periodic).
    pub auto_compaction_mode: AutoCompactionMode,
    /// `--auto-compaction-retention` as given (e.g. `0`, `1h`, `1000`); `0` = off.
    pub auto_compaction_retention: String,
    /// `--strict-reconfig-check` (default true).
    pub strict_reconfig_check: bool,
    /// `--pre-vote` (default true, as in etcd 3.5).
    pub pre_vote: bool,
    /// `--experimental-watch-progress-notify-interval` (default 10m).
    pub watch_progress_notify_interval: Duration,
    /// `--experimental-enable-lease-checkpoint`.
    pub lease_checkpoint: bool,
    /// `--auth-token` (default `simple`).
    pub auth_token: String,
    /// `--enable-pprof`, `--metrics`, `--listen-metrics-urls` are accepted; the
    /// metrics URLs are served with the HTTP endpoints.
    pub listen_metrics_urls: Vec<String>,
    /// Client-side TLS (`--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`).
    pub client_tls: TlsConfig,
    /// Peer-side TLS (`--peer-*`).
    pub peer_tls: TlsConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for ServerConfig {
    /// etcd 3.5's defaults.
    fn default() -> Self {
        ServerConfig {
            name: "default".into(),
            data_dir: PathBuf::from("default.etcd"),
            wal_dir: None,
            listen_client_urls: vec!["http://localhost:2379".into()],
            advertise_client_urls: vec!["http://localhost:2379".into()],
            listen_peer_urls: vec!["http://localhost:2380".into()],
            initial_advertise_peer_urls: vec!["http://localhost:2380".into()],
            initial_cluster: vec![("default".into(), "http://localhost:2380".into())],
            initial_cluster_token: "etcd-cluster".into(),
            initial_cluster_state: ClusterState::New,
            snapshot_count: 100_000,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            quota_backend_bytes: 0,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            auto_compaction_mode: AutoCompactionMode::Periodic,
            auto_compaction_retention: "0".into(),
            strict_reconfig_check: true,
            pre_vote: true,
            watch_progress_notify_interval: Duration::from_secs(600),
            lease_checkpoint: false,
            auth_token: "simple".into(),
            listen_metrics_urls: Vec::new(),
            client_tls: TlsConfig::default(),
            peer_tls: TlsConfig::default(),
            log: LogConfig {
                json: true,
                level: "info".into(),
            },
        }
    }
}

/// Go's `time.ParseDuration`, in nanoseconds, with Go's error texts.
pub fn parse_go_duration(orig: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const MAX: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !s.is_empty() {
        let c = s.as_bytes()[0];
        if !(c == b'.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit_str = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u128 = match unit_str {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {unit_str:?} in duration {orig:?}"
                ))
            }
        };
        let v: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| invalid())?
        };
        if v > MAX {
            return Err(invalid());
        }
        let mut v = v * unit;
        if !frac_part.is_empty() {
            // Go keeps at most ~19 significant fraction digits; so do we.
            let digits = &frac_part[..frac_part.len().min(19)];
            let f: u128 = digits.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(digits.len() as u32);
            v += f * unit / scale;
        }
        total += v;
        if total > MAX {
            return Err(invalid());
        }
    }
    if !neg && total == MAX {
        return Err(invalid());
    }
    let total = total as i128;
    Ok(if neg { -total } else { total })
}

/// What `--auto-compaction-mode` and `--auto-compaction-retention` ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    /// Keep this much history (periodic mode; a bare number is hours).
    Periodic(Duration),
    /// Keep this many revisions (revision mode).
    Revision(i64),
}

impl ServerConfig {
    /// The auto-compaction policy, as etcd reads the two flags.
    pub fn auto_compaction(&self) -> Result<AutoCompaction, String> {
        let r = self.auto_compaction_retention.trim();
        if r.is_empty() || r == "0" {
            return Ok(AutoCompaction::Off);
        }
        match self.auto_compaction_mode {
            AutoCompactionMode::Revision => r
                .parse::<i64>()
                .map(|n| {
                    if n > 0 {
                        AutoCompaction::Revision(n)
                    } else {
                        AutoCompaction::Off
                    }
                })
                .map_err(|_| format!("invalid auto-compaction-retention {r:?} for revision mode")),
            AutoCompactionMode::Periodic => {
                let d = match r.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours * 3600),
                    Err(_) => {
                        let ns = parse_go_duration(r)?;
                        Duration::from_nanos(ns.max(0) as u64)
                    }
                };
                Ok(if d.is_zero() {
                    AutoCompaction::Off
                } else {
                    AutoCompaction::Periodic(d)
                })
            }
        }
    }
}
