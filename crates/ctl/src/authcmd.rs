//! etcdctl 3.5.1's `user`, `role` and `auth` commands, each as etcdctl
//! runs it: arguments checked first, then the password (if any) read,
//! then the client config and printer, then the Auth RPCs, then the
//! printer.

use std::future::Future;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::Command;

use prost::Message;
use rustcd_proto::authpb::{permission, Permission, UserAddOptions};
use rustcd_proto::etcdserverpb::auth_client::AuthClient;
use rustcd_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleAddResponse,
    AuthRoleDeleteRequest, AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest,
    AuthRoleListResponse, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse,
    AuthStatusRequest, AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse,
    AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest,
    AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, ResponseHeader,
};
use tokio::time::Instant;
use tonic::Status;

use crate::client::{status_text, with_timeout, Conn, Global, Svc};
use crate::commands::prefix_end;
use crate::flags::{f, group, leaf, Cmd, Flag, Kind, Parsed};
use crate::gofmt::{quote, quote_str, Obj};
use crate::printer::{j_header, Format, Printer};
use crate::{out, CtlError, EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR};

type R = Result<(), CtlError>;

// ------------------------------------------------------------- commands

const USER_ADD_FLAGS: &[Flag] = &[
    f(
        "interactive",
        Kind::Bool,
        "true",
        "Read password from stdin instead of interactive terminal",
    ),
    f(
        "new-user-password",
        Kind::Str,
        "",
        "Supply password from the command line flag",
    ),
    f(
        "no-password",
        Kind::Bool,
        "false",
        "Create a user without password (CN based auth only)",
    ),
];

const USER_GET_FLAGS: &[Flag] = &[f(
    "detail",
    Kind::Bool,
    "false",
    "Show permissions of roles granted to the user",
)];

const USER_PASSWD_FLAGS: &[Flag] = &[f(
    "interactive",
    Kind::Bool,
    "true",
    "If true, read password from stdin instead of interactive terminal",
)];

const GRANT_PERMISSION_FLAGS: &[Flag] = &[
    f("prefix", Kind::Bool, "false", "grant a prefix permission"),
    f(
        "from-key",
        Kind::Bool,
        "false",
        "grant a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];

const REVOKE_PERMISSION_FLAGS: &[Flag] = &[
    f("prefix", Kind::Bool, "false", "revoke a prefix permission"),
    f(
        "from-key",
        Kind::Bool,
        "false",
        "revoke a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];

pub const USER: Cmd = group(
    "user",
    "user <subcommand>",
    "User related commands",
    &[
        leaf(
            "add",
            "add <user name or user:password> [options]",
            "Adds a new user",
            USER_ADD_FLAGS,
        ),
        leaf("delete", "delete <user name>", "Deletes a user", &[]),
        leaf(
            "get",
            "get <user name> [options]",
            "Gets detailed information of a user",
            USER_GET_FLAGS,
        ),
        leaf("list", "list", "Lists all users", &[]),
        leaf(
            "passwd",
            "passwd <user name> [options]",
            "Changes password of user",
            USER_PASSWD_FLAGS,
        ),
        leaf(
            "grant-role",
            "grant-role <user name> <role name>",
            "Grants a role to a user",
            &[],
        ),
        leaf(
            "revoke-role",
            "revoke-role <user name> <role name>",
            "Revokes a role from a user",
            &[],
        ),
    ],
);

pub const ROLE: Cmd = group(
    "role",
    "role <subcommand>",
    "Role related commands",
    &[
        leaf("add", "add <role name>", "Adds a new role", &[]),
        leaf("delete", "delete <role name>", "Deletes a role", &[]),
        leaf(
            "get",
            "get <role name>",
            "Gets detailed information of a role",
            &[],
        ),
        leaf("list", "list", "Lists all roles", &[]),
        leaf(
            "grant-permission",
            "grant-permission [options] <role name> <permission type> <key> [endkey]",
            "Grants a key to a role",
            GRANT_PERMISSION_FLAGS,
        ),
        leaf(
            "revoke-permission",
            "revoke-permission <role name> <key> [endkey]",
            "Revokes a key from a role",
            REVOKE_PERMISSION_FLAGS,
        ),
    ],
);

pub const AUTH: Cmd = group(
    "auth",
    "auth <enable or disable>",
    "Enable or disable authentication",
    &[
        leaf("enable", "enable", "Enables authentication", &[]),
        leaf("disable", "disable", "Disables authentication", &[]),
        leaf("status", "status", "Returns authentication status", &[]),
    ],
);

pub async fn run(p: &mut Parsed) -> R {
    match p.name().as_str() {
        "user add" => user_add(p).await,
        "user delete" => user_delete(p).await,
        "user get" => user_get(p).await,
        "user list" => user_list(p).await,
        "user passwd" => user_passwd(p).await,
        "user grant-role" => user_grant_role(p).await,
        "user revoke-role" => user_revoke_role(p).await,
        "role add" => role_add(p).await,
        "role delete" => role_delete(p).await,
        "role get" => role_get(p).await,
        "role list" => role_list(p).await,
        "role grant-permission" => role_grant_permission(p).await,
        "role revoke-permission" => role_revoke_permission(p).await,
        "auth enable" => auth_enable(p).await,
        "auth disable" => auth_disable(p).await,
        "auth status" => auth_status(p).await,
        other => Err(err1(format!("{other} is not supported yet by rustcdctl"))),
    }
}

// -------------------------------------------------------------- helpers

fn bad_args(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_BAD_ARGS, msg)
}

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

/// etcdctl's argument-count check: exit 128 with `msg` unless `ok`.
fn check_args(ok: bool, msg: &str) -> R {
    if ok {
        Ok(())
    } else {
        Err(bad_args(msg))
    }
}

fn auth_client(conn: &Conn) -> AuthClient<Svc> {
    AuthClient::with_interceptor(conn.channel.clone(), conn.token.clone())
}

/// etcdctl's `mustClientFromCmd`: the global config (output format
/// included), then a connection, authenticated if asked.
async fn connect(p: &mut Parsed) -> Result<(AuthClient<Svc>, Conn, Printer), CtlError> {
    let (g, pr) = Global::from_cmd(p)?;
    let conn = g.connect().await?;
    Ok((auth_client(&conn), conn, pr))
}

/// One RPC of the user and role commands, which etcdctl makes under
/// `context.TODO()`: no command timeout.
async fn rpc<T>(
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, CtlError> {
    fut.await
        .map(tonic::Response::into_inner)
        .map_err(|s| err1(status_text(&s)))
}

/// One RPC of the auth commands: they share one command timeout.
async fn timed<T>(
    deadline: Instant,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, String> {
    with_timeout(deadline.saturating_duration_since(Instant::now()), fut).await
}

/// Prints what the printer made, then fails with its error if any.
fn show(pr: &mut Printer, r: R) -> R {
    out(&pr.out);
    pr.out.clear();
    r
}

// ---------------------------------------------------------- passwords

/// The password of `name` as `user add` and `user passwd` read it.
async fn read_password(interactive: bool, name: &str) -> Result<String, CtlError> {
    if interactive {
        read_password_interactive(name).await
    } else {
        Ok(scan_word())
    }
}

/// etcdctl's `readPasswordInteractive`: asked twice, which must agree.
async fn read_password_interactive(name: &str) -> Result<String, CtlError> {
    let failed = |e: String| bad_args(format!("failed to ask password: {e}"));
    let first = ask(&format!("Password of {name}: "))
        .await
        .map_err(failed)?;
    if first.is_empty() {
        return Err(bad_args("empty password"));
    }
    let again = format!("Type password of {name} again for confirmation: ");
    let second = ask(&again).await.map_err(failed)?;
    if first != second {
        return Err(bad_args("given passwords are different"));
    }
    Ok(first)
}

/// Go's `fmt.Scanf("%s", &s)` on standard input with its error ignored,
/// as etcdctl does: the first word of the first line, or nothing when
/// the input is empty or starts with a newline.
fn scan_word() -> String {
    let mut line = Vec::new();
    let _ = std::io::stdin().lock().read_until(b'\n', &mut line);
    let text = String::from_utf8_lossy(&line);
    let rest = text.trim_start_matches(|c: char| c != '\n' && is_go_space(c));
    rest.split(is_go_space).next().unwrap_or("").to_string()
}

/// The white space of Go's `fmt` scanning.
fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// speakeasy's `Ask`, with which etcdctl prompts: the prompt on stdout,
/// the terminal's echo off (by stty(1), which complains on stderr when
/// standard input is no terminal, as under etcdctl) while one line is
/// read, then a newline.
async fn ask(prompt: &str) -> Result<String, String> {
    out(prompt.as_bytes());
    let res = hidden_line().await;
    out(b"\n");
    res
}

async fn hidden_line() -> Result<String, String> {
    stty("-echo").map_err(|e| {
        format!(
            "failed turning off console echo for password entry:\n\t{}",
            os_error_text(&e)
        )
    })?;
    let line = read_line_or_signal().await;
    let _ = stty("echo");
    match line {
        Ok(l) => Ok(l.trim().to_string()),
        Err(e) => Err(format!("failed during password entry: {e}")),
    }
}

fn stty(arg: &str) -> std::io::Result<()> {
    Command::new("/bin/stty")
        .arg0("stty")
        .arg(arg)
        .status()
        .map(drop)
}

/// Go's text of an OS error (`syscall.Errno`'s).
fn os_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// One line of standard input; a signal meanwhile turns the echo back on
/// and exits as speakeasy does (status -1), not to leave the terminal
/// silent.
async fn read_line_or_signal() -> std::io::Result<String> {
    let read = tokio::task::spawn_blocking(|| {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_until(b'\n', &mut buf)?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    });
    tokio::select! {
        r = read => r.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        _ = interrupted() => {
            let _ = stty("echo");
            crate::exit(255)
        }
    }
}

/// Resolves on the signals speakeasy watches while echo is off.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::hangup(),
        SignalKind::interrupt(),
        SignalKind::quit(),
        SignalKind::terminate(),
    ];
    let mut sigs: Vec<_> = kinds.into_iter().filter_map(|k| signal(k).ok()).collect();
    if sigs.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(sigs.iter_mut().map(|s| Box::pin(s.recv()))).await;
}

// ---------------------------------------------------------------- user

async fn user_add(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "user add command requires user name as its argument",
    )?;
    let arg = p.args[0].clone();
    let no_password = p.bool("no-password");
    let from_flag = p.str("new-user-password");
    let (name, password) = if no_password {
        (arg, String::new())
    } else if !from_flag.is_empty() {
        (arg, from_flag)
    } else if let Some((name, password)) = arg.split_once(':') {
        if name.is_empty() {
            return Err(bad_args("empty user name is not allowed"));
        }
        (name.to_string(), password.to_string())
    } else {
        let password = read_password(p.bool("interactive"), &arg).await?;
        (arg, password)
    };
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_add(AuthUserAddRequest {
        name: name.clone(),
        password,
        options: Some(UserAddOptions { no_password }),
        hashed_password: String::new(),
    }))
    .await?;
    let r = display(&mut pr, &resp, format!("User {name} created\n").as_bytes());
    show(&mut pr, r)
}

async fn user_delete(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "user delete command requires user name as its argument",
    )?;
    let name = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_delete(AuthUserDeleteRequest { name: name.clone() })).await?;
    let r = display(&mut pr, &resp, format!("User {name} deleted\n").as_bytes());
    show(&mut pr, r)
}

async fn user_get(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "user get command requires user name as its argument",
    )?;
    let name = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_get(AuthUserGetRequest { name: name.clone() })).await?;
    if !p.bool("detail") {
        let r = display(&mut pr, &resp, &user_simple(&name, &resp));
        return show(&mut pr, r);
    }
    // etcdctl prints this line itself, whatever the output format
    out(format!("User: {name}\n").as_bytes());
    for role in &resp.roles {
        out(b"\n");
        let rr = rpc(c.role_get(AuthRoleGetRequest { role: role.clone() })).await?;
        let r = display(&mut pr, &rr, &role_simple(role, &rr));
        show(&mut pr, r)?;
    }
    Ok(())
}

async fn user_list(p: &mut Parsed) -> R {
    check_args(p.args.is_empty(), "user list command requires no arguments")?;
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_list(AuthUserListRequest {})).await?;
    let r = display(&mut pr, &resp, &lines(&resp.users));
    show(&mut pr, r)
}

async fn user_passwd(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "user passwd command requires user name as its argument",
    )?;
    let name = p.args[0].clone();
    let password = read_password(p.bool("interactive"), &name).await?;
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_change_password(AuthUserChangePasswordRequest {
        name,
        password,
        hashed_password: String::new(),
    }))
    .await?;
    let r = display(&mut pr, &resp, b"Password updated\n");
    show(&mut pr, r)
}

async fn user_grant_role(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 2,
        "user grant command requires user name and role name as its argument",
    )?;
    let (user, role) = (p.args[0].clone(), p.args[1].clone());
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_grant_role(AuthUserGrantRoleRequest {
        user: user.clone(),
        role: role.clone(),
    }))
    .await?;
    let simple = format!("Role {role} is granted to user {user}\n");
    let r = display(&mut pr, &resp, simple.as_bytes());
    show(&mut pr, r)
}

async fn user_revoke_role(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 2,
        "user revoke-role requires user name and role name as its argument",
    )?;
    let (user, role) = (p.args[0].clone(), p.args[1].clone());
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.user_revoke_role(AuthUserRevokeRoleRequest {
        name: user.clone(),
        role: role.clone(),
    }))
    .await?;
    let simple = format!("Role {role} is revoked from user {user}\n");
    let r = display(&mut pr, &resp, simple.as_bytes());
    show(&mut pr, r)
}

// ---------------------------------------------------------------- role

async fn role_add(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "role add command requires role name as its argument",
    )?;
    let role = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_add(AuthRoleAddRequest { name: role.clone() })).await?;
    let r = display(&mut pr, &resp, format!("Role {role} created\n").as_bytes());
    show(&mut pr, r)
}

async fn role_delete(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "role delete command requires role name as its argument",
    )?;
    let role = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_delete(AuthRoleDeleteRequest { role: role.clone() })).await?;
    let r = display(&mut pr, &resp, format!("Role {role} deleted\n").as_bytes());
    show(&mut pr, r)
}

async fn role_get(p: &mut Parsed) -> R {
    check_args(
        p.args.len() == 1,
        "role get command requires role name as its argument",
    )?;
    let role = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_get(AuthRoleGetRequest { role: role.clone() })).await?;
    let r = display(&mut pr, &resp, &role_simple(&role, &resp));
    show(&mut pr, r)
}

async fn role_list(p: &mut Parsed) -> R {
    check_args(p.args.is_empty(), "role list command requires no arguments")?;
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_list(AuthRoleListRequest {})).await?;
    let r = display(&mut pr, &resp, &lines(&resp.roles));
    show(&mut pr, r)
}

async fn role_grant_permission(p: &mut Parsed) -> R {
    check_args(
        p.args.len() >= 3,
        "role grant command requires role name, permission type, and key [endkey] as its argument",
    )?;
    let perm_type = parse_perm_type(&p.args[1])?;
    let (key, range_end) = perm_range(&p.args[2..], p.bool("prefix"), p.bool("from-key"))?;
    let role = p.args[0].clone();
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: role.clone(),
        perm: Some(Permission {
            perm_type: perm_type as i32,
            key,
            range_end,
        }),
    }))
    .await?;
    let r = display(&mut pr, &resp, format!("Role {role} updated\n").as_bytes());
    show(&mut pr, r)
}

async fn role_revoke_permission(p: &mut Parsed) -> R {
    check_args(
        p.args.len() >= 2,
        "role revoke-permission command requires role name and key [endkey] as its argument",
    )?;
    let (key, range_end) = perm_range(&p.args[1..], p.bool("prefix"), p.bool("from-key"))?;
    let (role, key_arg) = (p.args[0].clone(), p.args[1].clone());
    let (mut c, _conn, mut pr) = connect(p).await?;
    let resp = rpc(c.role_revoke_permission(AuthRoleRevokePermissionRequest {
        role: role.clone(),
        key,
        range_end: range_end.clone(),
    }))
    .await?;
    let simple = revoke_simple(&role, &key_arg, &range_end);
    let r = display(&mut pr, &resp, &simple);
    show(&mut pr, r)
}

/// clientv3's `StrToPermissionType`.
fn parse_perm_type(s: &str) -> Result<permission::Type, CtlError> {
    permission::Type::from_str_name(&s.to_uppercase())
        .ok_or_else(|| bad_args(format!("invalid permission type: {s}")))
}

/// etcdctl's `permRange`: the key and range end of a permission from the
/// key (and end key) arguments and `--prefix`/`--from-key`.
fn perm_range(
    args: &[String],
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    const EXCLUSIVE: &str = "--from-key and --prefix flags are mutually exclusive";
    let key = args[0].as_bytes();
    if key.is_empty() {
        if prefix && from_key {
            return Err(bad_args(EXCLUSIVE));
        }
        // etcd's permission ranges are byte intervals: the empty key is
        // "\x00", and its prefix (or from-key) range the whole key space;
        // an end key is ignored
        let end = if prefix || from_key { vec![0] } else { vec![] };
        return Ok((vec![0], end));
    }
    let end = match (args.get(1), prefix, from_key) {
        (None, true, true) => return Err(bad_args(EXCLUSIVE)),
        (None, true, false) => prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => vec![],
        (Some(_), true, _) => {
            return Err(bad_args("unexpected endkey argument with --prefix flag"))
        }
        (Some(_), _, true) => {
            return Err(bad_args("unexpected endkey argument with --from-key flag"))
        }
        (Some(end), false, false) => end.as_bytes().to_vec(),
    };
    Ok((key.to_vec(), end))
}

// ---------------------------------------------------------------- auth

/// What etcd answers `AuthEnable` while the root user lacks the root role.
const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";

async fn auth_enable(p: &mut Parsed) -> R {
    check_args(
        p.args.is_empty(),
        "auth enable command does not accept any arguments",
    )?;
    let (mut c, conn, _pr) = connect(p).await?;
    let deadline = Instant::now() + conn.command_timeout;
    loop {
        match timed(deadline, c.auth_enable(AuthEnableRequest {})).await {
            Ok(_) => break,
            // etcdctl makes the root role and grants it, then tries again
            Err(e) if e == ROOT_ROLE_NOT_EXIST => {
                let add = AuthRoleAddRequest {
                    name: "root".into(),
                };
                timed(deadline, c.role_add(add)).await.map_err(err1)?;
                let grant = AuthUserGrantRoleRequest {
                    user: "root".into(),
                    role: "root".into(),
                };
                timed(deadline, c.user_grant_role(grant))
                    .await
                    .map_err(err1)?;
            }
            Err(e) => return Err(err1(e)),
        }
    }
    out(b"Authentication Enabled\n");
    Ok(())
}

async fn auth_disable(p: &mut Parsed) -> R {
    check_args(
        p.args.is_empty(),
        "auth disable command does not accept any arguments",
    )?;
    let (mut c, conn, _pr) = connect(p).await?;
    let deadline = Instant::now() + conn.command_timeout;
    timed(deadline, c.auth_disable(AuthDisableRequest {}))
        .await
        .map_err(err1)?;
    out(b"Authentication Disabled\n");
    Ok(())
}

async fn auth_status(p: &mut Parsed) -> R {
    check_args(
        p.args.is_empty(),
        "auth status command does not accept any arguments",
    )?;
    let (mut c, conn, mut pr) = connect(p).await?;
    let deadline = Instant::now() + conn.command_timeout;
    let resp = timed(deadline, c.auth_status(AuthStatusRequest {}))
        .await
        .map_err(err1)?;
    let simple = format!(
        "Authentication Status: {}\nAuthRevision: {}\n",
        resp.enabled, resp.auth_revision
    );
    let r = display(&mut pr, &resp, simple.as_bytes());
    show(&mut pr, r)
}

// ------------------------------------------------------------- printers

/// An Auth response as etcdctl 3.5.1's printers show it: json is Go's
/// `encoding/json` of the response, protobuf its wire bytes, fields the
/// header's lines then the response's own, table never supported.
trait AuthResp: Message {
    fn header(&self) -> &Option<ResponseHeader>;

    /// The JSON fields after the header.
    fn json_rest(&self, _o: &mut Obj) {}

    /// The fields printer's lines after the header's; `None` when its
    /// fields printer has no method for the response.
    fn fields_rest(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
}

macro_rules! header_only {
    ($($t:ty),*) => {$(
        impl AuthResp for $t {
            fn header(&self) -> &Option<ResponseHeader> { &self.header }
        }
    )*};
}

header_only!(
    AuthUserAddResponse,
    AuthUserDeleteResponse,
    AuthUserChangePasswordResponse,
    AuthUserGrantRoleResponse,
    AuthUserRevokeRoleResponse,
    AuthRoleAddResponse,
    AuthRoleDeleteResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionResponse
);

impl AuthResp for AuthUserGetResponse {
    fn header(&self) -> &Option<ResponseHeader> {
        &self.header
    }
    fn json_rest(&self, o: &mut Obj) {
        o.strs_omit("roles", &self.roles);
    }
    fn fields_rest(&self) -> Option<Vec<u8>> {
        None
    }
}

impl AuthResp for AuthUserListResponse {
    fn header(&self) -> &Option<ResponseHeader> {
        &self.header
    }
    fn json_rest(&self, o: &mut Obj) {
        o.strs_omit("users", &self.users);
    }
    fn fields_rest(&self) -> Option<Vec<u8>> {
        None
    }
}

impl AuthResp for AuthRoleListResponse {
    fn header(&self) -> &Option<ResponseHeader> {
        &self.header
    }
    fn json_rest(&self, o: &mut Obj) {
        o.strs_omit("roles", &self.roles);
    }
    fn fields_rest(&self) -> Option<Vec<u8>> {
        let mut s = String::from("\"Roles\" :");
        for r in &self.roles {
            s.push(' ');
            s.push_str(&quote_str(r));
        }
        s.push('\n');
        Some(s.into_bytes())
    }
}

impl AuthResp for AuthRoleGetResponse {
    fn header(&self) -> &Option<ResponseHeader> {
        &self.header
    }
    fn json_rest(&self, o: &mut Obj) {
        if !self.perm.is_empty() {
            let perms = self.perm.iter().map(|p| {
                Obj::new()
                    .num_omit("permType", p.perm_type)
                    .bytes_omit("key", &p.key)
                    .bytes_omit("range_end", &p.range_end)
                    .finish()
            });
            o.raw("perm", &crate::gofmt::json_array(perms));
        }
    }
    fn fields_rest(&self) -> Option<Vec<u8>> {
        let mut s = String::new();
        for p in &self.perm {
            // Go's Println puts a space between `: ` and the type
            s.push_str(&format!(
                "\"PermType\" :  {}\n",
                perm_type_name(p.perm_type)
            ));
            s.push_str(&format!("\"Key\" : {}\n", quote(&p.key)));
            s.push_str(&format!("\"RangeEnd\" : {}\n", quote(&p.range_end)));
        }
        Some(s.into_bytes())
    }
}

impl AuthResp for AuthStatusResponse {
    fn header(&self) -> &Option<ResponseHeader> {
        &self.header
    }
    fn json_rest(&self, o: &mut Obj) {
        o.bool_omit("enabled", self.enabled)
            .num_omit("authRevision", self.auth_revision);
    }
    fn fields_rest(&self) -> Option<Vec<u8>> {
        None
    }
}

fn unsupported(format: &str) -> CtlError {
    CtlError::new(
        EXIT_BAD_FEATURE,
        format!("{format} not supported as output format"),
    )
}

/// Writes `r` in the printer's format into its buffer; `simple` is the
/// simple printer's text.
fn display<T: AuthResp>(pr: &mut Printer, r: &T, simple: &[u8]) -> R {
    match pr.format {
        Format::Simple => pr.out.extend_from_slice(simple),
        Format::Json => {
            let mut o = Obj::new();
            o.raw_opt("header", r.header().as_ref().map(j_header));
            r.json_rest(&mut o);
            pr.out.extend_from_slice(o.finish().as_bytes());
            pr.out.push(b'\n');
        }
        Format::Protobuf => pr.out.extend_from_slice(&r.encode_to_vec()),
        Format::Fields => {
            let rest = r.fields_rest().ok_or_else(|| unsupported("fields"))?;
            pr.out
                .extend_from_slice(fields_header(r.header()).as_bytes());
            pr.out.extend_from_slice(&rest);
        }
        Format::Table => return Err(unsupported("table")),
    }
    Ok(())
}

fn fields_header(h: &Option<ResponseHeader>) -> String {
    let h = h.unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// Go's `Permission_Type.String()`.
fn perm_type_name(t: i32) -> String {
    permission::Type::try_from(t)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn lines(items: &[String]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|s| format!("{s}\n").into_bytes())
        .collect()
}

fn user_simple(name: &str, r: &AuthUserGetResponse) -> Vec<u8> {
    let mut s = format!("User: {name}\nRoles:");
    for role in &r.roles {
        s.push(' ');
        s.push_str(role);
    }
    s.push('\n');
    s.into_bytes()
}

/// The simple printer's role: its read then its write permissions.
fn role_simple(role: &str, r: &AuthRoleGetResponse) -> Vec<u8> {
    use permission::Type::{Read, Readwrite, Write};
    let has = |p: &Permission, t: permission::Type| p.perm_type == t as i32;
    let mut o = format!("Role {role}\nKV Read:\n").into_bytes();
    for p in r.perm.iter().filter(|p| has(p, Read) || has(p, Readwrite)) {
        perm_line(&mut o, p);
    }
    o.extend_from_slice(b"KV Write:\n");
    for p in r.perm.iter().filter(|p| has(p, Write) || has(p, Readwrite)) {
        perm_line(&mut o, p);
    }
    o
}

/// One permission: a key, or a range noting when it is a prefix's.
fn perm_line(o: &mut Vec<u8>, p: &Permission) {
    o.push(b'\t');
    if p.range_end.is_empty() {
        o.extend_from_slice(&p.key);
        o.push(b'\n');
        return;
    }
    o.push(b'[');
    o.extend_from_slice(&p.key);
    if p.range_end != [0] {
        o.extend_from_slice(b", ");
        o.extend_from_slice(&p.range_end);
        o.push(b')');
    } else {
        o.extend_from_slice(b", <open ended>");
    }
    if prefix_end(&p.key) == p.range_end {
        o.extend_from_slice(b" (prefix ");
        o.extend_from_slice(&p.key);
        o.push(b')');
    }
    o.push(b'\n');
}

/// The simple printer's revoked permission (`key` as given).
fn revoke_simple(role: &str, key: &str, end: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    if end.is_empty() {
        o.extend_from_slice(
            format!("Permission of key {key} is revoked from role {role}\n").as_bytes(),
        );
        return o;
    }
    o.extend_from_slice(format!("Permission of range [{key}, ").as_bytes());
    if end != [0] {
        o.extend_from_slice(end);
        o.push(b')');
    } else {
        o.extend_from_slice(b"<open ended>");
    }
    o.extend_from_slice(format!(" is revoked from role {role}\n").as_bytes());
    o
}
