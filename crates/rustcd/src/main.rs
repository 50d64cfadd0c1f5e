//! `rustcd`: an etcd v3 member. Takes etcd 3.5's flags and `ETCD_*`
//! variables, serves until SIGINT or SIGTERM, then stops cleanly.

mod flags;
mod logging;

use std::process::ExitCode;

use flags::Command;

// jemalloc rather than glibc's malloc: measured on the put and range
// benchmarks (docs/benchmarks.md) it costs less CPU per request, and its
// per-thread caches do not fragment the way glibc's per-thread arenas do
// under tokio's work stealing (memory freed on another thread than it was
// allocated on).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Few arenas (the work is done by a handful of threads) and dirty pages
// returned to the OS after about a second by jemalloc's background thread,
// so a burst (a large range, a snapshot) does not stay in the RSS.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    if args.get(1).map(String::as_str) == Some("snapshot") {
        return snapshot_command(&args, &env);
    }
    let (cfg, warnings) = match flags::parse(args, &env) {
        Ok(Command::Run(cfg, warnings)) => (cfg, warnings),
        Ok(Command::Version) => {
            print!("{}", flags::version_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    logging::init(&cfg.log);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rustcd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rustcd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(*cfg))
}

async fn run(cfg: rustcd_server::ServerConfig) -> ExitCode {
    let member = match rustcd_server::Member::start(cfg).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot start member");
            eprintln!("rustcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rustcd: cannot install SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stopped = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("received interrupt signal, shutting down"); None }
        _ = sigterm.recv() => { tracing::info!("received terminated signal, shutting down"); None }
        why = member.failed() => Some(why),
    };
    member.shutdown().await;
    match stopped {
        None => ExitCode::SUCCESS,
        Some(rustcd_server::Stopped::Removed) => {
            eprintln!("rustcd: the member has been permanently removed from the cluster");
            ExitCode::SUCCESS
        }
        Some(rustcd_server::Stopped::Fatal) => {
            eprintln!("rustcd: the member stopped after a fatal error (see the log)");
            ExitCode::FAILURE
        }
    }
}

/// `rustcd snapshot restore FILE [--name --data-dir --initial-cluster
/// --initial-cluster-token --initial-advertise-peer-urls]`, as etcdutl's.
fn snapshot_command(args: &[String], env: &[(String, String)]) -> ExitCode {
    let usage = "usage: rustcd snapshot restore <file> [--name NAME] [--data-dir DIR] \
                 [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN] \
                 [--initial-advertise-peer-urls URLS]";
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "-help")
    {
        println!("{usage}");
        return ExitCode::SUCCESS;
    }
    let (Some("restore"), Some(file)) = (args.get(2).map(String::as_str), args.get(3)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut flag_args = vec![args[0].clone()];
    flag_args.extend(args[4..].iter().cloned());
    let cfg = match flags::parse(flag_args, env) {
        Ok(Command::Run(cfg, _)) => cfg,
        Ok(_) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    match rustcd_server::restore_snapshot(std::path::Path::new(file), &cfg) {
        Ok(()) => {
            println!(
                "restored snapshot {file} into {} for member {}",
                cfg.data_dir.display(),
                cfg.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
