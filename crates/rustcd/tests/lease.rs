//! Leases with the real etcdctl 3.5.1: grant, attach, time-to-live,
//! keep-alive, revoke, expiry, and survival across leader loss and restart.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// etcd lists a lease's keys in map order: sort them so outputs compare.
fn sort_listed_keys(line: &str) -> String {
    for (open, close, sep) in [("keys([", "])", " "), ("\"keys\":[", "]", ",")] {
        if let Some(i) = line.find(open) {
            let start = i + open.len();
            if let Some(len) = line[start..].find(close) {
                let mut items: Vec<&str> = line[start..start + len].split(sep).collect();
                items.sort_unstable();
                return format!(
                    "{}{}{}",
                    &line[..start],
                    items.join(sep),
                    &line[start + len..]
                );
            }
        }
    }
    line.to_string()
}

/// Replaces 16-hex-digit lease ids with `ID` so outputs of two servers compare.
fn hide_ids(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        if line.starts_with("{\"level\"") {
            continue;
        }
        let mut line = sort_listed_keys(line);
        for key in [
            "\"cluster_id\":",
            "\"member_id\":",
            "\"raft_term\":",
            "\"id\":",
            "\"ID\":",
        ] {
            line = replace_number_after(&line, key);
        }
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let t = w.trim_end_matches([',', ')']);
                if t.len() >= 12 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                    w.replacen(t, "ID", 1)
                } else {
                    w.to_string()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn grant(ep: &str, ttl: &str) -> String {
    let r = etcdctl(ep, &["lease", "grant", ttl]);
    assert!(r.ok, "{r:?}");
    r.stdout.split_whitespace().nth(1).unwrap().to_string()
}

/// The same lease session against etcd 3.5.1 and rustcd prints the same.
#[test]
fn lease_commands_match_real_etcd() {
    let session = |c: &Cluster| -> Vec<String> {
        let ep = c.ep(0);
        let mut out = Vec::new();
        let mut run = |args: &[&str]| {
            let r = etcdctl(ep, args);
            out.push(format!(
                "$ {}exit {}\n{}{}",
                hide_ids(&args.join(" ")),
                r.code,
                hide_ids(&r.stdout),
                hide_ids(&r.stderr)
            ));
        };
        let id = grant(ep, "600");
        run(&["put", "--lease", &id, "k1", "v"]);
        run(&["put", "--lease", &id, "k2", "v"]);
        run(&["lease", "timetolive", &id, "--keys"]);
        run(&["lease", "timetolive", &id, "--keys", "-w", "json"]);
        run(&["lease", "list"]);
        run(&["lease", "keep-alive", "--once", &id]);
        run(&["put", "k1", "detached", "--ignore-lease"]);
        run(&["lease", "revoke", &id]);
        run(&["get", "k", "--prefix"]);
        run(&["lease", "timetolive", &id]);
        run(&["lease", "revoke", &id]);
        run(&["lease", "keep-alive", "--once", &id]);
        run(&["lease", "grant", "9000000001"]);
        run(&["put", "--lease", "1234abcd", "k", "v"]);
        run(&["lease", "grant", "1000", "-w", "json"]);
        out
    };
    let theirs = session(&Cluster::start(Server::Etcd, 1, &[]));
    let ours = session(&Cluster::start(Server::Rustcd, 1, &[]));
    assert!(ours.concat().contains("revoked"), "{ours:?}");
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(t, o, "etcd 3.5.1 vs rustcd");
    }
}

#[test]
fn an_expired_lease_deletes_its_keys_on_every_member() {
    let c = Cluster::start(Server::Rustcd, 3, &[]);
    let id = grant(c.ep(0), "2");
    assert!(etcdctl(c.ep(1), &["put", "--lease", &id, "ephemeral", "v"]).ok);
    let r = etcdctl(c.ep(2), &["get", "ephemeral"]);
    assert_eq!(r.stdout, "ephemeral\nv\n");
    let start = Instant::now();
    for i in 0..3 {
        loop {
            let r = etcdctl(c.ep(i), &["get", "ephemeral"]);
            if r.ok && r.stdout.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "lease never expired: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let r = etcdctl(c.ep(0), &["lease", "timetolive", &id]);
    assert!(r.stdout.contains("already expired"), "{r:?}");
}

#[test]
fn kept_alive_leases_survive_leader_loss_and_idle_ones_expire() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    let leader = c.leader().expect("leader");
    let other = (leader + 1) % 3;
    let kept = grant(c.ep(other), "4");
    let idle = grant(c.ep(other), "4");
    assert!(etcdctl(c.ep(other), &["put", "--lease", &kept, "kept", "v"]).ok);
    assert!(etcdctl(c.ep(other), &["put", "--lease", &idle, "idle", "v"]).ok);
    // Keep one alive through a survivor, with etcdctl's own keep-alive loop.
    let mut ka = std::process::Command::new(etcdctl_bin())
        .args([
            format!("--endpoints={}", c.ep(other)),
            "lease".into(),
            "keep-alive".into(),
            kept.clone(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.procs[leader].kill9();
    let start = Instant::now();
    loop {
        let r = etcdctl(c.ep(other), &["get", "idle"]);
        if r.ok && r.stdout.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "idle lease never expired: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Well past its TTL, the kept-alive key is still there.
    std::thread::sleep(Duration::from_secs(6));
    let r = etcdctl(c.ep(other), &["get", "kept"]);
    let _ = ka.kill();
    let _ = ka.wait();
    assert_eq!(r.stdout, "kept\nv\n", "a kept-alive lease expired");
}

#[test]
fn leases_and_remaining_ttl_survive_restart_of_all_members() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    let id = grant(c.ep(0), "300");
    assert!(etcdctl(c.ep(0), &["put", "--lease", &id, "durable", "v"]).ok);
    // Let a checkpoint record the remaining TTL.
    std::thread::sleep(Duration::from_secs(7));
    for p in &mut c.procs {
        p.kill9();
    }
    for p in &mut c.procs {
        p.restart();
    }
    c.wait_ready(Duration::from_secs(30));
    let r = etcdctl(c.ep(1), &["lease", "timetolive", &id, "--keys"]);
    assert!(r.stdout.contains("granted with TTL(300s)"), "{r:?}");
    assert!(r.stdout.contains("attached keys([durable])"), "{r:?}");
    let remaining: i64 = r
        .stdout
        .split("remaining(")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("remaining TTL");
    // Not renewed to the full TTL: at most one election timeout of slack.
    assert!(remaining < 300, "remaining {remaining}");
    assert!(remaining > 280, "remaining {remaining}");
}
