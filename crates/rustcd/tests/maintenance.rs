//! Maintenance with the real etcdctl 3.5.1: hashkv agreement, defrag,
//! snapshot save, move-leader, alarm list, endpoint status.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hashkv_is_equal_on_every_member_and_tracks_writes() {
    let c = Cluster::start(Server::Rustcd, 3, &[]);
    for i in 0..30 {
        assert!(
            etcdctl(
                c.ep(i % 3),
                &["put", &format!("h{}", i % 7), &format!("{i}")]
            )
            .ok
        );
    }
    assert!(etcdctl(c.ep(0), &["compaction", "10"]).ok);
    // Every member has applied everything once a linearizable read passes.
    for i in 0..3 {
        assert!(etcdctl(c.ep(i), &["get", "h0"]).ok);
    }
    let hash_of = |rev: &str| -> Vec<u64> {
        (0..3)
            .map(|i| {
                let r = etcdctl(
                    c.ep(i),
                    &["endpoint", "hashkv", "-w", "json", &format!("--rev={rev}")],
                );
                assert!(r.ok, "{r:?}");
                json_u64(&r.stdout, "\"hash\":").expect("hash")
            })
            .collect()
    };
    let now = hash_of("0");
    assert!(
        now.iter().all(|h| *h == now[0]),
        "members disagree: {now:?}"
    );
    let older = hash_of("20");
    assert!(
        older.iter().all(|h| *h == older[0]),
        "members disagree: {older:?}"
    );
    assert_ne!(now[0], older[0]);
}

#[test]
fn defrag_snapshot_save_move_leader_and_alarms() {
    let c = Cluster::start(Server::Rustcd, 3, &[]);
    assert!(etcdctl(c.ep(0), &["put", "a", "1"]).ok);
    let r = etcdctl(c.ep(0), &["defrag"]);
    assert!(r.ok, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("Finished defragmenting etcd member[{}]", c.ep(0))),
        "{r:?}"
    );
    let file = c.dir.path().join("snap.db");
    let r = etcdctl(c.ep(1), &["snapshot", "save", file.to_str().unwrap()]);
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("Snapshot saved at"), "{r:?}");
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let r = etcdctl(c.ep(0), &["alarm", "list"]);
    assert!(r.ok && r.stdout.is_empty(), "{r:?}");

    let leader = c.leader().expect("leader");
    let target = (leader + 1) % 3;
    let status = etcdctl(c.ep(target), &["endpoint", "status", "-w", "json"]).stdout;
    let target_id = json_u64(&status, "\"member_id\":").unwrap();
    let r = etcdctl(c.ep(leader), &["move-leader", &format!("{target_id:x}")]);
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("Leadership transferred"), "{r:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.leader(), Some(target));
    // Not the leader any more: etcdctl itself refuses (it asks Status first).
    let r = etcdctl(c.ep(leader), &["move-leader", &format!("{target_id:x}")]);
    assert!(r.stderr.contains("no leader endpoint given"), "{r:?}");
}

#[test]
fn quota_raises_nospace_and_disarm_after_freeing_space_restores_writes() {
    let c = Cluster::start(Server::Rustcd, 1, &["--quota-backend-bytes", "400000"]);
    let ep = c.ep(0);
    let value = "x".repeat(20_000);
    let start = std::time::Instant::now();
    let err = loop {
        let i = start.elapsed().as_nanos().to_string();
        let r = etcdctl(ep, &["put", &format!("big/{i}"), &value]);
        if !r.ok {
            break r.stderr;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "quota never enforced"
        );
    };
    assert!(
        err.contains("etcdserver: mvcc: database space exceeded"),
        "{err}"
    );
    let r = etcdctl(ep, &["alarm", "list"]);
    assert!(r.stdout.contains("alarm:NOSPACE"), "{r:?}");
    let r = etcdctl(ep, &["put", "small", "v"]);
    assert!(r.stderr.contains("database space exceeded"), "{r:?}");
    assert!(
        etcdctl(ep, &["get", "big/", "--prefix", "--keys-only"]).ok,
        "reads still work"
    );
    let r = etcdctl(ep, &["endpoint", "health"]);
    assert!(!r.ok, "an active alarm makes the endpoint unhealthy: {r:?}");
    // Free space: delete, compact, defrag, disarm.
    assert!(etcdctl(ep, &["del", "big/", "--prefix"]).ok);
    let rev = json_u64(
        &etcdctl(ep, &["get", "x", "-w", "json"]).stdout,
        "\"revision\":",
    )
    .unwrap();
    assert!(etcdctl(ep, &["compaction", &rev.to_string(), "--physical"]).ok);
    assert!(etcdctl(ep, &["defrag"]).ok);
    let r = etcdctl(ep, &["alarm", "disarm"]);
    assert!(r.stdout.contains("alarm:NOSPACE"), "{r:?}");
    let start = std::time::Instant::now();
    while !etcdctl(ep, &["put", "small", "v"]).ok {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writes never came back"
        );
        let _ = etcdctl(ep, &["alarm", "disarm"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(etcdctl(ep, &["alarm", "list"]).stdout.is_empty());
}

#[test]
fn periodic_auto_compaction_compacts_old_history_on_every_member() {
    let c = Cluster::start(
        Server::Rustcd,
        3,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    for i in 0..10 {
        assert!(etcdctl(c.ep(0), &["put", "k", &i.to_string()]).ok);
    }
    let start = std::time::Instant::now();
    for i in 0..3 {
        loop {
            let r = etcdctl(c.ep(i), &["get", "k", "--rev=2"]);
            if r.stderr.contains("required revision has been compacted") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "never compacted: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(etcdctl(c.ep(1), &["get", "k"]).stdout, "k\n9\n");
}

#[test]
fn snapshot_save_then_restore_into_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    {
        let c = Cluster::start(Server::Rustcd, 3, &[]);
        for i in 0..25 {
            assert!(
                etcdctl(
                    c.ep(i % 3),
                    &["put", &format!("s/{i:02}"), &format!("v{i}")]
                )
                .ok
            );
        }
        let r = etcdctl(c.ep(0), &["snapshot", "save", file.to_str().unwrap()]);
        assert!(r.ok, "{r:?}");
    }
    // A damaged copy is refused with a clear message.
    let mut bad = std::fs::read(&file).unwrap();
    bad[100] ^= 1;
    let bad_file = dir.path().join("bad.db");
    std::fs::write(&bad_file, bad).unwrap();
    let out = std::process::Command::new(rustcd_bin())
        .args([
            "snapshot",
            "restore",
            bad_file.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(dir.path().join("never.etcd"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256 checksum mismatch"));

    // Restore one data dir per member of a new cluster, then start it there.
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect();
    let new_dir = tempfile::tempdir().unwrap();
    for (i, (_, p)) in ports.iter().enumerate() {
        let out = std::process::Command::new(rustcd_bin())
            .args(["snapshot", "restore", file.to_str().unwrap()])
            .arg(format!("--name=m{i}"))
            .arg(format!(
                "--data-dir={}",
                new_dir.path().join(format!("m{i}.etcd")).display()
            ))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .arg("--initial-cluster-token=test-token")
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{p}"
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let c = Cluster::start_on(Server::Rustcd, new_dir, &ports, &[]);
    for i in 0..3 {
        let r = etcdctl(
            c.ep(i),
            &["get", "s/", "--prefix", "--keys-only", "-w", "json"],
        );
        assert_eq!(json_u64(&r.stdout, "\"count\":"), Some(25), "{r:?}");
    }
    assert_eq!(etcdctl(c.ep(2), &["get", "s/07"]).stdout, "s/07\nv7\n");
    assert!(etcdctl(c.ep(1), &["put", "after", "restore"]).ok);
}

/// A plain HTTP/1.1 GET (the client port serves HTTP beside gRPC).
fn http_get(url: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn http_health_version_and_metrics_on_the_client_port() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    assert_eq!(
        http_get(c.ep(0), "/health"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".to_string())
    );
    let (status, body) = http_get(c.ep(1), "/version");
    assert_eq!(status, 200);
    assert!(body.contains("\"etcdcluster\":\"3.5.0\""), "{body}");
    let (status, body) = http_get(c.ep(2), "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("etcd_server_has_leader 1"), "{body}");
    assert!(body.contains("etcd_mvcc_db_total_size_in_bytes"), "{body}");
    // The disk latency histograms count what the member did to join the cluster.
    for h in [
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
    ] {
        assert!(body.contains(&format!("# TYPE {h} histogram")), "{body}");
        assert!(
            body.contains(&format!("{h}_bucket{{le=\"0.001\"}}")),
            "{body}"
        );
        let count: u64 = body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{h}_count ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {h}_count: {body}"));
        assert!(count > 0, "{h}_count is 0: {body}");
    }
    // Without a quorum the member reports itself unhealthy.
    c.procs[1].kill9();
    c.procs[2].kill9();
    let start = std::time::Instant::now();
    loop {
        let (status, body) = http_get(c.ep(0), "/health");
        if status == 503 {
            assert!(body.contains("\"health\":\"false\""), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still healthy: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
