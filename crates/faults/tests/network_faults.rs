//! Network partitions: every member in its own network namespace (a bridge
//! in a hub namespace joins them, addresses 10.231.0.x exist only there),
//! packets dropped with iptables (or nft) rules inside the namespaces, under
//! 10 concurrent clients that reach each member through a relay on host
//! loopback. Skipped, with a SKIPPED line, where namespaces cannot be made
//! (not root, no `ip`, a sandbox that forbids it).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustcd_faults::cluster::{now_ns, Cluster, Netns, Spec};
use rustcd_faults::workload::{verify, Watcher, Workload, WorkloadSpec};

const RELAY: &str = env!("CARGO_BIN_EXE_faults-relay");

fn note(what: String) {
    eprintln!("[{:.3}s] {what}", now_ns() as f64 / 1e9);
}

async fn sleep_ms(rng: &mut StdRng, lo: u64, hi: u64) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(lo..hi))).await;
}

fn rng() -> StdRng {
    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("FAULTS_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `false` (after printing why) when this machine cannot make namespaces.
fn netns_or_skip(test: &str) -> bool {
    match Netns::probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: cannot create network namespaces here: {}",
                e.trim()
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_isolate_the_leader_and_split_three_members() {
    let test = "partitions_isolate_the_leader_and_split_three_members";
    if !netns_or_skip(test) {
        return;
    }
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3).in_netns(RELAY)).await.unwrap();
    let watched = rng.random_range(0..3);
    let watcher = Watcher::start(&c.members[watched].client_url, &c.members[watched].name);
    let spec = WorkloadSpec {
        seed: rng.random(),
        ..WorkloadSpec::default()
    };
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    let mut round = 0;
    while Instant::now() < end {
        sleep_ms(&mut rng, 1000, 2000).await;
        let leader = c.wait_leader(Duration::from_secs(5)).await.unwrap_or(0);
        let f1 = (leader + 1) % 3;
        let f2 = (leader + 2) % 3;
        match round % 4 {
            0 => {
                note(format!("partition: leader m{leader} alone | m{f1} m{f2}"));
                c.partition(&[vec![leader], vec![f1, f2]]);
                // The partition is real: the majority elects a new leader.
                let t = Instant::now();
                let mut new = None;
                while new.is_none() && t.elapsed() < Duration::from_secs(10) {
                    new = c.leader_among(&[f1, f2]).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert!(
                    new.is_some(),
                    "{test}: the majority elected no leader within 10 s"
                );
                note(format!(
                    "m{} leads the majority after {:.2?}",
                    new.unwrap(),
                    t.elapsed()
                ));
            }
            1 => {
                let alone = rng.random_range(0..3);
                let rest: Vec<usize> = (0..3).filter(|i| *i != alone).collect();
                note(format!(
                    "partition: m{alone} alone | {rest:?} (leader m{leader})"
                ));
                c.partition(&[vec![alone], rest]);
            }
            2 => {
                // A bridge: the leader and one follower cannot talk, the
                // other follower hears both.
                note(format!(
                    "bridge: m{leader} (leader) x m{f1}, m{f2} hears both"
                ));
                c.cut(leader, f1);
            }
            _ => {
                // One way: the leader's packets to both followers are lost,
                // theirs still reach it.
                note(format!(
                    "one-way: m{leader} (leader) -> m{f1}, m{f2} dropped"
                ));
                c.cut_one_way(leader, f1);
                c.cut_one_way(leader, f2);
            }
        }
        sleep_ms(&mut rng, 1500, 3500).await;
        note("heal".into());
        c.heal();
        round += 1;
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, Some(watcher)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_split_five_members_two_three() {
    let test = "partitions_split_five_members_two_three";
    if !netns_or_skip(test) {
        return;
    }
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(5).in_netns(RELAY)).await.unwrap();
    let watched = rng.random_range(0..5);
    let watcher = Watcher::start(&c.members[watched].client_url, &c.members[watched].name);
    let spec = WorkloadSpec {
        seed: rng.random(),
        ..WorkloadSpec::default()
    };
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    let mut round = 0;
    while Instant::now() < end {
        sleep_ms(&mut rng, 1000, 2000).await;
        let leader = c.wait_leader(Duration::from_secs(5)).await.unwrap_or(0);
        let mut others: Vec<usize> = (0..5).filter(|i| *i != leader).collect();
        // Shuffle the followers.
        for i in (1..others.len()).rev() {
            others.swap(i, rng.random_range(0..=i));
        }
        match round % 3 {
            0 => {
                // The leader on the minority side.
                let minority = vec![leader, others[0]];
                let majority = others[1..].to_vec();
                note(format!(
                    "partition: {minority:?} (with leader) | {majority:?}"
                ));
                c.partition(&[minority, majority.clone()]);
                let t = Instant::now();
                let mut new = None;
                while new.is_none() && t.elapsed() < Duration::from_secs(10) {
                    new = c.leader_among(&majority).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert!(
                    new.is_some(),
                    "{test}: the majority elected no leader within 10 s"
                );
                note(format!(
                    "m{} leads the majority after {:.2?}",
                    new.unwrap(),
                    t.elapsed()
                ));
            }
            1 => {
                // The leader on the majority side.
                let minority = others[..2].to_vec();
                let mut majority = vec![leader];
                majority.extend(&others[2..]);
                note(format!(
                    "partition: {minority:?} | {majority:?} (with leader)"
                ));
                c.partition(&[minority, majority]);
            }
            _ => {
                // Overlapping majorities: two groups of three sharing one
                // member, as {a,b,c} and {c,d,e} with the leader at a.
                let (a, b, s, d, e) = (leader, others[0], others[1], others[2], others[3]);
                note(format!(
                    "overlap: {{m{a} m{b} m{s}}} and {{m{s} m{d} m{e}}}, m{s} in both"
                ));
                for x in [a, b] {
                    for y in [d, e] {
                        c.cut(x, y);
                    }
                }
            }
        }
        sleep_ms(&mut rng, 1500, 3500).await;
        note("heal".into());
        c.heal();
        round += 1;
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, Some(watcher)).await;
}

/// Everything at once, at random: partitions, kill -9 (also of a leader
/// that is cut off, so it restarts into a cluster that moved on), SIGSTOP,
/// with frequent snapshots so restarted members also catch up from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_partitions_kills_and_pauses() {
    let test = "mixed_partitions_kills_and_pauses";
    if !netns_or_skip(test) {
        return;
    }
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3).in_netns(RELAY).arg("--snapshot-count", "200"))
        .await
        .unwrap();
    let spec = WorkloadSpec {
        seed: rng.random(),
        ..WorkloadSpec::default()
    };
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    while Instant::now() < end {
        sleep_ms(&mut rng, 700, 1500).await;
        let leader = c.wait_leader(Duration::from_secs(5)).await.unwrap_or(0);
        let other = (leader + rng.random_range(1..3)) % 3;
        let mut killed = Vec::new();
        let mut paused = Vec::new();
        match rng.random_range(0..5) {
            0 => {
                note(format!(
                    "partition m{leader} (leader) away, then kill -9 it"
                ));
                c.partition(&[vec![leader], vec![other, 3 - leader - other]]);
                sleep_ms(&mut rng, 500, 1500).await;
                c.kill9(leader);
                killed.push(leader);
            }
            1 => {
                note(format!("partition m{other} away, SIGSTOP leader m{leader}"));
                c.partition(&[vec![other], vec![leader, 3 - leader - other]]);
                c.pause(leader);
                paused.push(leader);
            }
            2 => {
                note(format!(
                    "kill -9 m{other}, cut m{leader} (leader) from the third"
                ));
                c.kill9(other);
                killed.push(other);
                c.cut(leader, 3 - leader - other);
            }
            3 => {
                note(format!(
                    "one-way m{leader} (leader) -> m{other}, SIGSTOP m{other}"
                ));
                c.cut_one_way(leader, other);
                c.pause(other);
                paused.push(other);
            }
            _ => {
                note(format!("kill -9 m{leader} (leader) and m{other}"));
                c.kill9(leader);
                c.kill9(other);
                killed.extend([leader, other]);
            }
        }
        sleep_ms(&mut rng, 800, 2500).await;
        note(format!("heal, SIGCONT {paused:?}, restart {killed:?}"));
        c.heal();
        for p in paused {
            c.resume(p);
        }
        for k in killed {
            c.restart(k);
        }
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, None).await;
}
