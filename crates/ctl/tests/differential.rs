//! Differential tests: the same command lines through the real etcdctl
//! 3.5.1 and through rustcdctl, against the same server, comparing stdout
//! byte for byte, stderr's `Error:` lines and the exit code.
//!
//! Commands that change the server run as a scenario replayed twice on a
//! freshly started single-member server with the same name, ports, token
//! and data dir (so the same cluster and member ids, revisions and raft
//! terms): once driven by etcdctl, once by rustcdctl. Only what cannot be
//! the same is normalised: lease and added-member ids (random), the time
//! a health check took, and a lease's remaining TTL.

mod common;

use common::*;

// ---------------------------------------------------------------- tests

fn kv_steps() -> Vec<Step> {
    let mut s = vec![
        step("put foo bar"),
        step("put foo/a 1"),
        step("put foo/b 2"),
        step("put zoo 'with space'"),
        step("put bin \u{1}\u{7f}é\"q"),
        step("put fromstdin").stdin("value from stdin\n"),
        step("put emptystdin").stdin(""),
    ];
    for w in FORMATS {
        let w = format!("-w {w}");
        for c in [
            "get foo",
            "get nothing",
            "get foo --prefix",
            "get foo --prefix --keys-only",
            "get foo --prefix --count-only",
            "get foo --prefix --limit=1",
            "get foo --prefix --sort-by=MODIFY --order=DESCEND",
            "get foo --prefix --sort-by=value",
            "get foo --prefix --sort-by=version --order=ascend",
            "get foo --prefix --sort-by=create --order=descend",
            "get '' --prefix",
            "get '' --from-key --limit 3",
            "get foo/a --from-key",
            "get foo foo/z",
            "get foo --rev=2",
            "get foo --rev 3 --consistency=s",
            "get --print-value-only foo --prefix",
            "get bin",
            "--hex get foo --prefix",
            "get zoo",
            "get fromstdin",
            "put foo bar2 --prev-kv",
            "put foo --ignore-value",
            "put foo --ignore-value --prev-kv",
            "put newkey v",
            "del nothing",
            "del newkey --prev-kv",
            "del foo/a foo/c --prev-kv",
            "del foo/ --prefix",
            "--hex del foo --prev-kv",
            "put foo again",
        ] {
            s.push(step(&format!("{w} {c}")));
        }
        s.push(
            step(&format!("{w} txn"))
                .stdin("mod(\"foo\") > \"0\"\n\nput x y\nget foo\ndel nothing\n\nget zoo\n\n"),
        );
        s.push(step(&format!("{w} txn")).stdin("val(\"foo\") = \"nope\"\nversion(\"zoo\") = \"1\"\n\nput x y\n\nget foo --prefix\nput x z --prev-kv\ndel x --prev-kv\n\n"));
        s.push(step(&format!("{w} txn -i")).stdin(
            "c(\"foo\") != \"0\"\nm(\"zoo\") < \"100\"\n\nput \"a b\" \"c d\"\nget \"a b\"\n\n\n",
        ));
        s.push(step(&format!("{w} txn --interactive")).stdin("\n\n\n"));
        s.push(step(&format!("{w} compaction 3")));
    }
    s.push(step("compaction --physical 5"));
    s.push(step("compaction 2"));
    s.push(step("compaction 100000"));
    s.push(step("get foo --rev=2"));
    s
}

#[test]
fn kv_commands_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &kv_steps());
}

#[test]
fn kv_commands_all_formats_etcd() {
    differential(Server::Etcd, &[], &kv_steps());
}

fn lease_steps() -> Vec<Step> {
    let mut s = vec![
        step("lease grant 100").norm(Norm::Lease),
        step("put lk v --lease=$L1"),
        step("put lk2 v --lease=$L1"),
    ];
    for w in FORMATS {
        let w = format!("-w {w}");
        for c in [
            "lease timetolive $L1",
            "lease timetolive $L1 --keys",
            "lease list",
            "lease keep-alive --once $L1",
            "put lk v3 --ignore-lease --prev-kv",
            "get lk",
            "lease timetolive 1234",
            "lease keep-alive --once 1234",
            "lease revoke 1234",
        ] {
            let mut st = step(&format!("{w} {c}"))
                .norm(Norm::Lease)
                .norm(Norm::Sorted);
            if w.ends_with("protobuf") && (c.contains("lk") || c.contains("list")) {
                st = st.norm(Norm::CodeOnly); // the lease id is in the bytes
            }
            s.push(st);
        }
        s.push(step(&format!("{w} lease grant 50")).norm(Norm::Lease));
    }
    s.push(step("lease revoke $L1").norm(Norm::Lease));
    s.push(step("-w json lease revoke $L2").norm(Norm::Lease));
    s.push(step("-w fields lease revoke $L3").norm(Norm::Lease));
    s.push(step("-w protobuf lease revoke $L4").norm(Norm::Lease));
    s.push(step("-w table lease revoke $L5").norm(Norm::Lease));
    s.push(step("lease timetolive $L1 --keys").norm(Norm::Lease));
    s.push(step("get lk --prefix"));
    s.push(step("put x y --lease=ffff"));
    s.push(step("put x y --lease=zz"));
    s.push(step("lease grant abc"));
    s.push(step("lease revoke zz"));
    s.push(step("lease timetolive"));
    s.push(step("lease keep-alive"));
    s
}

#[test]
fn lease_commands_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &lease_steps());
}

#[test]
fn lease_commands_all_formats_etcd() {
    differential(Server::Etcd, &[], &lease_steps());
}

fn cluster_steps(kind: Server) -> Vec<Step> {
    let mut s = vec![step("put a 1"), step("put b 2")];
    for w in FORMATS {
        let w = format!("-w {w}");
        if kind == Server::Etcd {
            s.push(step(&format!("{w} endpoint status")).norm(Norm::DbSize));
            s.push(step(&format!("{w} endpoint status --cluster")).norm(Norm::DbSize));
        } else {
            s.push(step(&format!("{w} endpoint status")));
            s.push(step(&format!("{w} endpoint status --cluster")));
        }
        for c in [
            "member list",
            "--hex member list",
            "endpoint hashkv",
            "endpoint hashkv --rev=2",
            "endpoint hashkv --cluster",
            "alarm list",
            "alarm disarm",
            "defrag",
            "defrag --cluster",
            "move-leader 1234",
            "member remove 1234",
            "member update 1234 --peer-urls=http://127.0.0.1:1",
            "member promote 1234",
            "version",
            "snapshot save $DIR/snap.db",
        ] {
            s.push(step(&format!("{w} {c}")));
        }
        s.push(step(&format!("{w} endpoint health")).norm(Norm::Took));
        s.push(step(&format!("{w} endpoint health --cluster")).norm(Norm::Took));
        // a learner: added, listed, refused promotion, updated, removed
        let code_only = if w.ends_with("protobuf") {
            Norm::CodeOnly
        } else {
            Norm::Member
        };
        let n = FORMATS.iter().position(|f| w.ends_with(f)).unwrap() + 1;
        s.push(
            step(&format!("{w} member add l{n} --learner --peer-urls=http://127.0.0.1:{n}1,http://127.0.0.1:{n}2"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!("{w} member list"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!("{w} member promote $M{n}"))
                .norm(Norm::Member)
                .norm(code_only),
        );
        s.push(
            step(&format!(
                "{w} member update $M{n} --peer-urls=http://127.0.0.1:{n}3"
            ))
            .norm(Norm::Member)
            .norm(code_only),
        );
        s.push(
            step(&format!("{w} member remove $M{n}"))
                .norm(Norm::Member)
                .norm(code_only),
        );
    }
    s
}

#[test]
fn cluster_and_maintenance_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &cluster_steps(Server::Rustcd));
}

#[test]
fn cluster_and_maintenance_all_formats_etcd() {
    // etcd answers Status with its own version: compare where the text does
    // not depend on the server (ids are deterministic on a replayed etcd too)
    differential(Server::Etcd, &[], &cluster_steps(Server::Etcd));
}

fn move_leader_self_steps() -> Vec<Step> {
    let mut s = Vec::new();
    for w in FORMATS {
        // the only member is the leader: moving to itself
        s.push(step(&format!("-w {w} move-leader $SELF")));
    }
    s
}

#[test]
fn move_leader_to_self_rustcd() {
    // the member id is fixed by the name, peer URL and token: learn it
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let id = {
        let m = Member::start(Server::Rustcd, dir.path(), ports.0, ports.1, &[]);
        let o = run(
            &rustcdctl_bin(),
            &[&format!("--endpoints={}", m.endpoint), "member", "list"],
            None,
            &[],
        );
        String::from_utf8_lossy(&o.stdout)
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    let steps: Vec<Step> = move_leader_self_steps()
        .into_iter()
        .map(|mut s| {
            s.args = s.args.iter().map(|a| a.replace("$SELF", &id)).collect();
            s
        })
        .collect();
    let (want, _) = replay(
        Server::Rustcd,
        &etcdctl_bin(),
        ports,
        dir.path(),
        &[],
        &steps,
    );
    let (got, _) = replay(
        Server::Rustcd,
        &rustcdctl_bin(),
        ports,
        dir.path(),
        &[],
        &steps,
    );
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            (&w.stdout, &w.errors, w.code),
            (&g.stdout, &g.errors, g.code),
            "step {i} {:?}: etcdctl {w:?} rustcdctl {g:?}",
            steps[i].args
        );
    }
}

/// Arguments errors, usage texts, unknown flags and commands, bad
/// output formats, TLS flags, environment variables.
fn error_steps() -> Vec<Step> {
    let mut s = Vec::new();
    for c in [
        "get",
        "get --bogus foo",
        "bogus",
        "gett foo",
        "get --rev=abc foo",
        "get --rev",
        "get -x",
        "get -w",
        "get --prefix=maybe k",
        "get --limit 0x2 --prefix k",
        "get -wjson k",
        "get -w=fields k",
        "get -w json --write-out=fields k",
        "--dial-timeout=xyz get foo",
        "--command-timeout 2 get foo",
        "put",
        "put k --lease=zz v",
        "put k v --ignore-value",
        "put -- k -v",
        "get k",
        "get --count-only foo",
        "get --count-only -w json foo",
        "get --print-value-only -w json foo",
        "get --consistency=x foo",
        "get --sort-by=bad foo",
        "get --order=bad foo",
        "get --prefix --from-key foo",
        "get --keys-only --count-only foo",
        "get --prefix foo bar",
        "get a b c",
        "del",
        "del a b c",
        "del --prefix --from-key a",
        "del --prefix a b",
        "compaction",
        "compaction abc",
        "member add",
        "member add x http://a",
        "member add x",
        "member remove zz",
        "member remove",
        "member update 12",
        "member promote",
        "move-leader zz",
        "move-leader",
        "alarm list x",
        "alarm disarm x",
        "snapshot save",
        "lease grant",
        "lease grant 1 2",
        "lease revoke",
        "txn x",
        "version x",
        "-w yaml get foo",
        "-w yaml version",
        "--cert /nonexist get foo",
        "--key /nonexist get foo",
        "--cacert /nonexist get foo",
        "--cert= get foo",
        "get --help",
        "put -h",
        "del --help",
        "txn --help",
        "compaction --help",
        "lease",
        "lease bogus",
        "lease grant --help",
        "lease revoke --help",
        "lease timetolive --help",
        "lease list --help",
        "lease keep-alive -h",
        "member",
        "member list --help",
        "member add -h",
        "member remove -h",
        "member update -h",
        "member promote -h",
        "endpoint",
        "endpoint health -h",
        "endpoint status -h",
        "endpoint hashkv -h",
        "move-leader -h",
        "alarm",
        "alarm list -h",
        "alarm disarm -h",
        "defrag -h",
        "snapshot save -h",
        "version -h",
        "watch --help",
        "help get",
        "help lease grant",
        "mem li",
        "memb list -w json",
        "lea li",
    ] {
        s.push(step(c));
    }
    for c in [
        "",
        "--help",
        "-h get",
        "-w json",
        "snapshot",
        "help",
        "help bogus",
    ] {
        s.push(step(c));
    }
    // transactions that etcdctl refuses
    for input in [
        "val(foo) = \"x\"\n\n\n\n",
        "val(\"foo\") = x\n\n\n\n",
        "ver(\"foo\") = \"x\"\n\n\n\n",
        "bad(\"foo\") = \"1\"\n\n\n\n",
        "nocompare\n\n\n\n",
        "\nput a\n\n\n",
        "\nfoo a b\n\n\n",
        "\nget --bogus a\n\n\n",
        "\nget\n\n\n",
        "\nput a b\n\n",
        "val(\"foo\") = \"x\"",
        "val(\"foo\") ~ \"x\"\n\n\n\n",
    ] {
        s.push(step("txn").stdin(input));
    }
    // ETCDCTL_* environment variables
    s.push(step("get foo").env("ETCDCTL_WRITE_OUT", "json"));
    s.push(step("get foo -w fields").env("ETCDCTL_WRITE_OUT", "json"));
    s.push(step("get foo").env("ETCDCTL_HEX", "true"));
    s.push(step("get foo").env("ETCDCTL_COMMAND_TIMEOUT", "3s"));
    s.push(step("get foo").env("ETCDCTL_DIAL_TIMEOUT", "bogus"));
    s.push(step("get foo --hex").env("ETCDCTL_HEX", "true"));
    s.push(step("get foo").env("ETCDCTL_BOGUS", "1"));
    s.push(step("get foo").env("ETCDCTL_API", "3"));
    s.push(step("version").env("ETCDCTL_API", "5"));
    // endpoints: failover past a dead one; nothing answers
    s.push(step(
        "--endpoints=127.0.0.1:1,$EP --command-timeout=3s get foo",
    ));
    s.push(step("--endpoints=$EP,127.0.0.1:1 member list"));
    for c in [
        "get foo",
        "put a b",
        "member list",
        "lease grant 10",
        "lease revoke 10",
        "alarm list",
        "compaction 1",
        "endpoint status",
        "endpoint hashkv",
        "defrag",
        "move-leader 12",
        "-w json endpoint status",
        "-w table endpoint hashkv",
        "snapshot save /nonexistent/x.db",
    ] {
        s.push(step(&format!(
            "--endpoints=127.0.0.1:1,127.0.0.1:2 --command-timeout=1s {c}"
        )));
    }
    s.push(step("--endpoints=127.0.0.1:1 --command-timeout=1s endpoint health").norm(Norm::Took));
    s.push(
        step("--endpoints=127.0.0.1:1 --command-timeout=1s -w json endpoint health")
            .norm(Norm::Took),
    );
    s.push(
        step("--endpoints=127.0.0.1:1 --command-timeout=1s -w table endpoint health")
            .norm(Norm::Took),
    );
    s
}

#[test]
fn errors_usage_and_environment() {
    differential(Server::Rustcd, &[], &error_steps());
}

fn watch_steps() -> Vec<Step> {
    let mut s = vec![
        step("put w1 a"),
        step("put w1 b"),
        step("put w2 c"),
        step("del w1"),
        step("put other x"),
        step("put w3 d"),
    ];
    // a watch runs until stopped: each such step costs its wait
    for w in FORMATS {
        let w = format!("-w {w}");
        s.push(step(&format!("{w} watch --rev=2 --prev-kv w --prefix")).kill_after(700));
        s.push(step(&format!("{w} watch --rev 1 w1 w3")).kill_after(700));
    }
    s.push(step("watch --rev=1 w1").kill_after(700));
    s.push(step("watch --rev=1 --prefix ''").kill_after(700));
    s.push(
        step("watch --rev=1 w1")
            .env("ETCDCTL_WATCH_KEY", "w2")
            .kill_after(700),
    );
    s.push(
        step("watch --rev=1")
            .env("ETCDCTL_WATCH_KEY", "w")
            .env("ETCDCTL_WATCH_RANGE_END", "wz")
            .kill_after(700),
    );
    s.push(step("watch").env("ETCDCTL_WATCH_RANGE_END", "wz"));
    s.push(step("watch"));
    s.push(step("watch --rev=1 w1 --"));
    s.push(step("watch --prefix w1 w2"));
    // one watch per session: etcdctl prints each watch from its own
    // goroutine, so two watches interleave at random
    s.push(
        step("watch -i")
            .stdin("watch --rev=1 w1\nbogus\n")
            .kill_after(800),
    );
    s.push(
        step("-w json watch -i")
            .stdin("watch --rev 1 --prefix w2 --prev-kv\n\n")
            .kill_after(800),
    );
    // EOF ends it with exit 3 (racing the first events: compare the exit)
    s.push(
        step("watch -i")
            .stdin("watch --rev=1 w1\n")
            .norm(Norm::CodeOnly),
    );
    s.push(step("compaction 4"));
    s.push(step("watch --rev=2 w1"));
    s.push(step("-w json watch --rev=2 w1"));
    s
}

#[test]
fn watch_all_formats_rustcd() {
    differential(Server::Rustcd, &[], &watch_steps());
}

#[test]
fn watch_all_formats_etcd() {
    differential(Server::Etcd, &[], &watch_steps());
}

/// A NOSPACE alarm: `alarm list`, `endpoint health` and `alarm disarm`
/// with an alarm raised.
#[test]
fn alarms_raised_rustcd() {
    let big = "x".repeat(100_000);
    let mut s = Vec::new();
    for i in 0..6 {
        s.push(step(&format!("put big{i} {big}")).norm(Norm::CodeOnly));
    }
    for w in FORMATS {
        s.push(step(&format!("-w {w} alarm list")));
        s.push(step(&format!("-w {w} endpoint health")).norm(Norm::Took));
        s.push(step(&format!("-w {w} put more x")));
    }
    s.push(step("-w json alarm disarm"));
    s.push(step("alarm list"));
    differential(Server::Rustcd, &["--quota-backend-bytes", "300000"], &s);
}
