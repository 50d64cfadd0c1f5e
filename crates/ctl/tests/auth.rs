//! Differential tests of `user`, `role` and `auth`: the same command
//! lines through the real etcdctl 3.5.1 and through rustcdctl, each
//! replayed on a fresh real etcd 3.5.1 (rustcd has no Auth service yet)
//! with the same name, ports and token, so that ids, revisions and auth
//! revisions agree; stdout is compared byte for byte, with stderr's
//! `Error:` lines and the exit code.
//!
//! Passwords are checked by logging in with them afterwards: a password
//! read wrongly shows as an authentication failure in place of a
//! permission error (or the other way round).

mod common;

use common::*;

/// `cmd` in every output format, with `{w}` in it replaced by the
/// format's name (for names that must differ from one format to the
/// next, as a user can be added only once).
fn each_format(cmd: &str) -> Vec<Step> {
    FORMATS
        .iter()
        .map(|w| step(&format!("-w {w} {}", cmd.replace("{w}", w))))
        .collect()
}

/// Users and roles made, granted, shown, revoked and deleted, in every
/// output format, with the errors etcd answers along the way.
fn users_and_roles_steps() -> Vec<Step> {
    let mut s = vec![
        step("role add shared"),
        step("role grant-permission shared read s1"),
        step("role grant-permission shared readwrite 'k é\u{7f}' --prefix"),
        step("user add nopw --no-password"),
        step("user add flagpw --new-user-password=secret"),
    ];
    for c in [
        "user add u{w}:pw",
        "user add u{w}:pw",
        "role add r{w}",
        "role add r{w}",
        "role grant-permission r{w} read k1",
        "role grant-permission r{w} write k2 k5",
        "role grant-permission r{w} readwrite p/ --prefix",
        "role grant-permission r{w} READ fk --from-key",
        "role grant-permission r{w} readWrite '' --prefix",
        "role grant-permission r{w} write ''",
        "role grant-permission r{w} read ''  --from-key",
        "role grant-permission r{w} write a b c",
        "role grant-permission nosuch read k",
        "role get r{w}",
        "role get nosuch",
        "role list",
        "user grant-role u{w} shared",
        "user grant-role u{w} r{w}",
        "user grant-role u{w} r{w}",
        "user grant-role u{w} nosuch",
        "user grant-role nosuch r{w}",
        "user get u{w}",
        "user get u{w} --detail",
        "user get nopw",
        "user get nopw --detail",
        "user get nosuch",
        "user get nosuch --detail",
        "user list",
        "user revoke-role u{w} nosuch",
        "user revoke-role u{w} r{w}",
        "user revoke-role u{w} r{w}",
        "role revoke-permission r{w} k1",
        "role revoke-permission r{w} k2 k5",
        "role revoke-permission r{w} p/ --prefix",
        "role revoke-permission r{w} fk --from-key",
        "role revoke-permission r{w} '' --prefix",
        "role revoke-permission r{w} ''",
        "role revoke-permission r{w} nothere",
        "role revoke-permission nosuch k1",
        "role get r{w}",
        "user delete u{w}",
        "user delete u{w}",
        "role delete r{w}",
        "role delete r{w}",
        "auth status",
        "auth disable",
    ] {
        s.extend(each_format(c));
    }
    s.push(step("user list"));
    s.push(step("role list"));
    s.push(step("role get shared"));
    s
}

#[test]
fn users_and_roles_all_formats_etcd() {
    differential(Server::Etcd, &[], &users_and_roles_steps());
}

/// Authentication turned on and off: the root user and role, commands
/// as root, a user refused what its roles do not allow.
fn auth_steps() -> Vec<Step> {
    let mut s = each_format("auth status");
    s.extend([
        step("auth enable"),
        step("user add root:rootpw"),
        step("role add r1"),
        step("role grant-permission r1 read foo"),
        step("role grant-permission r1 readwrite pub/ --prefix"),
        step("user add alice:alicepw"),
        step("user grant-role alice r1"),
        step("put foo bar"),
        // makes the root role, grants it to root, enables
        step("-w json auth enable"),
        step("auth status"),
        step("user list"),
        step("auth enable"),
    ]);
    for c in [
        "auth status",
        "user list",
        "role list",
        "user get root",
        "user get root --detail",
        "role get root",
        "user get alice --detail",
    ] {
        s.extend(each_format(&format!("--user root:rootpw {c}")));
    }
    s.extend([
        step("--user root --password rootpw user get alice"),
        step("--user alice:alicepw get foo"),
        step("--user alice:alicepw put foo x"),
        step("--user alice:alicepw put pub/a x"),
        step("--user alice:alicepw get pub/ --prefix"),
        step("--user alice:alicepw user list"),
        step("--user alice:alicepw user get alice"),
        step("--user alice:alicepw role get r1"),
        step("--user alice:alicepw role add r2"),
        step("--user alice:alicepw auth status"),
        step("--user alice:alicepw auth disable"),
        step("--user alice:wrong get foo"),
        step("--user root:rootpw user passwd alice --interactive=false").stdin("alice2\n"),
        step("--user alice:alicepw get foo"),
        step("--user alice:alice2 get foo"),
        step("--user root:rootpw user delete root"),
        step("--user root:rootpw user revoke-role root root"),
        step("--user root:rootpw role delete root"),
        step("--user root:rootpw role revoke-permission r1 foo"),
        step("--user alice:alice2 get foo"),
        step("--user root:rootpw auth enable"),
        step("--user root:rootpw -w json auth disable"),
        step("auth status"),
        step("auth disable"),
        step("user list"),
        step("get foo"),
    ]);
    s
}

#[test]
fn auth_enable_root_and_permissions_etcd() {
    differential(Server::Etcd, &[], &auth_steps());
}

/// `auth enable` with a root role not granted to root: etcdctl tries to
/// make the role and fails.
#[test]
fn auth_enable_root_role_not_granted_etcd() {
    let s = vec![
        step("user add root:pw"),
        step("role add root"),
        step("auth enable"),
        step("user grant-role root root"),
        step("auth enable"),
        step("auth status"),
        step("--user root:pw auth status"),
    ];
    differential(Server::Etcd, &[], &s);
}

/// Passwords from the command line, from stdin (`--interactive=false`:
/// Go's `Scanf("%s")`), and from the prompt (which reads stdin when it is
/// no terminal); then each one tried.
fn password_steps() -> Vec<Step> {
    let mut s = vec![
        step("user add p1 --interactive=false").stdin("pw1\n"),
        step("user add p2 --interactive=false").stdin(" \tspaced word\n"),
        step("user add p3 --interactive=false").stdin("last"),
        step("user add p4 --interactive=false").stdin("\nlater\n"),
        step("user add p5").stdin("pw5\npw5\n"),
        step("user add p6").stdin("pw6\nother\n"),
        step("user add p7"),
        step("user add p8").stdin("pw8\n"),
        step("user add p9").stdin("  pw9 \r\n pw9\n"),
        step("user add p10").stdin("\n"),
        step("user add p11:with:colons"),
        step("user add p12:ignored --new-user-password=flagpw"),
        step("user add p13:x --no-password"),
        step("user add p14 --no-password --interactive=false").stdin("unread\n"),
        step("user add :pw"),
        step("user passwd p1").stdin("n1\nn1\n"),
        step("user passwd p5 --interactive=false").stdin("n5 tail\n"),
        step("user passwd p1").stdin("a\nb\n"),
        step("user passwd p1"),
        step("user passwd nosuch --interactive=false").stdin("x\n"),
        step("-w json user passwd p3 --interactive=false").stdin("n3\n"),
        step("-w table user passwd p3 --interactive=false").stdin("n3\n"),
        step("user list"),
        step("user add root:rootpw"),
        step("auth enable"),
    ];
    // a user without roles who logs in is refused the key: "permission
    // denied"; a wrong password fails the login itself
    for login in [
        "p1:n1",
        "p1:pw1",
        "p2:spaced",
        "p3:n3",
        "p3:last",
        "p4:later",
        "p5:n5",
        "p9:pw9",
        "p11:with:colons",
        "p12:ignored:flagpw",
        "p13:x:",
        "p14:unread",
    ] {
        s.push(step(&format!("--user {login} get k")));
    }
    s.push(step("--user p12:ignored --password flagpw get k"));
    s
}

#[test]
fn passwords_etcd() {
    differential(Server::Etcd, &[], &password_steps());
}

/// Usage texts, flag and argument errors (no RPC is made for these).
fn usage_and_error_steps() -> Vec<Step> {
    let mut s = Vec::new();
    for c in [
        "user",
        "user --help",
        "user bogus",
        "user add --help",
        "user delete -h",
        "user get --help",
        "user list --help",
        "user passwd --help",
        "user grant-role --help",
        "user revoke-role --help",
        "role",
        "role -h",
        "role add --help",
        "role delete --help",
        "role get --help",
        "role list --help",
        "role grant-permission --help",
        "role revoke-permission --help",
        "auth",
        "auth --help",
        "auth enable --help",
        "auth disable --help",
        "auth status --help",
        "help user add",
        "help role",
        "user add --bogus x",
        "user add --interactive=maybe x",
        "user get --detail=2 x",
        "role grant-permission --prefix=maybe r read k",
        "user add",
        "user add a b",
        "user add :pw",
        "user delete",
        "user delete a b",
        "user get",
        "user list x",
        "user passwd",
        "user passwd a b",
        "user grant-role a",
        "user grant-role a b c",
        "user revoke-role a",
        "role add",
        "role add a b",
        "role delete",
        "role get",
        "role list x",
        "role grant-permission r read",
        "role grant-permission r bogus k",
        "role grant-permission r bogus k --prefix --from-key",
        "role grant-permission r read k --prefix --from-key",
        "role grant-permission r read k e --prefix",
        "role grant-permission r read k e --from-key",
        "role grant-permission r read '' --prefix --from-key",
        "role revoke-permission r",
        "role revoke-permission r k --prefix --from-key",
        "role revoke-permission r k e --prefix",
        "role revoke-permission r k e --from-key",
        "role revoke-permission r '' --prefix --from-key",
        "auth enable x",
        "auth disable x",
        "auth status x",
        "-w yaml user list",
        "-w yaml auth enable",
        "-w yaml user add u:p",
        "us li",
        "ro li -w json",
        "au st",
    ] {
        s.push(step(c));
    }
    // etcdctl's user and role commands wait for ever for an endpoint
    // (their RPCs have no deadline); the auth ones give up
    for c in ["auth status", "auth enable", "auth disable"] {
        s.push(step(&format!(
            "--endpoints=127.0.0.1:1,127.0.0.1:2 --command-timeout=1s {c}"
        )));
    }
    s
}

#[test]
fn usage_and_errors_etcd() {
    differential(Server::Etcd, &[], &usage_and_error_steps());
}
