//! `check perf`, `check datascale`, `snapshot status` and `snapshot
//! restore`, run as real processes against real rustcd members, and
//! compared with real etcdctl 3.5.1 where the outputs can be compared.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

fn ctl(ep: &str, args: &[&str]) -> Out {
    let mut full = vec![format!("--endpoints={ep}")];
    full.extend(args.iter().map(|a| a.to_string()));
    let a: Vec<&str> = full.iter().map(String::as_str).collect();
    run(&rustcdctl_bin(), &a, None, &[])
}

/// A check runs for a minute: give it time.
fn run_check(bin: &Path, ep: &str, args: &[&str]) -> Out {
    let mut full = vec![format!("--endpoints={ep}")];
    full.extend(args.iter().map(|a| a.to_string()));
    let a: Vec<&str> = full.iter().map(String::as_str).collect();
    run_for(bin, &a, None, &[], Some(Duration::from_secs(180)))
}

fn text(o: &Out) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every run of digits becomes `N`.
fn shape(s: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A check's stdout split into the progress bar's drawings (each after a
/// `\r`, all on the first line) and the lines after it.
fn split_check(stdout: &str) -> (Vec<String>, Vec<String>) {
    let (bar, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let draws = bar
        .split('\r')
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    (draws, rest.lines().map(String::from).collect())
}

fn prefix_count(ep: &str, prefix: &str) -> u64 {
    let o = ctl(
        ep,
        &["get", prefix, "--prefix", "--count-only", "-w", "fields"],
    );
    assert_eq!(o.code, 0, "{o:?}");
    number_after(&text(&o), "\"Count\" : ").expect("a count")
}

// ---------------------------------------------------------------- help

#[test]
fn help_matches_etcdctl() {
    for cmd in [
        "check --help",
        "check perf --help",
        "check datascale --help",
        "snapshot status --help",
        "snapshot restore --help",
        "help check",
    ] {
        let args = split_args(cmd);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = run(&etcdctl_bin(), &a, None, &[]);
        let got = run(&rustcdctl_bin(), &a, None, &[]);
        assert_eq!(
            (String::from_utf8_lossy(&got.stdout), got.code),
            (String::from_utf8_lossy(&want.stdout), want.code),
            "{cmd}"
        );
    }
}

/// The refusals, byte for byte: bad loads, a prefix already in use, bad
/// arguments, missing files.
#[test]
fn refusals_match_etcdctl() {
    differential(
        Server::Rustcd,
        &[],
        &[
            step("check perf --load=q"),
            step("check datascale --load=XL"),
            step("put /etcdctl-check-perf/x y"),
            step("check perf --load=small"),
            step("put /etcdctl-check-datascale/x y"),
            step("check datascale"),
            step("snapshot status"),
            step("snapshot status a b"),
            step("snapshot restore"),
            step("snapshot status $DIR/missing.db"),
            step("snapshot status $DIR/missing.db -w protobuf"),
            step("snapshot restore $DIR/missing.db --data-dir $DIR/never"),
            step("snapshot restore $DIR/missing.db --initial-advertise-peer-urls ftp://x:1"),
        ],
    );
}

// ---------------------------------------------------------- check perf

/// What each of etcdctl's verdict lines is about, or None if it is none of
/// check.go's lines.
fn verdict_kind(line: &str) -> Option<&'static str> {
    let s = shape(line);
    Some(match s.as_str() {
        "PASS: Throughput is N writes/s" | "FAIL: Throughput too low: N writes/s" => "throughput",
        "PASS: Slowest request took N.Ns" | "Slowest request took too long: N.Ns" => "slowest",
        "PASS: Stddev is N.Ns" | "Stddev too high: N.Ns" => "stddev",
        "PASS" | "FAIL" => "verdict",
        "FAIL: too many errors" => "errors",
        _ if line.starts_with("FAIL: ERROR(") && s.ends_with(") -> N") => "errors",
        _ => return None,
    })
}

/// Checks one `check perf` run on its own: the lines are etcdctl's, the
/// numbers printed as etcdctl prints them, the verdict follows the lines
/// and the exit code follows the verdict. Returns (bar drawings, lines).
fn check_perf_run(who: &str, o: &Out) -> (Vec<String>, Vec<String>) {
    let out = text(o);
    let (draws, lines) = split_check(&out);
    assert!(!lines.is_empty(), "{who}: no verdict: {o:?}");
    for l in &lines {
        assert!(verdict_kind(l).is_some(), "{who}: not etcdctl's line {l:?}");
        // Go's %f: six decimals
        if let Some(v) = l.rsplit(' ').next().and_then(|v| v.strip_suffix('s')) {
            if l.contains("request took") || l.contains("Stddev") {
                assert_eq!(v.split('.').nth(1).map(str::len), Some(6), "{who}: {l}");
            }
        }
    }
    let pass = lines.last().unwrap() == "PASS";
    let all_pass = lines[..lines.len() - 1]
        .iter()
        .all(|l| l.starts_with("PASS: "));
    assert_eq!(pass, all_pass, "{who}: verdict does not follow: {lines:?}");
    assert_eq!(o.code, if pass { 0 } else { 1 }, "{who}: {o:?}");
    (draws, lines)
}

#[test]
fn check_perf_small_as_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Server::Rustcd, dir.path(), free_port(), free_port(), &[]);
    let got = run_check(
        &rustcdctl_bin(),
        &m.endpoint,
        &["check", "perf", "--load=s"],
    );
    assert_eq!(prefix_count(&m.endpoint, "/etcdctl-check-perf/"), 0);
    let want = run_check(&etcdctl_bin(), &m.endpoint, &["check", "perf", "--load=s"]);
    assert_eq!(prefix_count(&m.endpoint, "/etcdctl-check-perf/"), 0);

    let (got_draws, got_lines) = check_perf_run("rustcdctl", &got);
    let (want_draws, want_lines) = check_perf_run("etcdctl", &want);
    let kinds = |ls: &[String]| -> Vec<&str> {
        ls.iter()
            .filter_map(|l| verdict_kind(l))
            .filter(|k| *k != "errors")
            .collect()
    };
    assert_eq!(kinds(&got_lines), kinds(&want_lines));
    assert_eq!(
        kinds(&got_lines),
        ["throughput", "slowest", "stddev", "verdict"]
    );

    // the pacing holds the load to 150 writes/s (and a busy machine does
    // not bring it down to a fifth of that)
    let throughput = got_lines
        .iter()
        .find(|l| verdict_kind(l) == Some("throughput"))
        .unwrap();
    let writes: u64 = throughput
        .split(' ')
        .rev()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("writes/s");
    assert!((30..=160).contains(&writes), "{got_lines:?}");

    // the bar: drawn as etcdctl draws it without a terminal, to the end
    let want_shapes: BTreeSet<String> = want_draws.iter().map(|d| shape(d)).collect();
    for d in &got_draws {
        assert!(
            want_shapes.contains(&shape(d)),
            "bar drawing {d:?} is none of etcdctl's {want_shapes:?}"
        );
    }
    assert!(got_draws.len() > 250, "{} drawings", got_draws.len());
    assert_eq!(got_draws[0], " 0 / 60    0.00%");
    let last = got_draws.last().unwrap();
    assert_eq!(shape(last), shape(want_draws.last().unwrap()));
    assert!(last.starts_with(" 60 / 60  100.00% 1m"), "{last:?}");
}

// ----------------------------------------------------- check datascale

#[test]
fn check_datascale_small_as_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Server::Rustcd, dir.path(), free_port(), free_port(), &[]);
    let args = [
        "check",
        "datascale",
        "--load=s",
        "--auto-compact",
        "--auto-defrag",
    ];
    let got = run_check(&rustcdctl_bin(), &m.endpoint, &args);
    assert_eq!(prefix_count(&m.endpoint, "/etcdctl-check-datascale/"), 0);
    let want = run_check(&etcdctl_bin(), &m.endpoint, &args);
    assert_eq!(prefix_count(&m.endpoint, "/etcdctl-check-datascale/"), 0);
    assert_eq!((got.code, want.code), (0, 0), "{got:?}\n{want:?}");

    let (got_head, got_rest) = text(&got)
        .split_once('\n')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let (want_head, want_rest) = text(&want)
        .split_once('\n')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(
        got_head,
        "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."
    );
    assert_eq!(got_head, want_head);
    let (got_draws, got_lines) = split_check(&got_rest);
    let (want_draws, want_lines) = split_check(&want_rest);
    assert_eq!(got_draws[0], " 0 / 10000    0.00%");
    assert!(got_draws
        .last()
        .unwrap()
        .starts_with(" 10000 / 10000  100.00% "));
    assert_eq!(
        shape(got_draws.last().unwrap()),
        shape(want_draws.last().unwrap())
    );
    let lines =
        |ls: &[String]| -> Vec<String> { ls.iter().map(|l| shape(&l.replace("-", ""))).collect() };
    assert_eq!(lines(&got_lines), lines(&want_lines));
    assert_eq!(
        lines(&got_lines),
        [
            "Compacting with revision N",
            "Compacted with revision N",
            "Defragmenting \"N.N.N.N:N\"",
            "Defragmented \"N.N.N.N:N\"",
            "PASS: Approximate system memory used : N.N MB."
        ]
    );
}

// ------------------------------------------------------------ snapshot

/// A rustcd member on an existing (restored) data dir; killed on drop.
struct Restored {
    child: Child,
    endpoint: String,
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_restored(data: &Path, name: &str, peer: u16, log: &Path) -> Restored {
    let client = free_port();
    let curl = format!("http://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(log).unwrap();
    let child = member_command(&rustcd_bin(), name, data, &curl, &purl)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start rustcd");
    let r = Restored {
        child,
        endpoint: format!("127.0.0.1:{client}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = ctl(
            &r.endpoint,
            &["--command-timeout=500ms", "-w", "json", "member", "list"],
        );
        if o.code == 0 && text(&o).contains("clientURLs") {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "restored member not ready: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `snapshot status -w json`'s numbers: hash, revision, total keys, size.
fn status_json(file: &Path) -> (u64, u64, u64, u64) {
    let o = run(
        &rustcdctl_bin(),
        &["snapshot", "status", file.to_str().unwrap(), "-w", "json"],
        None,
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let t = text(&o);
    let n =
        |k: &str| number_after(&t, &format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {t}"));
    (n("hash"), n("revision"), n("totalKey"), n("totalSize"))
}

fn revision_of(ep: &str) -> u64 {
    let o = ctl(ep, &["get", "k1", "-w", "json"]);
    number_after(&text(&o), "\"revision\":").expect("header revision")
}

fn save(ep: &str, file: &Path) {
    let o = ctl(ep, &["snapshot", "save", file.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
}

fn status_in(file: &Path, format: &str) -> Out {
    run(
        &rustcdctl_bin(),
        &["snapshot", "status", file.to_str().unwrap(), "-w", format],
        None,
        &[],
    )
}

fn restore(bin: &Path, args: &[String]) -> Out {
    let mut full = vec!["snapshot".to_string(), "restore".to_string()];
    full.extend(args.iter().cloned());
    let a: Vec<&str> = full.iter().map(String::as_str).collect();
    run(bin, &a, None, &[])
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn path_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn snapshot_status_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Server::Rustcd, dir.path(), free_port(), free_port(), &[]);
    for i in 1..=5 {
        assert_eq!(ctl(&m.endpoint, &["put", &format!("k{i}"), "v"]).code, 0);
    }
    assert_eq!(ctl(&m.endpoint, &["del", "k5"]).code, 0);
    let f1 = dir.path().join("one.snap");
    save(&m.endpoint, &f1);
    let rev1 = revision_of(&m.endpoint);
    let len1 = std::fs::metadata(&f1).unwrap().len();

    let (hash, rev, keys, size) = status_json(&f1);
    assert_eq!(rev, rev1);
    assert_eq!(size, len1 - 32, "the size leaves out the SHA-256");
    let simple = text(&status_in(&f1, "simple"));
    let parts: Vec<&str> = simple.trim_end().split(", ").collect();
    assert_eq!(parts.len(), 4, "{simple}");
    assert_eq!(u64::from_str_radix(parts[0], 16).unwrap(), hash);
    assert_eq!(parts[1..3], [rev.to_string(), keys.to_string()]);
    assert!(
        parts[3].ends_with(" kB") || parts[3].ends_with(" MB"),
        "{simple}"
    );
    assert_eq!(
        text(&status_in(&f1, "fields")),
        format!("\"Hash\" : {hash}\n\"Revision\" : {rev}\n\"Keys\" : {keys}\n\"Size\" : {size}\n")
    );
    let table = text(&status_in(&f1, "table"));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 5, "{table}");
    assert_eq!(
        shape(&rows[1].split_whitespace().collect::<Vec<_>>().join(" ")),
        "| HASH | REVISION | TOTAL KEYS | TOTAL SIZE |"
    );
    assert!(rows[3].contains(&format!(" {} |", parts[0])), "{table}");
    let pb = status_in(&f1, "protobuf");
    assert_eq!(
        (pb.code, pb.errors.as_str()),
        (4, "Error: protobuf not supported as output format")
    );

    // three more puts: three more revisions, a kv row and a rev row each
    for k in ["a1", "a2", "a3"] {
        assert_eq!(ctl(&m.endpoint, &["put", k, "w"]).code, 0);
    }
    let f2 = dir.path().join("two.snap");
    save(&m.endpoint, &f2);
    let (_, rev2, keys2, _) = status_json(&f2);
    assert_eq!((rev2, keys2), (rev1 + 3, keys + 6));
}

#[test]
fn snapshot_restore_starts_a_member_with_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Member::start(Server::Rustcd, d, free_port(), free_port(), &[]);
    for i in 1..=4 {
        assert_eq!(
            ctl(&m.endpoint, &["put", &format!("k{i}"), &format!("v{i}")]).code,
            0
        );
    }
    assert_eq!(ctl(&m.endpoint, &["del", "k4"]).code, 0);
    let snap = d.join("s.snap");
    save(&m.endpoint, &snap);
    let rev = revision_of(&m.endpoint);
    drop(m);

    let peer = free_port();
    let purl = format!("http://127.0.0.1:{peer}");
    let data = d.join("restored");
    let args = |file: &Path, data: &Path| -> Vec<String> {
        let mut a = vec![path_arg(file), "--data-dir".into(), path_arg(data)];
        a.extend(s(&["--name", "r0", "--initial-cluster-token", "tok"]));
        a.extend(s(&["--initial-cluster", &format!("r0={purl}")]));
        a.extend(s(&["--initial-advertise-peer-urls", &purl]));
        a
    };
    let o = restore(&rustcdctl_bin(), &args(&snap, &data));
    assert_eq!((o.code, o.stdout.as_slice()), (0, &b""[..]), "{o:?}");
    assert!(data.join("member").is_dir());

    // into a data dir that is not empty: etcdctl's refusal, word for word
    let again = restore(&rustcdctl_bin(), &args(&snap, &data));
    let etcd_again = restore(&etcdctl_bin(), &args(&snap, &data));
    assert_eq!(
        (again.code, &again.errors),
        (etcd_again.code, &etcd_again.errors)
    );
    assert!(again.errors.contains("not empty"), "{again:?}");

    let r = start_restored(&data, "r0", peer, &d.join("restored.log"));
    let got = text(&ctl(&r.endpoint, &["get", "k", "--prefix"]));
    assert_eq!(got, "k1\nv1\nk2\nv2\nk3\nv3\n");
    assert_eq!(revision_of(&r.endpoint), rev);
    let members = text(&ctl(&r.endpoint, &["member", "list"]));
    assert!(
        members.contains(&format!(", started, r0, {purl}, ")),
        "{members}"
    );
    assert_eq!(ctl(&r.endpoint, &["put", "k9", "v9"]).code, 0);
    assert_eq!(revision_of(&r.endpoint), rev + 1);
}

#[test]
fn damaged_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Member::start(Server::Rustcd, d, free_port(), free_port(), &[]);
    let marker = b"a-value-to-find-in-the-dump";
    let value = std::str::from_utf8(marker).unwrap();
    assert_eq!(ctl(&m.endpoint, &["put", "k1", value]).code, 0);
    let snap = d.join("s.snap");
    save(&m.endpoint, &snap);
    let bytes = std::fs::read(&snap).unwrap();
    // somewhere in the middle of the dump: records follow the value
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the value is in the dump")
        + 3;

    // cut short (and no longer a multiple of 512 plus a hash)
    let cut = d.join("cut.snap");
    let n = if at % 512 == 32 { at + 1 } else { at };
    std::fs::write(&cut, &bytes[..n]).unwrap();
    // one byte of the value changed, same length
    let flipped = d.join("flipped.snap");
    let mut b = bytes.clone();
    b[at] ^= 0x55;
    std::fs::write(&flipped, &b).unwrap();

    for (file, why) in [(&cut, "truncated record"), (&flipped, "checksum mismatch")] {
        let o = status_in(file, "simple");
        assert_eq!(o.code, 1, "{o:?}");
        assert!(
            o.errors.contains("is corrupt") && o.errors.contains(why),
            "{o:?}"
        );
        assert!(o.stdout.is_empty());

        // etcdutl's hash check first, word for word
        let mine = restore(
            &rustcdctl_bin(),
            &[path_arg(file), "--data-dir".into(), path_arg(&d.join("r1"))],
        );
        // etcdutl leaves its data dir behind: a new one each time
        let e1 = d.join(format!("e1-{}", why.replace(' ', "-")));
        let etcd = restore(
            &etcdctl_bin(),
            &[path_arg(file), "--data-dir".into(), path_arg(&e1)],
        );
        assert_eq!((mine.code, &mine.errors), (etcd.code, &etcd.errors));
        assert_eq!(mine.code, 1);

        // without the hash check, the dump's own check
        let r2 = d.join("r2");
        let o = restore(
            &rustcdctl_bin(),
            &[
                path_arg(file),
                "--skip-hash-check".into(),
                "--data-dir".into(),
                path_arg(&r2),
            ],
        );
        assert_eq!(o.code, 1, "{o:?}");
        assert!(o.errors.contains(why), "{o:?}");
        assert!(!o.stderr.contains("panic"));
        assert!(
            !d.join("r1").exists() && !r2.exists(),
            "a data dir was left behind"
        );
    }
}

#[test]
fn etcd_snapshots_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Member::start(Server::Etcd, d, free_port(), free_port(), &[]);
    let put = run(
        &etcdctl_bin(),
        &[&format!("--endpoints={}", m.endpoint), "put", "k", "v"],
        None,
        &[],
    );
    assert_eq!(put.code, 0);
    let db = d.join("etcd.db");
    let o = run(
        &etcdctl_bin(),
        &[
            &format!("--endpoints={}", m.endpoint),
            "snapshot",
            "save",
            db.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    // it is a good snapshot, for etcd
    let ok = run(
        &etcdctl_bin(),
        &["snapshot", "status", db.to_str().unwrap()],
        None,
        &[],
    );
    assert_eq!(ok.code, 0, "{ok:?}");

    let st = status_in(&db, "simple");
    let data = d.join("r");
    let rs = restore(
        &rustcdctl_bin(),
        &[path_arg(&db), "--data-dir".into(), path_arg(&data)],
    );
    for (o, cmd) in [(&st, "status"), (&rs, "restore")] {
        assert_eq!(o.code, 1, "{o:?}");
        assert!(o.errors.contains("etcd (bbolt) snapshot"), "{o:?}");
        assert!(
            o.errors.contains(&format!("etcdutl snapshot {cmd}")),
            "{o:?}"
        );
        assert!(!o.stderr.contains("panic"), "{o:?}");
        assert!(o.stdout.is_empty());
    }
    assert!(!data.exists());
}

/// etcd restores a database file copied out of a data dir with
/// `--skip-hash-check`; rustcd's database file likewise.
/// Stops a member as an operator would (SIGTERM), so that what it applied
/// is durable in its database file before the file is copied.
fn stop(mut m: Member) {
    let st = Command::new("kill")
        .args(["-TERM", &m.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = m.child.wait();
}

#[test]
fn database_copied_from_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Member::start(Server::Rustcd, d, free_port(), free_port(), &[]);
    assert_eq!(ctl(&m.endpoint, &["put", "k1", "v1"]).code, 0);
    assert_eq!(ctl(&m.endpoint, &["put", "k2", "v2"]).code, 0);
    let rev = revision_of(&m.endpoint);
    stop(m);
    let db: PathBuf = d.join("m0.etcd/member/snap/db");
    let copy = d.join("copy.db");
    std::fs::copy(&db, &copy).unwrap();

    let (_, status_rev, _, size) = status_json(&copy);
    assert_eq!(status_rev, rev);
    assert_eq!(size, std::fs::metadata(&copy).unwrap().len());

    let peer = free_port();
    let purl = format!("http://127.0.0.1:{peer}");
    let data = d.join("restored");
    let mut args = vec![
        path_arg(&copy),
        "--data-dir".into(),
        path_arg(&data),
        "--name".into(),
        "r0".into(),
    ];
    args.extend(s(&[
        "--initial-cluster",
        &format!("r0={purl}"),
        "--initial-advertise-peer-urls",
        &purl,
    ]));
    let o = restore(&rustcdctl_bin(), &args);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.errors,
        "Error: snapshot missing hash but --skip-hash-check=false"
    );
    args.push("--skip-hash-check".into());
    let o = restore(&rustcdctl_bin(), &args);
    assert_eq!(o.code, 0, "{o:?}");
    let r = start_restored(&data, "r0", peer, &d.join("restored.log"));
    assert_eq!(
        text(&ctl(&r.endpoint, &["get", "k", "--prefix", "--keys-only"])),
        "k1\n\nk2\n\n"
    );
}
