//! The command tree and a cobra/pflag-compatible command-line parser:
//! `--flag=value`, `--flag value`, `-w json`, `-wjson`, `-w=json`, bool
//! flags without a value, flags anywhere among the arguments, `--` ending
//! the flags, unique command prefixes, `ETCDCTL_<FLAG>` for global flags,
//! and etcdctl's usage text (`-h`, flag errors) byte for byte.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::gofmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bool,
    Str,
    Int64,
    Duration,
    StrSlice,
}

pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
    pub usage: &'static str,
}

pub(crate) const fn f(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
) -> Flag {
    Flag {
        name,
        short: None,
        kind,
        default,
        usage,
    }
}

pub(crate) const fn fs(
    name: &'static str,
    short: char,
    kind: Kind,
    default: &'static str,
    usage: &'static str,
) -> Flag {
    Flag {
        name,
        short: Some(short),
        kind,
        default,
        usage,
    }
}

use Kind::*;

pub struct Cmd {
    pub name: &'static str,
    pub use_: &'static str,
    pub short: &'static str,
    pub long: &'static str,
    /// Flags of this command only.
    pub flags: &'static [Flag],
    /// Flags of this command inherited by its subcommands.
    pub persistent: &'static [Flag],
    pub subs: &'static [Cmd],
    pub runnable: bool,
}

pub(crate) const fn leaf(
    name: &'static str,
    use_: &'static str,
    short: &'static str,
    flags: &'static [Flag],
) -> Cmd {
    Cmd {
        name,
        use_,
        short,
        long: "",
        flags,
        persistent: &[],
        subs: &[],
        runnable: true,
    }
}

pub(crate) const fn group(
    name: &'static str,
    use_: &'static str,
    short: &'static str,
    subs: &'static [Cmd],
) -> Cmd {
    Cmd {
        name,
        use_,
        short,
        long: "",
        flags: &[],
        persistent: &[],
        subs,
        runnable: false,
    }
}

pub static GLOBAL_FLAGS: &[Flag] = &[
    f("endpoints", StrSlice, "[127.0.0.1:2379]", "gRPC endpoints"),
    f("debug", Bool, "false", "enable client-side debug logging"),
    fs(
        "write-out",
        'w',
        Str,
        "simple",
        "set the output format (fields, json, protobuf, simple, table)",
    ),
    f("hex", Bool, "false", "print byte strings as hex encoded strings"),
    f("dial-timeout", Duration, "2s", "dial timeout for client connections"),
    f(
        "command-timeout",
        Duration,
        "5s",
        "timeout for short running command (excluding dial timeout)",
    ),
    f("keepalive-time", Duration, "2s", "keepalive time for client connections"),
    f("keepalive-timeout", Duration, "6s", "keepalive timeout for client connections"),
    f(
        "insecure-transport",
        Bool,
        "true",
        "disable transport security for client connections",
    ),
    f(
        "insecure-discovery",
        Bool,
        "true",
        "accept insecure SRV records describing cluster endpoints",
    ),
    f(
        "insecure-skip-tls-verify",
        Bool,
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    f("cert", Str, "", "identify secure client using this TLS certificate file"),
    f("key", Str, "", "identify secure client using this TLS key file"),
    f(
        "cacert",
        Str,
        "",
        "verify certificates of TLS-enabled secure servers using this CA bundle",
    ),
    f(
        "user",
        Str,
        "",
        "username[:password] for authentication (prompt if password is not supplied)",
    ),
    f(
        "password",
        Str,
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    fs(
        "discovery-srv",
        'd',
        Str,
        "",
        "domain name to query for SRV records describing cluster endpoints",
    ),
    f("discovery-srv-name", Str, "", "service name to query when using DNS discovery"),
];

static GET_FLAGS: &[Flag] = &[
    f(
        "consistency",
        Str,
        "l",
        "Linearizable(l) or Serializable(s)",
    ),
    f(
        "order",
        Str,
        "",
        "Order of results; ASCEND or DESCEND (ASCEND by default)",
    ),
    f(
        "sort-by",
        Str,
        "",
        "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
    ),
    f("limit", Int64, "0", "Maximum number of results"),
    f("prefix", Bool, "false", "Get keys with matching prefix"),
    f(
        "from-key",
        Bool,
        "false",
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    f("rev", Int64, "0", "Specify the kv revision"),
    f("keys-only", Bool, "false", "Get only the keys"),
    f("count-only", Bool, "false", "Get only the count"),
    f(
        "print-value-only",
        Bool,
        "false",
        "Only write values when using the \"simple\" output format",
    ),
    f(
        "min-mod-revision",
        Int64,
        "0",
        "Filter out keys modified before this revision (rustcdctl extension)",
    ),
    f(
        "max-mod-revision",
        Int64,
        "0",
        "Filter out keys modified after this revision (rustcdctl extension)",
    ),
    f(
        "min-create-revision",
        Int64,
        "0",
        "Filter out keys created before this revision (rustcdctl extension)",
    ),
    f(
        "max-create-revision",
        Int64,
        "0",
        "Filter out keys created after this revision (rustcdctl extension)",
    ),
];

/// The filter flags etcdctl 3.5.1 lacks: left out of `get --help`.
pub const HIDDEN_FLAGS: &[&str] = &[
    "min-mod-revision",
    "max-mod-revision",
    "min-create-revision",
    "max-create-revision",
];

static PUT_FLAGS: &[Flag] = &[
    f(
        "lease",
        Str,
        "0",
        "lease ID (in hexadecimal) to attach to the key",
    ),
    f(
        "prev-kv",
        Bool,
        "false",
        "return the previous key-value pair before modification",
    ),
    f(
        "ignore-value",
        Bool,
        "false",
        "updates the key using its current value",
    ),
    f(
        "ignore-lease",
        Bool,
        "false",
        "updates the key using its current lease",
    ),
];

static DEL_FLAGS: &[Flag] = &[
    f("prefix", Bool, "false", "delete keys with matching prefix"),
    f("prev-kv", Bool, "false", "return deleted key-value pairs"),
    f(
        "from-key",
        Bool,
        "false",
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
];

static TXN_FLAGS: &[Flag] = &[fs(
    "interactive",
    'i',
    Bool,
    "false",
    "Input transaction in interactive mode",
)];

static COMPACTION_FLAGS: &[Flag] = &[f(
    "physical",
    Bool,
    "false",
    "'true' to wait for compaction to physically remove all old revisions",
)];

static CLUSTER_FLAG: &[Flag] = &[f(
    "cluster",
    Bool,
    "false",
    "use all endpoints from the cluster member list",
)];

static WATCH_FLAGS: &[Flag] = &[
    fs("interactive", 'i', Bool, "false", "Interactive mode"),
    f(
        "prefix",
        Bool,
        "false",
        "Watch on a prefix if prefix is set",
    ),
    f("rev", Int64, "0", "Revision to start watching"),
    f(
        "prev-kv",
        Bool,
        "false",
        "get the previous key-value pair before the event happens",
    ),
    f(
        "progress-notify",
        Bool,
        "false",
        "get periodic watch progress notification from server",
    ),
];

const PUT_LONG: &str = "
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
";

pub static ROOT: Cmd = Cmd {
    name: "etcdctl",
    use_: "etcdctl",
    short: "A simple command line client for etcd3.",
    long: "",
    flags: &[],
    persistent: GLOBAL_FLAGS,
    runnable: false,
    subs: &[
        group(
            "alarm",
            "alarm <subcommand>",
            "Alarm related commands",
            &[
                leaf("disarm", "disarm", "Disarms all alarms", &[]),
                leaf("list", "list", "Lists all alarms", &[]),
            ],
        ),
        crate::authcmd::AUTH,
        crate::check::CHECK,
        leaf(
            "compaction",
            "compaction [options] <revision>",
            "Compacts the event history in etcd",
            COMPACTION_FLAGS,
        ),
        Cmd {
            name: "defrag",
            use_: "defrag",
            short: "Defragments the storage of the etcd members with given endpoints",
            long: "",
            flags: &[f(
                "data-dir",
                Str,
                "",
                "Optional. If present, defragments a data directory not in use by etcd.",
            )],
            persistent: CLUSTER_FLAG,
            subs: &[],
            runnable: true,
        },
        leaf(
            "del",
            "del [options] <key> [range_end]",
            "Removes the specified key or range of keys [key, range_end)",
            DEL_FLAGS,
        ),
        crate::concurrency::ELECT,
        Cmd {
            name: "endpoint",
            use_: "endpoint <subcommand>",
            short: "Endpoint related commands",
            long: "",
            flags: &[],
            persistent: CLUSTER_FLAG,
            runnable: false,
            subs: &[
                Cmd {
                    name: "hashkv",
                    use_: "hashkv",
                    short: "Prints the KV history hash for each endpoint in --endpoints",
                    long: "",
                    flags: &[],
                    persistent: &[f(
                        "rev",
                        Int64,
                        "0",
                        "maximum revision to hash (default: all revisions)",
                    )],
                    subs: &[],
                    runnable: true,
                },
                leaf(
                    "health",
                    "health",
                    "Checks the healthiness of endpoints specified in `--endpoints` flag",
                    &[],
                ),
                Cmd {
                    name: "status",
                    use_: "status",
                    short: "Prints out the status of endpoints specified in `--endpoints` flag",
                    long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
",
                    flags: &[],
                    persistent: &[],
                    subs: &[],
                    runnable: true,
                },
            ],
        },
        leaf("get", "get [options] <key> [range_end]", "Gets the key or a range of keys", GET_FLAGS),
        leaf("help", "help [command]", "Help about any command", &[]),
        group(
            "lease",
            "lease <subcommand>",
            "Lease related commands",
            &[
                leaf("grant", "grant <ttl>", "Creates leases", &[]),
                leaf(
                    "keep-alive",
                    "keep-alive [options] <leaseID>",
                    "Keeps leases alive (renew)",
                    &[f(
                        "once",
                        Bool,
                        "false",
                        "Resets the keep-alive time to its original value and cobrautl.Exits immediately",
                    )],
                ),
                leaf("list", "list", "List all active leases", &[]),
                leaf("revoke", "revoke <leaseID>", "Revokes leases", &[]),
                leaf(
                    "timetolive",
                    "timetolive <leaseID> [options]",
                    "Get lease information",
                    &[f("keys", Bool, "false", "Get keys attached to this lease")],
                ),
            ],
        ),
        crate::concurrency::LOCK,
        crate::mirror::MAKE_MIRROR,
        group(
            "member",
            "member <subcommand>",
            "Membership related commands",
            &[
                leaf(
                    "add",
                    "add <memberName> [options]",
                    "Adds a member into the cluster",
                    &[
                        f(
                            "peer-urls",
                            Str,
                            "",
                            "comma separated peer URLs for the new member.",
                        ),
                        f(
                            "learner",
                            Bool,
                            "false",
                            "indicates if the new member is raft learner",
                        ),
                    ],
                ),
                Cmd {
                    name: "list",
                    use_: "list",
                    short: "Lists all members in the cluster",
                    long: "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
",
                    flags: &[],
                    persistent: &[],
                    subs: &[],
                    runnable: true,
                },
                Cmd {
                    name: "promote",
                    use_: "promote <memberID>",
                    short: "Promotes a non-voting member in the cluster",
                    long: "Promotes a non-voting learner member to a voting one in the cluster.
",
                    flags: &[],
                    persistent: &[],
                    subs: &[],
                    runnable: true,
                },
                leaf(
                    "remove",
                    "remove <memberID>",
                    "Removes a member from the cluster",
                    &[],
                ),
                leaf(
                    "update",
                    "update <memberID> [options]",
                    "Updates a member in the cluster",
                    &[f(
                        "peer-urls",
                        Str,
                        "",
                        "comma separated peer URLs for the updated member.",
                    )],
                ),
            ],
        ),
        leaf(
            "move-leader",
            "move-leader <transferee-member-id>",
            "Transfers leadership to another etcd cluster member.",
            &[],
        ),
        Cmd {
            name: "put",
            use_: "put [options] <key> <value> (<value> can also be given from stdin)",
            short: "Puts the given key into the store",
            long: PUT_LONG,
            flags: PUT_FLAGS,
            persistent: &[],
            subs: &[],
            runnable: true,
        },
        crate::authcmd::ROLE,
        group(
            "snapshot",
            "snapshot <subcommand>",
            "Manages etcd node snapshots",
            &[
                crate::snapshot::RESTORE,
                leaf(
                    "save",
                    "save <filename>",
                    "Stores an etcd node backend snapshot to a given file",
                    &[],
                ),
                crate::snapshot::STATUS,
            ],
        ),
        leaf(
            "txn",
            "txn [options]",
            "Txn processes all the requests in one transaction",
            TXN_FLAGS,
        ),
        crate::authcmd::USER,
        leaf("version", "version", "Prints the version of etcdctl", &[]),
        leaf(
            "watch",
            "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
            "Watches events stream on keys or prefixes",
            WATCH_FLAGS,
        ),
    ],
};

static HELP_FLAG_PROTO: Flag = fs("help", 'h', Bool, "false", "");

/// The parsed command line.
pub struct Parsed {
    /// Root first, the command last.
    pub path: Vec<&'static Cmd>,
    pub args: Vec<String>,
    /// Index into `args` of the first argument after `--`.
    pub dash_at: Option<usize>,
    values: HashMap<&'static str, Vec<String>>,
    changed: HashSet<&'static str>,
    values_from_env: HashSet<&'static str>,
    pub help: bool,
}

/// A parse failure, told as cobra tells it.
pub enum ParseError {
    /// Bad flag: "Error: ..." + usage on stdout + "Error: ..." again.
    Flag(Vec<&'static Cmd>, String),
    /// Unknown command under the root.
    UnknownCommand(String),
}

impl Parsed {
    pub fn cmd(&self) -> &'static Cmd {
        self.path[self.path.len() - 1]
    }

    /// The command path without the root, e.g. "lease grant".
    pub fn name(&self) -> String {
        self.path[1..]
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn find(&self, name: &str) -> Option<&'static Flag> {
        all_flags(&self.path).into_iter().find(|f| f.name == name)
    }

    fn raw(&self, name: &str) -> String {
        if let Some(v) = self.values.get(name) {
            return v.last().cloned().unwrap_or_default();
        }
        self.find(name)
            .map(|f| f.default.to_string())
            .unwrap_or_default()
    }

    /// Whether the flag was set, on the command line or from `ETCDCTL_*`.
    pub fn changed(&self, name: &str) -> bool {
        self.changed.contains(name) || self.values_from_env.contains(name)
    }

    pub fn str(&self, name: &str) -> String {
        self.raw(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        gofmt::parse_bool(&self.raw(name)).unwrap_or(false)
    }

    pub fn i64(&self, name: &str) -> i64 {
        gofmt::parse_int(&self.raw(name), 0).unwrap_or(0)
    }

    pub fn duration(&self, name: &str) -> Duration {
        gofmt::parse_duration(&self.raw(name)).unwrap_or_default()
    }

    pub fn strs(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(v) => v.clone(),
            None => {
                let d = self.find(name).map(|f| f.default).unwrap_or("[]");
                let d = d.trim_start_matches('[').trim_end_matches(']');
                d.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
        }
    }

    /// Sets every global (inherited) flag not given on the command line from
    /// `ETCDCTL_<FLAG>`, as etcdctl's `SetPflagsFromEnv`: a bad value is
    /// ignored; a variable whose flag is also on the command line is fatal.
    pub fn apply_env(&mut self) -> Result<(), String> {
        let inherited = inherited_flags(&self.path);
        for fl in inherited {
            let key = format!("ETCDCTL_{}", fl.name.to_uppercase().replace('-', "_"));
            let Ok(v) = std::env::var(&key) else { continue };
            if self.changed.contains(fl.name) {
                return Err(format!(
                    "{{\"level\":\"fatal\",\"msg\":\"conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))\",\"environment-variable\":\"{key}\"}}\n"
                ));
            }
            if v.is_empty() {
                continue;
            }
            let mut values = self.values.clone();
            let mut changed = self.changed.clone();
            if set_value(&mut values, &mut changed, fl, &v, true).is_ok() {
                self.values = values;
                self.values_from_env.insert(fl.name);
            }
        }
        Ok(())
    }
}

fn help_flag() -> &'static Flag {
    &HELP_FLAG_PROTO
}

fn inherited_flags(path: &[&'static Cmd]) -> Vec<&'static Flag> {
    let mut v: Vec<&'static Flag> = Vec::new();
    for c in &path[..path.len() - 1] {
        v.extend(c.persistent.iter());
    }
    v
}

fn local_flags(path: &[&'static Cmd]) -> Vec<&'static Flag> {
    let c = path[path.len() - 1];
    let mut v: Vec<&'static Flag> = c.flags.iter().chain(c.persistent.iter()).collect();
    v.push(help_flag());
    v
}

fn all_flags(path: &[&'static Cmd]) -> Vec<&'static Flag> {
    let mut v = local_flags(path);
    v.extend(inherited_flags(path));
    v
}

/// Sets `fl` to `v`, checking the value as pflag does.
fn set_value(
    values: &mut HashMap<&'static str, Vec<String>>,
    changed: &mut HashSet<&'static str>,
    fl: &'static Flag,
    v: &str,
    _from_env: bool,
) -> Result<(), String> {
    match fl.kind {
        Bool => {
            gofmt::parse_bool(v)?;
        }
        Int64 => {
            gofmt::parse_int(v, 0)?;
        }
        Duration => {
            gofmt::parse_duration(v)?;
        }
        Str | StrSlice => {}
    }
    if fl.kind == StrSlice {
        let items: Vec<String> = if v.is_empty() {
            Vec::new()
        } else {
            v.split(',').map(String::from).collect()
        };
        let e = values.entry(fl.name).or_default();
        if !changed.contains(fl.name) {
            e.clear();
        }
        e.extend(items);
    } else {
        values.insert(fl.name, vec![v.to_string()]);
    }
    changed.insert(fl.name);
    Ok(())
}

/// Finds the subcommand named `name` (or the only one it is a prefix of).
fn find_sub(c: &'static Cmd, name: &str) -> Option<&'static Cmd> {
    if let Some(s) = c.subs.iter().find(|s| s.name == name) {
        return Some(s);
    }
    let m: Vec<&Cmd> = c.subs.iter().filter(|s| s.name.starts_with(name)).collect();
    if m.len() == 1 {
        Some(m[0])
    } else {
        None
    }
}

/// cobra's `stripFlags`: the non-flag words of `args` (flags given as
/// `--flag value` drop their value).
fn strip_flags(args: &[String], path: &[&'static Cmd]) -> Vec<String> {
    // cobra adds `--help` only after finding the command: it is unknown here
    let flags: Vec<&Flag> = all_flags(path)
        .into_iter()
        .filter(|f| f.name != "help")
        .collect();
    let no_opt = |name: &str| flags.iter().any(|f| f.name == name && f.kind == Bool);
    let short_no_opt = |c: &str| {
        flags
            .iter()
            .any(|f| f.short.map(|s| s.to_string()).as_deref() == Some(c) && f.kind == Bool)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s == "--" {
            break;
        }
        if (s.starts_with("--") && !s.contains('=') && !no_opt(&s[2..]))
            || (s.starts_with('-')
                && !s.starts_with("--")
                && !s.contains('=')
                && s.len() == 2
                && !short_no_opt(&s[1..]))
        {
            // cobra skips the flag's value, and stops looking when it is
            // the last argument
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
            continue;
        }
        if !s.is_empty() && !s.starts_with('-') {
            out.push(s.clone());
        }
    }
    out
}

/// Parses the command line (without the program name).
pub fn parse(argv: &[String]) -> Result<Parsed, ParseError> {
    // Find the command, as cobra's Find does.
    let mut path: Vec<&'static Cmd> = vec![&ROOT];
    let mut rest: Vec<String> = argv.to_vec();
    loop {
        let cur = path[path.len() - 1];
        let words = strip_flags(&rest, &path);
        let Some(w) = words.first() else { break };
        match find_sub(cur, w) {
            Some(sub) => {
                if let Some(pos) = rest.iter().position(|a| a == w) {
                    rest.remove(pos);
                }
                path.push(sub);
            }
            None => break,
        }
    }
    let mut p = Parsed {
        path,
        args: Vec::new(),
        dash_at: None,
        values: HashMap::new(),
        changed: HashSet::new(),
        values_from_env: HashSet::new(),
        help: false,
    };
    // Root command with arguments left: unknown command.
    if p.path.len() == 1 {
        let words = strip_flags(&rest, &p.path);
        if let Some(w) = words.first() {
            return Err(ParseError::UnknownCommand(unknown_command(w)));
        }
    }
    let flags = all_flags(&p.path);
    let bad = |p: &Parsed, msg: String| ParseError::Flag(p.path.clone(), msg);
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].clone();
        i += 1;
        if a == "--" {
            p.dash_at = Some(p.args.len());
            p.args.extend(rest[i..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, val) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let Some(fl) = flags.iter().find(|f| f.name == name) else {
                return Err(bad(&p, format!("unknown flag: --{name}")));
            };
            let val = match val {
                Some(v) => v,
                None if fl.kind == Bool => "true".to_string(),
                None => {
                    if i < rest.len() {
                        i += 1;
                        rest[i - 1].clone()
                    } else {
                        return Err(bad(&p, format!("flag needs an argument: --{name}")));
                    }
                }
            };
            if fl.name == "help" {
                p.help = gofmt::parse_bool(&val).unwrap_or(false);
            }
            if let Err(e) = set_value(&mut p.values, &mut p.changed, fl, &val, false) {
                return Err(bad(
                    &p,
                    format!(
                        "invalid argument {} for {} flag: {e}",
                        gofmt::quote_str(&val),
                        gofmt::quote_str(&format!("--{name}"))
                    ),
                ));
            }
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let mut shorts: &str = &a[1..];
            while !shorts.is_empty() {
                let c = shorts.chars().next().unwrap();
                let clen = c.len_utf8();
                let Some(fl) = flags.iter().find(|f| f.short == Some(c)) else {
                    return Err(bad(
                        &p,
                        format!("unknown shorthand flag: '{c}' in -{shorts}"),
                    ));
                };
                let val;
                if shorts.len() > clen && shorts.as_bytes()[clen] == b'=' {
                    val = shorts[clen + 1..].to_string();
                    shorts = "";
                } else if fl.kind == Bool {
                    val = "true".to_string();
                    shorts = &shorts[clen..];
                } else if shorts.len() > clen {
                    val = shorts[clen..].to_string();
                    shorts = "";
                } else if i < rest.len() {
                    val = rest[i].clone();
                    i += 1;
                    shorts = "";
                } else {
                    return Err(bad(
                        &p,
                        format!("flag needs an argument: '{c}' in -{shorts}"),
                    ));
                }
                if fl.name == "help" {
                    p.help = gofmt::parse_bool(&val).unwrap_or(false);
                }
                if let Err(e) = set_value(&mut p.values, &mut p.changed, fl, &val, false) {
                    return Err(bad(
                        &p,
                        format!(
                            "invalid argument {} for {} flag: {e}",
                            gofmt::quote_str(&val),
                            gofmt::quote_str(&format!("-{c}, --{}", fl.name))
                        ),
                    ));
                }
            }
            continue;
        }
        p.args.push(a);
    }
    Ok(p)
}

/// cobra's unknown-command error with its suggestions.
fn unknown_command(w: &str) -> String {
    let mut sugg: Vec<&str> = Vec::new();
    for c in ROOT.subs {
        let d = levenshtein(&w.to_lowercase(), &c.name.to_lowercase());
        if d <= 2 || c.name.to_lowercase().starts_with(&w.to_lowercase()) {
            sugg.push(c.name);
        }
    }
    let mut s = format!("unknown command {} for \"etcdctl\"", gofmt::quote_str(w));
    if !sugg.is_empty() {
        s.push_str("\n\nDid you mean this?\n");
        for x in sugg {
            s.push_str(&format!("\t{x}\n"));
        }
    }
    s
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------- usage

fn flag_usages(flags: &[&'static Flag], cmd_name: &str) -> String {
    let mut sorted: BTreeMap<&str, &Flag> = BTreeMap::new();
    for fl in flags {
        if HIDDEN_FLAGS.contains(&fl.name) {
            continue;
        }
        sorted.insert(fl.name, fl);
    }
    let mut out = String::new();
    for fl in sorted.values() {
        let mut line = match fl.short {
            Some(c) => format!("  -{c}, --{}", fl.name),
            None => format!("      --{}", fl.name),
        };
        let is_bool = fl.kind == Bool;
        if is_bool {
            line.push('[');
        }
        if fl.kind == Str {
            line.push('=');
            line.push_str(&gofmt::quote_str(fl.default));
        } else {
            line.push('=');
            line.push_str(fl.default);
        }
        if is_bool {
            line.push(']');
        }
        let usage = if fl.name == "help" {
            format!("help for {cmd_name}")
        } else {
            fl.usage.to_string()
        };
        out.push_str(&format!("{line}\t{usage}\n"));
    }
    out
}

fn sorted_subs(c: &'static Cmd) -> Vec<&'static Cmd> {
    let mut v: Vec<&'static Cmd> = c.subs.iter().collect();
    v.sort_by_key(|s| s.name);
    v
}

fn all_subs(c: &'static Cmd, prefix: &str, out: &mut Vec<(String, &'static Cmd)>) {
    for s in sorted_subs(c) {
        let name = if prefix.is_empty() {
            s.name.to_string()
        } else {
            format!("{prefix} {}", s.name)
        };
        out.push((name.clone(), s));
        all_subs(s, &name, out);
    }
}

/// etcdctl's usage text for the command at the end of `path`.
pub fn usage(path: &[&'static Cmd]) -> String {
    let cmd = path[path.len() - 1];
    let has_parent = path.len() > 1;
    let mut t = String::new();
    t.push_str("NAME:\n");
    if !has_parent {
        t.push_str(&format!("\t{} - {}\n", cmd.name, cmd.short));
    } else {
        let n: Vec<&str> = path[1..].iter().map(|c| c.name).collect();
        t.push_str(&format!("\t{} - {}\n", n.join(" "), cmd.short));
    }
    t.push_str("\nUSAGE:\n");
    let mut use_line = if has_parent {
        let n: Vec<&str> = path[..path.len() - 1].iter().map(|c| c.name).collect();
        format!("{} {}", n.join(" "), cmd.use_)
    } else {
        cmd.use_.to_string()
    };
    if !use_line.contains("[flags]") {
        use_line.push_str(" [flags]");
    }
    t.push_str(&format!("\t{use_line}\n"));
    if !has_parent {
        t.push_str(&format!("\nVERSION:\n\t{}\n", crate::VERSION));
    }
    if !cmd.subs.is_empty() {
        t.push_str(&format!("\nAPI VERSION:\n\t{}\n", crate::API_VERSION));
        t.push_str("\n\nCOMMANDS:\n");
        let mut subs = Vec::new();
        all_subs(cmd, "", &mut subs);
        for (name, s) in subs {
            if s.runnable {
                t.push_str(&format!("\t{name}\t{}\n", s.short));
            }
        }
    }
    if !cmd.long.is_empty() {
        t.push_str("\nDESCRIPTION:\n");
        for line in cmd.long.trim_matches(['\n', '\t', ' ']).split('\n') {
            t.push_str(&format!("\t{line}\n"));
        }
    }
    t.push_str("\nOPTIONS:\n");
    t.push_str(&flag_usages(&local_flags(path), cmd.name));
    if has_parent {
        t.push_str("\nGLOBAL OPTIONS:\n");
        t.push_str(&flag_usages(&inherited_flags(path), cmd.name));
    }
    t.push('\n');
    tabwriter(&t)
}

/// Go's `text/tabwriter` with minwidth 0, tabwidth 8, padding 1 and tabs
/// as padding, as etcdctl's help uses it.
pub fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l).split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths: Vec<usize> = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

fn cell_w(s: &str) -> usize {
    s.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_w(lines[this][column]) + 1);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], l0: usize, l1: usize, widths: &[usize], out: &mut String) {
    for line in &lines[l0..l1] {
        for (j, c) in line.iter().enumerate() {
            out.push_str(c);
            if j < widths.len() && j + 1 < line.len() {
                let cellw = widths[j].div_ceil(8) * 8;
                let n = cellw - cell_w(c);
                for _ in 0..n.div_ceil(8) {
                    out.push('\t');
                }
            }
        }
        out.push('\n');
    }
}
