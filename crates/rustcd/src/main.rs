//! `rustcd`: an etcd v3 member. Takes etcd 3.5's flags and `ETCD_*`
//! variables, serves until SIGINT or SIGTERM, then stops cleanly.

mod flags;
mod logging;

use std::process::ExitCode;

use flags::Command;

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
