//! Process faults on loopback clusters under 10 concurrent clients: kill -9
//! (leader, random members, a majority, everyone), SIGSTOP longer than the
//! election timeout, and membership changes (remove and re-add).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustcd_faults::cluster::{now_ns, Cluster, Spec};
use rustcd_faults::workload::{verify, Watcher, Workload, WorkloadSpec};

/// Logs a fault with the history's clock, so it lines up with operations.
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

fn workload(rng: &mut StdRng) -> WorkloadSpec {
    WorkloadSpec {
        seed: rng.random(),
        ..WorkloadSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_leader_random_members_majority_and_all() {
    let test = "kill_9_leader_random_members_majority_and_all";
    let mut rng = rng();
    // A low snapshot count: restarted members also catch up from snapshots.
    let mut c = Cluster::start(Spec::new(3).arg("--snapshot-count", "300"))
        .await
        .unwrap();
    let spec = workload(&mut rng);
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    let mut round = 0;
    while Instant::now() < end {
        sleep_ms(&mut rng, 800, 2000).await;
        let victims: Vec<usize> = match round % 5 {
            0 | 3 => vec![c.wait_leader(Duration::from_secs(5)).await.unwrap_or(0)],
            1 => vec![rng.random_range(0..3)],
            2 => {
                // A majority: the last one alone must not accept anything.
                let keep = rng.random_range(0..3);
                (0..3).filter(|i| *i != keep).collect()
            }
            _ => vec![0, 1, 2],
        };
        note(format!("kill -9 {victims:?}"));
        for &v in &victims {
            c.kill9(v);
        }
        sleep_ms(&mut rng, 300, 2000).await;
        note(format!("restart {victims:?}"));
        for &v in &victims {
            c.restart(v);
        }
        round += 1;
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigstop_longer_than_election_timeout_with_a_watcher() {
    let test = "sigstop_longer_than_election_timeout_with_a_watcher";
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3)).await.unwrap();
    // The watcher's member is never paused.
    let watched = 2;
    let watcher = Watcher::start(&c.members[watched].client_url, &c.members[watched].name);
    let spec = workload(&mut rng);
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    let mut round = 0;
    while Instant::now() < end {
        sleep_ms(&mut rng, 700, 1500).await;
        let leader = c.wait_leader(Duration::from_secs(5)).await;
        let victims: Vec<usize> = match (round % 3, leader) {
            (0 | 2, Some(l)) if l != watched => vec![l],
            (1, _) => vec![0, 1], // a majority: nobody can commit meanwhile
            _ => vec![rng.random_range(0..2)],
        };
        note(format!("SIGSTOP {victims:?} (leader {leader:?})"));
        for &v in &victims {
            c.pause(v);
        }
        // Longer than the 500 ms election timeout.
        sleep_ms(&mut rng, 800, 2500).await;
        note(format!("SIGCONT {victims:?}"));
        for &v in &victims {
            c.resume(v);
        }
        round += 1;
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, Some(watcher)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_members_kill_two_pause_leader() {
    let test = "five_members_kill_two_pause_leader";
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(5).arg("--snapshot-count", "300"))
        .await
        .unwrap();
    let spec = workload(&mut rng);
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    let end = Instant::now() + Duration::from_secs(24);
    let mut round = 0;
    while Instant::now() < end {
        sleep_ms(&mut rng, 700, 1500).await;
        let leader = c.wait_leader(Duration::from_secs(5)).await.unwrap_or(0);
        let other = (leader + rng.random_range(1..5)) % 5;
        match round % 3 {
            0 => {
                // The leader and one more: three of five remain.
                note(format!("kill -9 leader {leader} and {other}"));
                c.kill9(leader);
                c.kill9(other);
                sleep_ms(&mut rng, 500, 2000).await;
                note(format!("restart {leader} and {other}"));
                c.restart(leader);
                c.restart(other);
            }
            1 => {
                note(format!("SIGSTOP leader {leader}, kill -9 {other}"));
                c.pause(leader);
                c.kill9(other);
                sleep_ms(&mut rng, 800, 2000).await;
                note(format!("SIGCONT {leader}, restart {other}"));
                c.resume(leader);
                c.restart(other);
            }
            _ => {
                // Three of five down: no quorum until two come back.
                let mut down: Vec<usize> = Vec::new();
                while down.len() < 3 {
                    let v = rng.random_range(0..5);
                    if !down.contains(&v) {
                        down.push(v);
                    }
                }
                note(format!("kill -9 {down:?} (no quorum)"));
                for &v in &down {
                    c.kill9(v);
                }
                sleep_ms(&mut rng, 500, 1500).await;
                note(format!("restart {down:?}"));
                for &v in &down {
                    c.restart(v);
                }
            }
        }
        round += 1;
    }
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_and_re_add_members_under_load() {
    let test = "remove_and_re_add_members_under_load";
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3)).await.unwrap();
    let spec = workload(&mut rng);
    let keys = spec.keys;
    let w = Workload::start(spec, c.client_urls());
    // A follower, then the leader, then a follower again.
    for step in 0..3 {
        sleep_ms(&mut rng, 1500, 2500).await;
        let leader = c
            .wait_leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        let live = c.live();
        let victim = if step == 1 {
            leader
        } else {
            *live.iter().find(|i| **i != leader).unwrap()
        };
        note(format!(
            "MemberRemove {} (leader is {})",
            c.members[victim].name, c.members[leader].name
        ));
        match c.remove_member(victim, Duration::from_secs(10)).await {
            Ok(Some(code)) => note(format!("{} exited with {code:?}", c.members[victim].name)),
            Ok(None) => {
                // Known bug, reproduced by removed_follower_shuts_down_*:
                // a removed follower that missed the commit of its removal
                // never learns it and keeps running.
                note(format!(
                    "BUG: {} still running 10 s after its removal; killing it",
                    c.members[victim].name
                ));
                c.kill9(victim);
            }
            Err(e) => panic!("{test}: {e}\n{}", c.logs(30)),
        }
        *w.endpoints.write().unwrap() = c.client_urls();
        sleep_ms(&mut rng, 1000, 2000).await;
        let added = match c.add_member().await {
            Ok(i) => i,
            Err(e) => panic!("{test}: {e}\n{}", c.logs(30)),
        };
        note(format!(
            "MemberAdd {} and start it with an empty data dir (existing)",
            c.members[added].name
        ));
        if let Err(e) = c.wait_ready(Duration::from_secs(30)).await {
            panic!("{test}: the re-added member does not serve: {e}");
        }
        note(format!(
            "{} serves linearizable reads",
            c.members[added].name
        ));
        *w.endpoints.write().unwrap() = c.client_urls();
    }
    sleep_ms(&mut rng, 1500, 2500).await;
    let recorded = w.stop().await;
    verify(test, &mut c, recorded, keys, None).await;
}

/// Reproduction, see docs/fault-testing.md: a removed follower that misses
/// the commit of its removal never learns it. The leader stops replicating
/// to a member as soon as it applies the member's removal, and nothing else
/// tells the member (etcd's peers answer a removed member's messages with
/// HTTP 410 "the member has been permanently removed from the cluster", and
/// it shuts down): it keeps running as a member of no cluster, campaigning
/// with pre-votes that everyone ignores. Under load this happens to about
/// one removal in ten (`remove_and_re_add_members_under_load` logs it as
/// `BUG:`); here it is made certain: the follower is down (kill -9) while
/// the two others commit its removal, then restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_follower_that_missed_its_removal_shuts_down() {
    let mut c = Cluster::start(Spec::new(3)).await.unwrap();
    let leader = c
        .wait_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let victim = (leader + 1) % 3;
    c.member_id(victim).await.expect("member id");
    note(format!("kill -9 m{victim}, MemberRemove it, restart it"));
    c.kill9(victim);
    let r = c.remove_member(victim, Duration::ZERO).await;
    assert!(matches!(r, Ok(None)), "{r:?}");
    c.restart(victim);
    let exited = c
        .remove_member(victim, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        exited.is_some(),
        "m{victim} was removed (MemberRemove succeeded while it was down) but is still running 10 s after its restart:\n{}",
        c.members[victim].log_tail(4)
    );
}

/// The same race, as it happens under load, without a pause (flaky: about
/// one removal in ten).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_follower_shuts_down_under_load() {
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3)).await.unwrap();
    let w = Workload::start(workload(&mut rng), c.client_urls());
    for _ in 0..10 {
        sleep_ms(&mut rng, 500, 1000).await;
        let leader = c
            .wait_leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        let victim = *c.live().iter().find(|i| **i != leader).unwrap();
        let name = c.members[victim].name.clone();
        let exited = c
            .remove_member(victim, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            exited.is_some(),
            "{name} was removed (MemberRemove succeeded) but is still running 10 s later:\n{}",
            c.members[victim].log_tail(15)
        );
        *w.endpoints.write().unwrap() = c.client_urls();
        c.add_member().await.unwrap();
        c.wait_ready(Duration::from_secs(30)).await.unwrap();
        *w.endpoints.write().unwrap() = c.client_urls();
    }
    w.stop().await;
}

/// Reproduction: when the leader is removed, its Raft thread panics in
/// raft-rs (`Raft::on_persist_entries`, raft-0.7.0/src/raft.rs:1055,
/// `self.mut_prs().get_mut(self_id).unwrap()`): after the leader applied the
/// conf change that removes itself, the ready loop still calls
/// `RawNode::advance`, and a leader without its own progress entry panics.
/// The process still exits 0, since it was stopping anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_the_leader_does_not_panic() {
    let mut rng = rng();
    let mut c = Cluster::start(Spec::new(3)).await.unwrap();
    let w = Workload::start(workload(&mut rng), c.client_urls());
    for _ in 0..3 {
        sleep_ms(&mut rng, 500, 1000).await;
        let leader = c
            .wait_leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        let name = c.members[leader].name.clone();
        let exited = c
            .remove_member(leader, Duration::from_secs(10))
            .await
            .unwrap();
        let log = c.members[leader].log_text();
        assert!(
            !log.contains("panicked"),
            "{name} (the leader) panicked on its removal (exit {exited:?}):\n{}",
            log.lines()
                .skip_while(|l| !l.contains("panicked"))
                .take(16)
                .collect::<Vec<_>>()
                .join("\n")
        );
        *w.endpoints.write().unwrap() = c.client_urls();
        c.add_member().await.unwrap();
        c.wait_ready(Duration::from_secs(30)).await.unwrap();
        *w.endpoints.write().unwrap() = c.client_urls();
    }
    w.stop().await;
}
