//! `rustcd`: an etcd v3 member. Takes etcd 3.5's flags and `ETCD_*`
//! variables, serves until SIGINT or SIGTERM, then stops cleanly.

mod flags;
mod logging;

use std::process::ExitCode;

use flags::Command;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
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
