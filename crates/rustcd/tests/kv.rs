//! One rustcd member driven by the real etcdctl 3.5.1: KV, txn, compaction,
//! output formats, limits, durability across kill -9, bad data dirs.

mod common;

use common::*;

fn single() -> Cluster {
    Cluster::start(Server::Rustcd, 1, &[])
}

#[test]
fn put_get_delete_with_the_real_etcdctl() {
    let c = single();
    let ep = c.ep(0);
    let r = etcdctl(ep, &["put", "myKey", "myValue"]);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "OK\n");
    let r = etcdctl(ep, &["get", "myKey"]);
    assert_eq!(r.stdout, "myKey\nmyValue\n", "{r:?}");
    let r = etcdctl(ep, &["get", "nope"]);
    assert!(r.ok);
    assert_eq!(r.stdout, "");
    let r = etcdctl(ep, &["del", "myKey"]);
    assert_eq!(r.stdout, "1\n");
    let r = etcdctl(ep, &["del", "myKey"]);
    assert_eq!(r.stdout, "0\n");
    assert_eq!(etcdctl(ep, &["get", "myKey"]).stdout, "");
}

#[test]
fn range_options() {
    let c = single();
    let ep = c.ep(0);
    for (k, v) in [
        ("a", "1"),
        ("b/1", "x"),
        ("b/2", "yy"),
        ("b/3", "z"),
        ("c", "3"),
    ] {
        assert!(etcdctl(ep, &["put", k, v]).ok);
    }
    assert_eq!(
        etcdctl(ep, &["get", "b/", "--prefix"]).stdout,
        "b/1\nx\nb/2\nyy\nb/3\nz\n"
    );
    assert_eq!(
        etcdctl(ep, &["get", "b/", "--prefix", "--keys-only"]).stdout,
        "b/1\n\nb/2\n\nb/3\n\n"
    );
    assert_eq!(
        etcdctl(ep, &["get", "b/2", "--from-key"]).stdout,
        "b/2\nyy\nb/3\nz\nc\n3\n"
    );
    assert_eq!(
        etcdctl(ep, &["get", "a", "c"]).stdout,
        "a\n1\nb/1\nx\nb/2\nyy\nb/3\nz\n"
    );
    assert_eq!(
        etcdctl(ep, &["get", "", "--prefix", "--limit=2"]).stdout,
        "a\n1\nb/1\nx\n"
    );
    assert_eq!(
        etcdctl(
            ep,
            &[
                "get",
                "b/",
                "--prefix",
                "--sort-by=VALUE",
                "--order=DESCEND"
            ]
        )
        .stdout,
        "b/3\nz\nb/2\nyy\nb/1\nx\n"
    );
    let r = etcdctl(
        ep,
        &["get", "b/", "--prefix", "--count-only", "-w", "fields"],
    );
    assert!(r.stdout.contains("\"Count\" : 3"), "{r:?}");
    // History: the revision of the first put.
    let r = etcdctl(ep, &["put", "a", "2"]);
    assert!(r.ok);
    assert_eq!(etcdctl(ep, &["get", "a", "--rev=2"]).stdout, "a\n1\n");
    assert_eq!(etcdctl(ep, &["get", "a"]).stdout, "a\n2\n");
    let r = etcdctl(ep, &["get", "a", "-w", "json"]);
    assert!(r.stdout.contains("\"version\":2"), "{}", r.stdout);
    assert!(r.stdout.contains("\"create_revision\":2"), "{}", r.stdout);
    assert!(r.stdout.contains("\"mod_revision\":7"), "{}", r.stdout);
    assert!(r.stdout.contains("\"revision\":7"), "{}", r.stdout);
    let r = etcdctl(ep, &["del", "b/", "--prefix", "--prev-kv"]);
    assert_eq!(r.stdout, "3\nb/1\nx\nb/2\nyy\nb/3\nz\n");
}

#[test]
fn txn_success_and_failure_branches() {
    let c = single();
    let ep = c.ep(0);
    assert!(etcdctl(ep, &["put", "k", "v1"]).ok);
    let r = etcdctl_stdin(
        ep,
        &["txn"],
        Some("value(\"k\") = \"v1\"\n\nput k v2\nget k\n\nput k other\n\n"),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "SUCCESS\n\nOK\n\nk\nv2\n");
    let r = etcdctl_stdin(
        ep,
        &["txn"],
        Some("value(\"k\") = \"v1\"\n\nput k v3\n\nput k failed\nget k\n\n"),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "FAILURE\n\nOK\n\nk\nfailed\n");
    let r = etcdctl_stdin(
        ep,
        &["txn"],
        Some("version(\"k\") > \"2\"\nmod(\"missing\") = \"0\"\n\nget k\n\n\n"),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "SUCCESS\n\nk\nfailed\n");
}

#[test]
fn compaction_and_its_errors() {
    let c = single();
    let ep = c.ep(0);
    for v in ["1", "2", "3", "4"] {
        assert!(etcdctl(ep, &["put", "k", v]).ok);
    }
    let r = etcdctl(ep, &["compaction", "3"]);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "compacted revision 3\n");
    let r = etcdctl(ep, &["get", "k", "--rev=2"]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{r:?}"
    );
    assert_eq!(etcdctl(ep, &["get", "k", "--rev=3"]).stdout, "k\n2\n");
    let r = etcdctl(ep, &["compaction", "2"]);
    assert!(
        r.stderr.contains("required revision has been compacted"),
        "{r:?}"
    );
    let r = etcdctl(ep, &["compaction", "100"]);
    assert!(
        r.stderr
            .contains("etcdserver: mvcc: required revision is a future revision"),
        "{r:?}"
    );
    let r = etcdctl(ep, &["get", "k", "--rev=100"]);
    assert!(
        r.stderr.contains("required revision is a future revision"),
        "{r:?}"
    );
}

#[test]
fn limits_give_etcds_errors() {
    let c = Cluster::start(Server::Rustcd, 1, &["--max-txn-ops", "4"]);
    let ep = c.ep(0);
    let big = "x".repeat(1_700_000);
    // Too long for one argv string: etcdctl reads the value from stdin.
    let r = etcdctl_stdin(ep, &["put", "big"], Some(&big));
    assert!(!r.ok);
    assert!(
        r.stderr.contains("etcdserver: request is too large"),
        "{}",
        r.stderr
    );
    let ops: String = (0..5).map(|i| format!("put k{i} v\n")).collect();
    let r = etcdctl_stdin(ep, &["txn"], Some(&format!("\n{ops}\n\n")));
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("etcdserver: too many operations in txn request"),
        "{r:?}"
    );
    let r = etcdctl_stdin(ep, &["txn"], Some("\nput k v\nput k w\n\n\n"));
    assert!(
        r.stderr
            .contains("etcdserver: duplicate key given in txn request"),
        "{r:?}"
    );
    let r = etcdctl(ep, &["put", "k", "v", "--lease=1234"]);
    assert!(
        r.stderr.contains("etcdserver: requested lease not found"),
        "{r:?}"
    );
    let r = etcdctl(ep, &["put", "nokey", "--ignore-value"]);
    assert!(r.stderr.contains("etcdserver: key not found"), "{r:?}");
}

#[test]
fn acknowledged_puts_survive_kill_9() {
    let mut c = single();
    let ep = c.ep(0).to_string();
    for i in 0..50 {
        let r = etcdctl(&ep, &["put", &format!("key{i:03}"), &format!("value{i}")]);
        assert!(r.ok, "{r:?}");
    }
    c.procs[0].kill9();
    c.procs[0].restart();
    c.wait_ready(std::time::Duration::from_secs(20));
    let r = etcdctl(&ep, &["get", "key", "--prefix", "-w", "fields"]);
    assert!(r.stdout.contains("\"Count\" : 50"), "{r:?}");
    let r = etcdctl(&ep, &["get", "key049"]);
    assert_eq!(r.stdout, "key049\nvalue49\n");
    // The revision continues where it was: 50 puts after the initial 1.
    let r = etcdctl(&ep, &["put", "after", "restart", "-w", "json"]);
    assert!(r.stdout.contains("\"revision\":52"), "{}", r.stdout);
}

#[test]
fn sigterm_stops_cleanly_and_data_survives() {
    let mut c = single();
    let ep = c.ep(0).to_string();
    assert!(etcdctl(&ep, &["put", "a", "b"]).ok);
    assert_eq!(c.procs[0].terminate(), Some(0));
    c.procs[0].restart();
    c.wait_ready(std::time::Duration::from_secs(20));
    assert_eq!(etcdctl(&ep, &["get", "a"]).stdout, "a\nb\n");
}

#[test]
fn corrupt_data_dir_is_refused_with_a_clear_message() {
    let mut c = single();
    assert!(etcdctl(c.ep(0), &["put", "a", "b"]).ok);
    assert_eq!(c.procs[0].terminate(), Some(0));
    let db = c.procs[0].data_dir.join("member/snap/db");
    std::fs::write(&db, vec![0xAB; 8192]).unwrap();
    c.procs[0].restart();
    let code = c.procs[0].wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(code, Some(1), "a corrupt db must stop the member");
    let log = c.procs[0].log();
    assert!(
        log.contains("member/snap/db"),
        "the error names the file: {log}"
    );
}
