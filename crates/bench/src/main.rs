//! rustcd-bench: a load generator for etcd v3 gRPC servers, modelled on
//! etcd's `tools/benchmark`. It speaks only the public etcd v3 gRPC API, so
//! real etcd and rustcd are measured by the same code.

mod args;
mod conn;
mod election;
mod kv;
mod lease;
mod progress;
mod report;
mod watch;

use std::process::ExitCode;

use args::Parsed;
use conn::Global;
use report::{json_object, Json, Stats};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args::parse(&argv) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", args::usage());
            return ExitCode::from(2);
        }
    };
    let Some(cmd) = parsed.command else {
        if parsed.help || argv.is_empty() {
            print!("{}", args::usage());
            return ExitCode::SUCCESS;
        }
        eprintln!("Error: no command given\n\n{}", args::usage());
        return ExitCode::from(2);
    };
    if parsed.help {
        print!("{}", args::command_usage(cmd));
        return ExitCode::SUCCESS;
    }
    let g = match Global::from_args(&parsed) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cmd.name, &parsed, &g)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("Error: {e}\n\n{}", args::command_usage(cmd));
            ExitCode::from(2)
        }
        Err(Failure::Unimplemented(what, e)) => {
            eprintln!("server does not implement {what} ({e})");
            if g.json {
                println!(
                    "{}",
                    json_object(&[
                        ("command".into(), Json::Str(cmd.name.into())),
                        ("unimplemented".into(), Json::Bool(true)),
                        ("error".into(), Json::Str(e)),
                    ])
                );
            }
            ExitCode::from(3)
        }
        Err(Failure::Run(e)) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    /// The server answered `Unimplemented` for this service.
    Unimplemented(&'static str, String),
    Run(String),
}

fn run_err(what: &'static str) -> impl Fn(String) -> Failure {
    move |e| {
        if e.contains("code = Unimplemented") {
            Failure::Unimplemented(what, e)
        } else {
            Failure::Run(e)
        }
    }
}

fn header(cmd: &str, g: &Global) -> Vec<(String, Json)> {
    vec![
        ("command".into(), Json::Str(cmd.into())),
        ("endpoints".into(), Json::Str(g.endpoints.join(","))),
        ("conns".into(), Json::Int(g.conns as u64)),
        ("clients".into(), Json::Int(g.clients as u64)),
        ("target_leader".into(), Json::Bool(g.target_leader)),
    ]
}

fn print_stats(cmd: &str, g: &Global, stats: &Stats, extra: Vec<(String, Json)>, text_head: &str) {
    if g.json {
        let mut f = header(cmd, g);
        f.extend(extra);
        stats.json_fields("", &mut f);
        println!("{}", json_object(&f));
    } else {
        print!("{text_head}{}", stats.text(g.precise));
        println!();
    }
}

async fn run(cmd: &str, a: &Parsed, g: &Global) -> Result<(), Failure> {
    let u = |r: Result<u64, String>| r.map_err(Failure::Usage);
    match cmd {
        "put" | "txn-put" => {
            let key_size = u(a.u64("key-size"))? as usize;
            let val_size = u(a.u64("val-size"))? as usize;
            let total = u(a.u64("total"))?;
            let rate = u(a.u64("rate"))?;
            let key_space = u(a.u64("key-space-size"))?;
            if key_space == 0 {
                return Err(Failure::Usage(format!(
                    "expected positive --key-space-size, got ({key_space})"
                )));
            }
            let val = kv::Rng::new(1).bytes(val_size);
            let mut extra = vec![
                ("total_requested".into(), Json::Int(total)),
                ("key_size".into(), Json::Int(key_size as u64)),
                ("val_size".into(), Json::Int(val_size as u64)),
                ("key_space_size".into(), Json::Int(key_space)),
            ];
            let work = if cmd == "put" {
                let sequential = a.bool("sequential-keys");
                extra.push(("sequential_keys".into(), Json::Bool(sequential)));
                kv::Work::Put {
                    key_size,
                    val,
                    key_space,
                    sequential,
                }
            } else {
                let ops = u(a.u64("txn-ops"))?;
                if ops == 0 || ops > key_space {
                    return Err(Failure::Usage(format!(
                        "expected --txn-ops between 1 and --key-space-size, got txn-ops({ops}) key-space-size({key_space})"
                    )));
                }
                extra.push(("txn_ops".into(), Json::Int(ops)));
                kv::Work::TxnPut {
                    key_size,
                    val,
                    ops,
                    key_space,
                }
            };
            let stats = kv::run(g, cmd, total, rate, work)
                .await
                .map_err(run_err("KV"))?;
            print_stats(cmd, g, &stats, extra, "");
        }
        "range" => {
            if a.positional.is_empty() || a.positional.len() > 2 {
                return Err(Failure::Usage("range needs KEY and an optional END".into()));
            }
            let key = a.positional[0].clone().into_bytes();
            let end = a
                .positional
                .get(1)
                .cloned()
                .unwrap_or_default()
                .into_bytes();
            let (serializable, head) = match a.str("consistency") {
                "l" => (false, "bench with linearizable range\n"),
                "s" => (true, "bench with serializable range\n"),
                other => {
                    return Err(Failure::Usage(format!(
                        "--consistency must be l or s, not {other:?}"
                    )))
                }
            };
            let total = u(a.u64("total"))?;
            let rate = u(a.u64("rate"))?;
            let stats = kv::run(
                g,
                "range",
                total,
                rate,
                kv::Work::Range {
                    key,
                    end,
                    serializable,
                },
            )
            .await
            .map_err(run_err("KV"))?;
            let extra = vec![
                ("total_requested".into(), Json::Int(total)),
                ("consistency".into(), Json::Str(a.str("consistency").into())),
            ];
            print_stats("range", g, &stats, extra, head);
        }
        "watch" => {
            let o = watch::WatchOpts {
                streams: u(a.u64("streams"))? as usize,
                per_stream: u(a.u64("watch-per-stream"))? as usize,
                key_total: u(a.u64("watched-key-total"))? as usize,
                put_rate: u(a.u64("put-rate"))?,
                put_total: u(a.u64("put-total"))?,
                key_size: u(a.u64("key-size"))? as usize,
                key_space: u(a.u64("key-space-size"))?,
                sequential: a.bool("sequential-keys"),
                event_timeout: a.duration("event-timeout").map_err(Failure::Usage)?,
            };
            let r = watch::watch(g, o).await.map_err(run_err("watch"))?;
            let put_errs = r.put_errors.errors.values().sum::<u64>();
            if g.json {
                let mut f = header("watch", g);
                f.push(("expected_events".into(), Json::Int(r.expected_events)));
                f.push(("put_errors".into(), Json::Int(put_errs)));
                r.create.json_fields("create_", &mut f);
                r.events.json_fields("", &mut f);
                println!("{}", json_object(&f));
            } else {
                print!("Watch creation summary:\n{}", r.create.text(g.precise));
                print!(
                    "\nWatch events received summary ({} expected; latency = put issued -> event received):\n{}",
                    r.expected_events,
                    r.events.text(g.precise)
                );
                if put_errs > 0 {
                    println!("\nPut errors:");
                    for (e, n) in &r.put_errors.errors {
                        println!("  [{n}]\t{e}");
                    }
                }
                println!();
            }
        }
        "watch-latency" => {
            let o = watch::LatencyOpts {
                total: u(a.u64("total"))?,
                put_rate: u(a.u64("put-rate"))?,
                key_size: u(a.u64("key-size"))? as usize,
                val_size: u(a.u64("val-size"))? as usize,
                event_timeout: a.duration("event-timeout").map_err(Failure::Usage)?,
            };
            let total = o.total;
            let stats = watch::watch_latency(g, o).await.map_err(run_err("watch"))?;
            print_stats(
                "watch-latency",
                g,
                &stats,
                vec![("total_requested".into(), Json::Int(total))],
                "",
            );
        }
        "lease-keepalive" => {
            let total = u(a.u64("total"))?;
            let r = lease::keepalive(g, total)
                .await
                .map_err(run_err("leases"))?;
            let extra = vec![
                ("total_requested".into(), Json::Int(total)),
                ("leases".into(), Json::Int(r.leases)),
                ("leases_kept_alive".into(), Json::Int(r.leases_kept_alive)),
                (
                    "min_keepalives_per_lease".into(),
                    Json::Int(r.min_per_lease),
                ),
                (
                    "max_keepalives_per_lease".into(),
                    Json::Int(r.max_per_lease),
                ),
                ("grant_secs".into(), Json::Num(r.grant_secs)),
                ("revoke_errors".into(), Json::Int(r.revoke_errors)),
            ];
            let head = format!(
                "{} leases granted in {:.3} secs; {} of them kept alive ({}..{} keepalives per lease); {} revokes failed\n",
                r.leases,
                r.grant_secs,
                r.leases_kept_alive,
                r.min_per_lease,
                r.max_per_lease,
                r.revoke_errors
            );
            print_stats("lease-keepalive", g, &r.stats, extra, &head);
        }
        "leader" => {
            let (idx, url) = conn::find_leader(g).await.map_err(Failure::Run)?;
            if g.json {
                println!(
                    "{}",
                    json_object(&[
                        ("command".into(), Json::Str("leader".into())),
                        (
                            "index".into(),
                            idx.map_or(Json::Num(f64::NAN), |i| Json::Int(i as u64))
                        ),
                        ("endpoint".into(), Json::Str(url)),
                    ])
                );
            } else {
                match idx {
                    Some(i) => println!("{i} {url}"),
                    None => println!("- {url}"),
                }
            }
        }
        "election" => {
            let pids = a
                .str("pids")
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad pid {s:?} in --pids"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::Usage)?;
            let d = |n| a.duration(n).map_err(Failure::Usage);
            let o = election::ElectionOpts {
                pids,
                interval: d("interval")?.max(std::time::Duration::from_millis(1)),
                attempt_timeout: d("attempt-timeout")?,
                timeout: d("timeout")?,
            };
            let r = election::run(g, o).await.map_err(Failure::Run)?;
            let fails: Vec<String> = r
                .failures
                .iter()
                .map(|(e, n)| format!("[{n}] {e}"))
                .collect();
            if g.json {
                let mut f = header("election", g);
                f.push(("killed_index".into(), Json::Int(r.killed_index as u64)));
                f.push(("killed_endpoint".into(), Json::Str(r.killed_endpoint)));
                f.push(("killed_pid".into(), Json::Int(r.killed_pid as u64)));
                f.push(("elapsed_secs".into(), Json::Num(r.elapsed.as_secs_f64())));
                f.push(("via_endpoint".into(), Json::Str(r.via_endpoint)));
                f.push(("attempts".into(), Json::Int(r.attempts)));
                f.push((
                    "failed_attempts".into(),
                    Json::Int(r.failures.values().sum()),
                ));
                f.push(("error_kinds".into(), Json::Str(fails.join("; "))));
                println!("{}", json_object(&f));
            } else {
                println!(
                    "Killed the leader #{} {} (pid {}); first successful put after {:.4} secs via {} ({} attempts started).",
                    r.killed_index,
                    r.killed_endpoint,
                    r.killed_pid,
                    r.elapsed.as_secs_f64(),
                    r.via_endpoint,
                    r.attempts
                );
                if !fails.is_empty() {
                    println!("Failed attempts:");
                    for f in fails {
                        println!("  {f}");
                    }
                }
            }
        }
        other => return Err(Failure::Usage(format!("unknown command {other}"))),
    }
    Ok(())
}
