//! Runtime membership with the real etcdctl 3.5.1: member add (voter and
//! learner) and a new member joining with `--initial-cluster-state
//! existing`, promote, update, remove, and etcd's errors.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// `etcdctl member add` prints the environment for the new member; returns
/// (member id hex, ETCD_INITIAL_CLUSTER).
fn member_add(ep: &str, name: &str, peer_url: &str, learner: bool) -> (String, String) {
    let mut args = vec!["member", "add", name];
    let urls = format!("--peer-urls={peer_url}");
    args.push(&urls);
    if learner {
        args.push("--learner");
    }
    let r = etcdctl(ep, &args);
    assert!(r.ok, "{r:?}");
    let id = r.stdout.split_whitespace().nth(1).unwrap().to_string();
    let cluster = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    assert!(
        r.stdout.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{r:?}"
    );
    (id, cluster)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_member_joins_receives_the_data_and_serves() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    for i in 0..20 {
        assert!(etcdctl(c.ep(0), &["put", &format!("k{i:02}"), "v"]).ok);
    }
    let port = free_port();
    let (_, initial) = member_add(c.ep(0), "m3", &format!("http://127.0.0.1:{port}"), false);
    let n = c.spawn_member("m3", &initial, port, "existing");
    let ep = c.ep(n).to_string();
    wait_until("the new member to serve", Duration::from_secs(30), || {
        etcdctl(&ep, &["get", "k19"]).stdout == "k19\nv\n"
    });
    let r = etcdctl(&ep, &["get", "k", "--prefix", "--keys-only", "-w", "json"]);
    assert_eq!(json_u64(&r.stdout, "\"count\":"), Some(20), "{r:?}");
    // Writes through the new member reach the others.
    assert!(etcdctl(&ep, &["put", "from-new", "1"]).ok);
    assert_eq!(
        etcdctl(c.ep(1), &["get", "from-new"]).stdout,
        "from-new\n1\n"
    );
    wait_until(
        "the new member to publish its name",
        Duration::from_secs(10),
        || {
            let r = etcdctl(c.ep(0), &["member", "list"]);
            r.stdout.lines().count() == 4 && r.stdout.contains(", m3, ")
        },
    );
}

#[test]
fn a_learner_catches_up_and_is_promoted() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    assert!(etcdctl(c.ep(0), &["put", "a", "1"]).ok);
    let port = free_port();
    let (id, initial) = member_add(
        c.ep(0),
        "learner",
        &format!("http://127.0.0.1:{port}"),
        true,
    );
    let r = etcdctl(c.ep(1), &["member", "list"]);
    assert!(r.stdout.contains(", true"), "listed as a learner: {r:?}");
    // Promoting a learner that has not started yet is refused.
    let r = etcdctl(c.ep(0), &["member", "promote", &id]);
    assert!(
        r.stderr
            .contains("can only promote a learner member which is in sync with leader"),
        "{r:?}"
    );
    let n = c.spawn_member("learner", &initial, port, "existing");
    let ep = c.ep(n).to_string();
    wait_until("the learner to catch up", Duration::from_secs(30), || {
        etcdctl(&ep, &["get", "a", "--consistency=s"]).stdout == "a\n1\n"
    });
    // A learner serves only serializable reads and Status, as in etcd.
    let r = etcdctl(&ep, &["get", "a"]);
    assert!(
        r.stderr
            .contains("etcdserver: rpc not supported for learner"),
        "{r:?}\n{}",
        c.procs[n].log()
    );
    let r = etcdctl(&ep, &["put", "a", "2"]);
    assert!(
        r.stderr
            .contains("etcdserver: rpc not supported for learner"),
        "{r:?}"
    );
    wait_until("promotion", Duration::from_secs(20), || {
        let r = etcdctl(c.ep(2), &["member", "promote", &id]);
        r.ok && r.stdout.contains("promoted")
    });
    let r = etcdctl(c.ep(0), &["member", "list"]);
    assert!(!r.stdout.contains(", true"), "no learner left: {r:?}");
    wait_until(
        "the promoted member to serve writes",
        Duration::from_secs(10),
        || etcdctl(&ep, &["put", "a", "3"]).ok,
    );
    // A voter cannot be promoted.
    let r = etcdctl(c.ep(0), &["member", "promote", &id]);
    assert!(
        r.stderr
            .contains("etcdserver: can only promote a learner member"),
        "{r:?}"
    );
}

#[test]
fn a_removed_member_stops_and_the_rest_go_on() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    let leader = c.leader().expect("leader");
    let victim = (leader + 1) % 3;
    let list = etcdctl(c.ep(leader), &["member", "list"]).stdout;
    let id = list
        .lines()
        .find(|l| l.contains(&format!(", {}, ", c.procs[victim].name)))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .to_string();
    let r = etcdctl(c.ep(leader), &["member", "remove", &id]);
    assert!(r.ok, "{r:?}");
    assert!(
        r.stdout.contains(&format!("{id} removed from cluster")),
        "{r:?}"
    );
    let code = c.procs[victim].wait_exit(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "a removed member exits: {}",
        c.procs[victim].log()
    );
    assert!(etcdctl(c.ep(leader), &["put", "after", "remove"]).ok);
    let r = etcdctl(c.ep(leader), &["member", "list"]);
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    let r = etcdctl(c.ep(leader), &["member", "remove", &id]);
    assert!(r.stderr.contains("etcdserver: member not found"), "{r:?}");
}

#[test]
fn member_update_and_url_errors() {
    let c = Cluster::start(Server::Rustcd, 3, &[]);
    let r = etcdctl(
        c.ep(0),
        &[
            "member",
            "add",
            "dup",
            &format!("--peer-urls={}", c.procs[1].peer_url),
        ],
    );
    assert!(
        r.stderr.contains("etcdserver: Peer URLs already exists"),
        "{r:?}"
    );
    let list = etcdctl(c.ep(0), &["member", "list"]).stdout;
    let line = list.lines().find(|l| l.contains(", m2, ")).unwrap();
    let id = line.split(',').next().unwrap();
    // Same URL again: an update that changes nothing is accepted.
    let r = etcdctl(
        c.ep(0),
        &[
            "member",
            "update",
            id,
            &format!("--peer-urls={}", c.procs[2].peer_url),
        ],
    );
    assert!(r.ok, "{r:?}");
    assert!(
        r.stdout.contains(&format!("{id} updated in cluster")),
        "{r:?}"
    );
    let r = etcdctl(
        c.ep(0),
        &[
            "member",
            "update",
            id,
            &format!("--peer-urls={}", c.procs[1].peer_url),
        ],
    );
    assert!(
        r.stderr.contains("etcdserver: Peer URLs already exists"),
        "{r:?}"
    );
    let r = etcdctl(
        c.ep(0),
        &["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"],
    );
    assert!(r.stderr.contains("etcdserver: member not found"), "{r:?}");
}

#[test]
fn strict_reconfig_check_refuses_changes_that_would_lose_quorum() {
    let mut c = Cluster::start(Server::Rustcd, 3, &[]);
    let leader = c.leader().expect("leader");
    let down = (leader + 1) % 3;
    let up = (leader + 2) % 3;
    c.procs[down].kill9();
    // 2 of 3 up: a fourth voter would need 3 up members.
    let r = etcdctl(
        c.ep(up),
        &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
    );
    assert!(
        r.stderr
            .contains("etcdserver: re-configuration failed due to not enough started members"),
        "{r:?}"
    );
    // Removing a member that is up would leave 1 of 2 up.
    let list = etcdctl(c.ep(leader), &["member", "list"]).stdout;
    let up_name = format!(", {}, ", c.procs[up].name);
    let id = list
        .lines()
        .find(|l| l.contains(&up_name))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .to_string();
    let r = etcdctl(c.ep(leader), &["member", "remove", &id]);
    assert!(
        r.stderr
            .contains("etcdserver: re-configuration failed due to not enough started members"),
        "{r:?}"
    );
    // A learner does not count towards quorum: adding one is fine.
    let r = etcdctl(
        c.ep(up),
        &[
            "member",
            "add",
            "l",
            "--learner",
            "--peer-urls=http://127.0.0.1:2",
        ],
    );
    assert!(r.ok, "{r:?}");
}
