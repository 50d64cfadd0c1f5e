//! Command-line parsing in the style of etcd's cobra flags: `--flag value`,
//! `--flag=value`, boolean flags without a value, global flags before or
//! after the subcommand. Hand-written to keep the dependency list short.

use std::collections::HashMap;
use std::time::Duration;

/// One accepted flag: name (without `--`), whether it takes a value, the
/// default shown in `--help`, and its help text.
pub struct FlagSpec {
    pub name: &'static str,
    pub takes_value: bool,
    pub default: &'static str,
    pub help: &'static str,
}

const fn v(name: &'static str, default: &'static str, help: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        takes_value: true,
        default,
        help,
    }
}

const fn b(name: &'static str, help: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        takes_value: false,
        default: "false",
        help,
    }
}

pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    v(
        "endpoints",
        "127.0.0.1:2379",
        "comma-separated gRPC endpoints (http:// is implied)",
    ),
    v("conns", "1", "total number of gRPC connections"),
    v(
        "clients",
        "1",
        "total number of concurrent in-flight requests (client tasks)",
    ),
    b(
        "target-leader",
        "find the leader with Maintenance.Status and connect only to it",
    ),
    v("dial-timeout", "5s", "dial timeout for client connections"),
    v(
        "request-timeout",
        "0",
        "per-request deadline, counted as an error when hit (0: none)",
    ),
    v(
        "max-duration",
        "0",
        "put/range/txn-put/lease-keepalive: stop issuing requests after this long, even before --total (0: none)",
    ),
    v(
        "latency-log",
        "",
        "put/range/txn-put: write one line per request to this file: start (unix secs), latency (secs), ok (1/0)",
    ),
    v(
        "output",
        "text",
        "output format: text or json (one flat JSON object on stdout)",
    ),
    b("precise", "print full floating point precision"),
    b("no-progress", "do not print the progress line on stderr"),
    b("help", "show help"),
];

pub struct Command {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
    pub flags: &'static [FlagSpec],
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "put",
        usage: "put [flags]",
        about: "Benchmark put",
        flags: &[
            v("key-size", "8", "key size of put request"),
            v("val-size", "8", "value size of put request"),
            v("total", "10000", "total number of put requests"),
            v("key-space-size", "1", "maximum possible keys"),
            b("sequential-keys", "use sequential keys"),
            v("rate", "0", "maximum puts per second (0 is no limit)"),
        ],
    },
    Command {
        name: "range",
        usage: "range KEY [END] [flags]",
        about: "Benchmark range",
        flags: &[
            v("consistency", "l", "linearizable (l) or serializable (s)"),
            v("total", "10000", "total number of range requests"),
            v("rate", "0", "maximum range requests per second (0 is no limit)"),
        ],
    },
    Command {
        name: "txn-put",
        usage: "txn-put [flags]",
        about: "Benchmark txn-put (each txn holds --txn-ops puts in its success branch)",
        flags: &[
            v("key-size", "8", "key size of txn put"),
            v("val-size", "8", "value size of txn put"),
            v("txn-ops", "1", "number of puts per txn"),
            v("rate", "0", "maximum txns per second (0 is no limit)"),
            v("total", "10000", "total number of txn requests"),
            v("key-space-size", "1", "maximum possible keys"),
        ],
    },
    Command {
        name: "watch",
        usage: "watch [flags]",
        about: "Benchmark watch: creates --streams x --watch-per-stream watchers, then puts to the watched \
                keys and measures event delivery (time from issuing a put to receiving its event)",
        flags: &[
            v("streams", "10", "total watch streams"),
            v("watch-per-stream", "100", "total watchers per stream"),
            v("watched-key-total", "1", "total number of keys to be watched"),
            v("put-rate", "0", "number of keys to put per second (0 is no limit)"),
            v("put-total", "1000", "number of put requests"),
            v("key-size", "32", "key size of watch request"),
            v("key-space-size", "1", "maximum possible keys"),
            b("sequential-keys", "use sequential keys"),
            v("event-timeout", "10s", "give up when no event arrives for this long"),
        ],
    },
    Command {
        name: "watch-latency",
        usage: "watch-latency [flags]",
        about: "Benchmark watch latency: --clients watchers on one key; each put waits until every watcher \
                has its event; latency is from issuing the put to receiving the event",
        flags: &[
            v("total", "10000", "total number of put requests"),
            v("put-rate", "100", "number of keys to put per second (0 is no limit)"),
            v("key-size", "32", "key size of watch response"),
            v("val-size", "32", "value size of watch response"),
            v("event-timeout", "10s", "give up when an event does not arrive within this long"),
        ],
    },
    Command {
        name: "lease-keepalive",
        usage: "lease-keepalive [flags]",
        about: "Benchmark lease keepalive (one lease and one keepalive stream per client: --clients=1000 \
                keeps 1000 leases alive)",
        flags: &[v("total", "10000", "total number of lease keepalive requests")],
    },
    Command {
        name: "leader",
        usage: "leader",
        about: "Print the index (in --endpoints) and URL of the current leader",
        flags: &[],
    },
    Command {
        name: "election",
        usage: "election --pids PID0,PID1,... [flags]",
        about: "Failover time: SIGKILL the leader's process (--pids in --endpoints order), then time \
                until a put succeeds through a surviving member",
        flags: &[
            v("pids", "", "process ids of the members, in the order of --endpoints"),
            v("interval", "10ms", "start a new put attempt this often until one succeeds"),
            v("attempt-timeout", "5s", "deadline of one put attempt"),
            v("timeout", "60s", "give up after this long"),
        ],
    },
];

pub fn usage() -> String {
    let mut s = String::from(
        "rustcd-bench: a low-level benchmark tool for etcd v3 gRPC servers (etcd, rustcd).\n\
         It speaks only the etcd v3 gRPC API, so it measures any server identically.\n\n\
         Usage:\n  rustcd-bench [global flags] <command> [command flags]\n\nCommands:\n",
    );
    for c in COMMANDS {
        s += &format!("  {:<16} {}\n", c.name, c.about);
    }
    s += "\nGlobal flags:\n";
    s += &flags_help(GLOBAL_FLAGS);
    s += "\nRun 'rustcd-bench <command> --help' for the command's flags.\n";
    s
}

pub fn command_usage(c: &Command) -> String {
    let mut s = format!(
        "{}\n\nUsage:\n  rustcd-bench [global flags] {}\n",
        c.about, c.usage
    );
    if !c.flags.is_empty() {
        s += "\nFlags:\n";
        s += &flags_help(c.flags);
    }
    s += "\nGlobal flags:\n";
    s += &flags_help(GLOBAL_FLAGS);
    s
}

fn flags_help(flags: &[FlagSpec]) -> String {
    let mut s = String::new();
    for f in flags {
        let name = if f.takes_value {
            format!("--{} <v>", f.name)
        } else {
            format!("--{}", f.name)
        };
        if f.takes_value && !f.default.is_empty() {
            s += &format!("  {:<26} {} (default {})\n", name, f.help, f.default);
        } else {
            s += &format!("  {:<26} {}\n", name, f.help);
        }
    }
    s
}

/// Parsed command line: the subcommand, flag values (defaults filled in) and
/// positional arguments.
#[derive(Debug)]
pub struct Parsed {
    pub command: Option<&'static Command>,
    pub values: HashMap<&'static str, String>,
    pub positional: Vec<String>,
    pub help: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut command: Option<&'static Command> = None;
    let mut raw: Vec<(String, Option<String>)> = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-').filter(|b| b.len() > 1))
        {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            // Whether it takes a value is known only from the spec; look in
            // the global flags and (if already known) the command's flags,
            // else in every command (flags may precede the subcommand name).
            let spec =
                find_spec(&name, command).ok_or_else(|| format!("unknown flag: --{name}"))?;
            let value = if spec.takes_value {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| format!("flag needs an argument: --{name}"))?;
                        i += 1;
                        Some(v.clone())
                    }
                }
            } else {
                inline
            };
            raw.push((name, value));
        } else if command.is_none() {
            command = Some(
                COMMANDS
                    .iter()
                    .find(|c| c.name == a.as_str())
                    .ok_or_else(|| format!("unknown command {a:?}"))?,
            );
        } else {
            positional.push(a.clone());
        }
    }

    let mut values: HashMap<&'static str, String> = HashMap::new();
    for f in GLOBAL_FLAGS
        .iter()
        .chain(command.map_or(&[][..], |c| c.flags))
    {
        values.insert(f.name, f.default.to_string());
    }
    let mut help = false;
    for (name, value) in raw {
        let spec = GLOBAL_FLAGS
            .iter()
            .chain(command.map_or(&[][..], |c| c.flags))
            .find(|f| f.name == name)
            .ok_or_else(|| match command {
                Some(c) => format!("unknown flag for {}: --{name}", c.name),
                None => format!("unknown flag: --{name}"),
            })?;
        let value = if spec.takes_value {
            value.unwrap_or_default()
        } else {
            match value.as_deref() {
                None | Some("true") | Some("1") => "true".to_string(),
                Some("false") | Some("0") => "false".to_string(),
                Some(other) => return Err(format!("invalid boolean for --{name}: {other:?}")),
            }
        };
        if spec.name == "help" {
            help = value == "true";
        }
        values.insert(spec.name, value);
    }
    Ok(Parsed {
        command,
        values,
        positional,
        help,
    })
}

fn find_spec(name: &str, command: Option<&'static Command>) -> Option<&'static FlagSpec> {
    if name == "h" {
        return GLOBAL_FLAGS.iter().find(|f| f.name == "help");
    }
    if let Some(f) = GLOBAL_FLAGS.iter().find(|f| f.name == name) {
        return Some(f);
    }
    match command {
        Some(c) => c.flags.iter().find(|f| f.name == name),
        None => COMMANDS
            .iter()
            .flat_map(|c| c.flags.iter())
            .find(|f| f.name == name),
    }
}

impl Parsed {
    pub fn str(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn bool(&self, name: &str) -> bool {
        self.str(name) == "true"
    }

    pub fn u64(&self, name: &str) -> Result<u64, String> {
        let s = self.str(name);
        s.trim()
            .parse()
            .map_err(|_| format!("invalid value for --{name}: {s:?} (want a non-negative integer)"))
    }

    pub fn usize(&self, name: &str) -> Result<usize, String> {
        Ok(self.u64(name)? as usize)
    }

    pub fn duration(&self, name: &str) -> Result<Duration, String> {
        parse_duration(self.str(name)).map_err(|e| format!("invalid value for --{name}: {e}"))
    }
}

/// Go-style durations: `0`, `500ms`, `5s`, `1m30s`, `1.5s`, `100us`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" || s.is_empty() {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (e.g. 5s, 500ms)"))?;
        if num_len == 0 {
            return Err(format!("{s:?}: expected a number"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?}: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?}: unknown unit {unit:?}")),
        };
        total += n * scale;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Parsed, String> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_anywhere() {
        let x = p(&[
            "--endpoints=a:1,b:2",
            "put",
            "--total",
            "5",
            "--conns",
            "3",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(x.command.unwrap().name, "put");
        assert_eq!(x.str("endpoints"), "a:1,b:2");
        assert_eq!(x.u64("total").unwrap(), 5);
        assert_eq!(x.u64("conns").unwrap(), 3);
        assert_eq!(x.u64("key-size").unwrap(), 8);
        assert!(x.bool("sequential-keys"));
        assert!(!x.bool("target-leader"));
    }

    #[test]
    fn subcommand_flag_before_name_and_positionals() {
        let x = p(&[
            "--consistency",
            "s",
            "range",
            "foo",
            "fop",
            "--target-leader",
        ])
        .unwrap();
        assert_eq!(x.command.unwrap().name, "range");
        assert_eq!(x.positional, vec!["foo", "fop"]);
        assert_eq!(x.str("consistency"), "s");
        assert!(x.bool("target-leader"));
    }

    #[test]
    fn errors() {
        assert!(p(&["put", "--bogus"]).is_err());
        assert!(p(&["range", "--key-size", "3"]).is_err());
        assert!(p(&["nope"]).is_err());
        assert!(p(&["put", "--total"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
