//! A full disk: a member's data dir on a small tmpfs that the test fills up
//! under load. The member must stop or refuse writes, and must never have
//! acknowledged a write it did not persist: after the space is freed and the
//! member restarted, every acknowledged write is there (the history stays
//! linearizable across the restart). Skipped, with a SKIPPED line, where
//! tmpfs cannot be mounted.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustcd_faults::cluster::{now_ns, Cluster, Spec, Tmpfs};
use rustcd_faults::linearizability::{Call, Outcome};
use rustcd_faults::workload::{verify, Workload, WorkloadSpec};

fn note(what: String) {
    eprintln!("[{:.3}s] {what}", now_ns() as f64 / 1e9);
}

fn rng() -> StdRng {
    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("FAULTS_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

fn mount_or_skip(test: &str, dir: &std::path::Path, mib: u64) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, mib) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here: {}", e.trim());
            None
        }
    }
}

/// Acknowledged writes that completed after `t` (ns).
fn acked_writes_after(history: &[rustcd_faults::linearizability::Op], t: u64) -> usize {
    history
        .iter()
        .filter(|o| o.call != Call::Read && o.invoke > t)
        .filter(|o| matches!(o.outcome, Outcome::Ok { .. } | Outcome::CasFailed { .. }))
        .count()
}

/// Runs `clients` against the cluster, fills member `victim`'s tmpfs after
/// a moment, watches what the member does, then frees the space, restarts
/// it and checks everything.
async fn fill_the_disk_of(test: &str, members: usize, victim: usize, restart_on_full_disk: bool) {
    let mut rng = rng();
    let base = tempfile::Builder::new()
        .prefix("rustcd-faults-disk-")
        .tempdir()
        .unwrap();
    let Some(disk) = mount_or_skip(test, &base.path().join("disk"), 100) else {
        return;
    };
    let mut spec = Spec::new(members);
    spec.data_dirs
        .insert(victim, disk.path.join(format!("m{victim}.etcd")));
    let mut c = Cluster::start(spec).await.unwrap();
    let ws = WorkloadSpec {
        seed: rng.random(),
        // Values of ~8 KiB fill what is left quickly.
        value_padding: 8 * 1024,
        ..WorkloadSpec::default()
    };
    let keys = ws.keys;
    let w = Workload::start(ws, c.client_urls());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let before = w.completed();
    let filler = disk.fill();
    let full_at = now_ns();
    note(format!(
        "filled m{victim}'s tmpfs ({} bytes left); {before} ops completed before",
        disk.available()
    ));
    // Watch the member for a while under load.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(code) = c.members[victim].exit_status() {
            exited = Some(code);
            note(format!("m{victim} exited with {code:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = w.stop().await;
    let log = c.members[victim].log_text();
    let error_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"error\"") || l.contains("panicked"))
        .take(5)
        .collect();
    note(format!(
        "m{victim} after the disk filled: {}; {} writes acknowledged after the fill; its errors: {error_lines:#?}",
        match exited {
            Some(code) => format!("exited ({code:?})"),
            None => "still running".into(),
        },
        acked_writes_after(&recorded.history, full_at),
    ));
    if members == 1 && exited.is_none() {
        // Still running: it must refuse writes now.
        let mut kv = rustcd_proto::etcdserverpb::kv_client::KvClient::new(
            rustcd_faults::cluster::channel(&c.members[victim].client_url),
        );
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            kv.put(rustcd_proto::etcdserverpb::PutRequest {
                key: b"/faults-disk-probe".to_vec(),
                value: vec![b'x'; 256 * 1024],
                ..Default::default()
            }),
        )
        .await;
        assert!(
            !matches!(r, Ok(Ok(_))),
            "{test}: m{victim} still acknowledges writes 10 s after its disk filled"
        );
    }
    if restart_on_full_disk {
        // Restarted on the still-full disk, it must fail cleanly or run,
        // and not damage its data dir.
        c.kill9(victim);
        c.restart(victim);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let code = c.members[victim].exit_status();
        note(format!(
            "restarted m{victim} on the full disk: {}",
            match code {
                Some(code) => format!("exited with {code:?}: {}", c.members[victim].log_tail(1)),
                None => "still running".into(),
            }
        ));
    }
    // Free the space, bring the member back from its data dir.
    c.kill9(victim);
    std::fs::remove_file(&filler).unwrap();
    note(format!("freed the tmpfs, restarting m{victim}"));
    c.restart(victim);
    verify(test, &mut c, recorded, keys, None).await;
    drop(c);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_single_member_never_acknowledges_what_it_did_not_persist() {
    fill_the_disk_of(
        "full_disk_single_member_never_acknowledges_what_it_did_not_persist",
        1,
        0,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_on_one_of_three_members() {
    fill_the_disk_of("full_disk_on_one_of_three_members", 3, 2, false).await;
}

/// Reproduction (see `torn_wal_tail_then_restart_then_kill_9` for the
/// mechanism): the WAL write that hits ENOSPC leaves a torn record; the
/// member restarted on the still-full disk cuts it off and appends over it;
/// after a kill -9 and with the space freed, the member refuses to start
/// ("corrupt record ... followed by more data").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_restart_on_full_disk_then_free_space() {
    fill_the_disk_of("full_disk_restart_on_full_disk_then_free_space", 1, 0, true).await;
}

/// Reproduction without tmpfs, deterministic. The WAL's segments are
/// preallocated, and a torn record at the tail (a crash in the middle of a
/// write: kill -9 of a large write, power loss, ENOSPC) is "truncated" at
/// the next start only by seeking the write position back to its start:
/// the torn bytes stay in the file. The next records written there are
/// shorter than the torn bytes, so after the next crash the replay finds
/// valid records, then the rest of the old torn bytes, "followed by more
/// data" that is not zero, and refuses the WAL as corrupt: the member no
/// longer starts. Here the torn write is simulated by writing 512 non-zero
/// bytes after the last record while the member is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_wal_tail_then_restart_then_kill_9() {
    let mut c = Cluster::start(Spec::new(1)).await.unwrap();
    let mut kv = rustcd_proto::etcdserverpb::kv_client::KvClient::new(
        rustcd_faults::cluster::channel(&c.members[0].client_url),
    );
    for i in 0..20 {
        kv.put(rustcd_proto::etcdserverpb::PutRequest {
            key: format!("/faults/torn{i}").into_bytes(),
            value: vec![b'v'; 100],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    c.kill9(0);
    // The newest segment; find the end of its records.
    let wal_dir = c.members[0].data_dir.join("member/wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    let seg = segs.last().unwrap().clone();
    let data = std::fs::read(&seg).unwrap();
    let mut off = 0usize;
    loop {
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        off += 8 + len;
    }
    // A torn write: a record header claiming 4000 bytes, then 504 bytes of
    // it, then (as after a crash) zeros.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.seek(SeekFrom::Start(off as u64)).unwrap();
        let mut torn = 4000u32.to_le_bytes().to_vec();
        torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        torn.resize(512, 0xab);
        f.write_all(&torn).unwrap();
        f.sync_all().unwrap();
    }
    note(format!(
        "torn record written at offset {off} of {}",
        seg.display()
    ));
    // First restart: accepted (the torn tail is cut off), and the member
    // writes a little (a new term, a put).
    c.restart(0);
    c.wait_ready(Duration::from_secs(20)).await.unwrap();
    let mut kv = rustcd_proto::etcdserverpb::kv_client::KvClient::new(
        rustcd_faults::cluster::channel(&c.members[0].client_url),
    );
    kv.put(rustcd_proto::etcdserverpb::PutRequest {
        key: b"/faults/after-torn".to_vec(),
        value: b"x".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    // Crash again, then start: it must start (the put must be there).
    c.kill9(0);
    c.restart(0);
    let started = c.wait_ready(Duration::from_secs(10)).await;
    assert!(
        started.is_ok(),
        "after a torn tail, a restart, one put and a kill -9, the member no longer starts:\n{}",
        c.members[0].log_tail(3)
    );
}
