//! rustcdctl: etcdctl 3.5 rewritten in Rust — same commands, flags,
//! `ETCDCTL_*` variables, output formats (byte for byte), error lines and
//! exit codes, against rustcd or any etcd v3 server.

mod authcmd;
mod check;
mod client;
mod commands;
mod concurrency;
mod flags;
mod gofmt;
mod mirror;
mod printer;
mod snapshot;
mod table;
mod tls;
mod watch;

use std::io::Write;

/// The etcdctl version rustcdctl answers as (scripts parse it).
pub const VERSION: &str = "3.5.1";
pub const API_VERSION: &str = "3.5";

// etcdctl's exit codes
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_BAD_CONNECTION: i32 = 2;
pub const EXIT_INVALID_INPUT: i32 = 3;
pub const EXIT_BAD_FEATURE: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 5;
pub const EXIT_BAD_ARGS: i32 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// `Error: <msg>` on stderr.
    Error,
    /// `<msg>` (possibly empty) as is: the command already said why.
    Silent,
    /// What a Go panic in etcdctl looks like (exit 2).
    Panic,
}

#[derive(Debug)]
pub struct CtlError {
    pub code: i32,
    pub msg: String,
    pub kind: ErrKind,
}

impl CtlError {
    pub fn new(code: i32, msg: impl Into<String>) -> CtlError {
        CtlError {
            code,
            msg: msg.into(),
            kind: ErrKind::Error,
        }
    }
    pub fn silent(code: i32) -> CtlError {
        CtlError {
            code,
            msg: String::new(),
            kind: ErrKind::Silent,
        }
    }
    pub fn panic(msg: impl Into<String>) -> CtlError {
        CtlError {
            code: 2,
            msg: msg.into(),
            kind: ErrKind::Panic,
        }
    }
}

pub fn out(b: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b);
    let _ = o.flush();
}

pub fn err_out(b: &[u8]) {
    let mut o = std::io::stderr().lock();
    let _ = o.write_all(b);
    let _ = o.flush();
}

pub fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

fn fail(e: CtlError) -> ! {
    match e.kind {
        ErrKind::Error => err_out(format!("Error: {}\n", e.msg).as_bytes()),
        ErrKind::Silent => err_out(e.msg.as_bytes()),
        ErrKind::Panic => err_out(
            format!(
                "panic: {}\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]\n",
                e.msg
            )
            .as_bytes(),
        ),
    }
    exit(e.code)
}

fn main() {
    match std::env::var("ETCDCTL_API").unwrap_or_default().as_str() {
        "" | "3" => {}
        "2" => {
            err_out(b"Error: ETCDCTL_API=2 (the v2 API) is not supported by rustcdctl\n");
            exit(EXIT_ERROR);
        }
        v => {
            err_out(format!("unsupported API version {v}\n").as_bytes());
            exit(EXIT_ERROR);
        }
    }
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut p = match flags::parse(&argv) {
        Ok(p) => p,
        Err(flags::ParseError::Flag(path, msg)) => {
            err_out(format!("Error: {msg}\n").as_bytes());
            out(flags::usage(&path).as_bytes());
            err_out(format!("\nError: {msg}\n").as_bytes());
            exit(EXIT_ERROR);
        }
        Err(flags::ParseError::UnknownCommand(msg)) => {
            err_out(
                format!("Error: {msg}\nRun 'etcdctl --help' for usage.\nError: {msg}\n").as_bytes(),
            );
            exit(EXIT_ERROR);
        }
    };
    if p.help || !p.cmd().runnable {
        out(flags::usage(&p.path).as_bytes());
        exit(0);
    }
    if p.cmd().name == "help" && p.path.len() == 2 {
        // cobra's help command: an unknown command under the root is an
        // unknown topic; deeper, the nearest command's help
        let mut target = vec![&flags::ROOT];
        for a in &p.args {
            let cur = target[target.len() - 1];
            match cur.subs.iter().find(|s| s.name == a.as_str()) {
                Some(s) => target.push(s),
                None if target.len() == 1 => {
                    // the root's --help flag is not set up on this path
                    let u: String = flags::usage(&target)
                        .split_inclusive('\n')
                        .filter(|l| !l.starts_with("  -h, --help"))
                        .collect();
                    out(u.as_bytes());
                    let topics: Vec<String> = p.args.iter().map(|a| format!("`{a}`")).collect();
                    err_out(format!("Unknown help topic [{}]\n", topics.join(" ")).as_bytes());
                    exit(0);
                }
                None => break,
            }
        }
        out(flags::usage(&target).as_bytes());
        exit(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(commands::run(&mut p)) {
        Ok(()) => exit(0),
        Err(e) => fail(e),
    }
}
