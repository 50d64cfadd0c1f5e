//! etcdctl's `make-mirror`: copies a prefix to another cluster as of one
//! revision, then follows the source with a watch, applying each revision's
//! changes in one destination txn, until killed; every 30 s it prints how
//! many keys it has synced so far.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustcd_proto::etcdserverpb::{PutRequest, RangeRequest, TxnRequest, WatchCreateRequest};
use rustcd_proto::mvccpb::{event::EventType, Event};

use crate::client::{Conn, Global};
use crate::commands::prefix_end;
use crate::concurrency::{connect_patiently, delete_op, put, put_op, range, txn, Watcher};
use crate::flags::{f, leaf, Cmd, Kind, Parsed};
use crate::tls::{SecureCfg, Tls};
use crate::{out, CtlError, EXIT_BAD_ARGS, EXIT_ERROR};

pub const MAKE_MIRROR: Cmd = leaf(
    "make-mirror",
    "make-mirror [options] <destination>",
    "Makes a mirror at the destination etcd cluster",
    &[
        f("prefix", Kind::Str, "", "Key-value prefix to mirror"),
        f(
            "dest-prefix",
            Kind::Str,
            "",
            "destination prefix to mirror a prefix to a different prefix in the destination cluster",
        ),
        f(
            "no-dest-prefix",
            Kind::Bool,
            "false",
            "mirror key-values to the root of the destination cluster",
        ),
        f(
            "dest-cert",
            Kind::Str,
            "",
            "Identify secure client using this TLS certificate file for the destination cluster",
        ),
        f(
            "dest-key",
            Kind::Str,
            "",
            "Identify secure client using this TLS key file",
        ),
        f(
            "dest-cacert",
            Kind::Str,
            "",
            "Verify certificates of TLS enabled secure servers using this CA bundle",
        ),
        f(
            "dest-insecure-transport",
            Kind::Bool,
            "true",
            "Disable transport security for client connections",
        ),
        f(
            "dest-user",
            Kind::Str,
            "",
            "Destination username[:password] for authentication (prompt if password is not supplied)",
        ),
        f(
            "dest-password",
            Kind::Str,
            "",
            "Destination password for authentication (if this option is used, --user option shouldn't include password)",
        ),
    ],
);

type R = Result<(), CtlError>;

/// mirror.Syncer's page size for the initial copy.
const BATCH: i64 = 1000;
/// How often the number of keys synced is printed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

fn bad_args(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_BAD_ARGS, msg)
}

/// Which keys are mirrored, and what they are called at the destination.
struct Renaming {
    prefix: Vec<u8>,
    dest_prefix: Vec<u8>,
    no_dest_prefix: bool,
}

impl Renaming {
    /// etcdctl's `modifyPrefix` (once the destination prefix defaults to
    /// the source's): the first occurrence of the prefix replaced.
    fn rename(&self, key: &[u8]) -> Vec<u8> {
        let to: &[u8] = if !self.no_dest_prefix && self.dest_prefix.is_empty() {
            &self.prefix
        } else {
            &self.dest_prefix
        };
        replace_first(key, &self.prefix, to)
    }

    /// The source range: the prefix, or every key.
    fn range(&self) -> (Vec<u8>, Vec<u8>) {
        if self.prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            (self.prefix.clone(), prefix_end(&self.prefix))
        }
    }
}

/// Go's `strings.Replace(s, from, to, 1)` on bytes (an empty `from`
/// matches at the start).
fn replace_first(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = if from.is_empty() {
        Some(0)
    } else {
        s.windows(from.len()).position(|w| w == from)
    };
    match at {
        Some(i) => [&s[..i], to, &s[i + from.len()..]].concat(),
        None => s.to_vec(),
    }
}

pub async fn run(p: &mut Parsed) -> R {
    if p.args.len() != 1 {
        return Err(bad_args("make-mirror takes one destination argument"));
    }
    // etcdctl makes the destination's client first, from the command line
    // alone (ETCDCTL_* are read with the source's)
    let dest = dest_config(p)?;
    let (g, _pr) = Global::from_cmd(p)?;
    let names = Renaming {
        prefix: p.str("prefix").into_bytes(),
        dest_prefix: p.str("dest-prefix").into_bytes(),
        no_dest_prefix: p.bool("no-dest-prefix"),
    };
    let total = Arc::new(AtomicI64::new(0));
    let reporter = tokio::spawn(report(total.clone()));
    let r = mirror(&g, &dest, &names, &total).await;
    reporter.abort();
    r?;
    // the source ended the watch: etcdctl then exits with its nil error
    Err(err1("<nil>"))
}

/// Prints the count every 30 s, from the start, as etcdctl's goroutine.
async fn report(total: Arc<AtomicI64>) {
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        out(format!("{}\n", total.load(Ordering::Relaxed)).as_bytes());
    }
}

/// The destination's client options: `--dest-*` TLS and auth, the global
/// dial timeout.
fn dest_config(p: &Parsed) -> Result<Global, CtlError> {
    let user = dest_user(&p.str("dest-user"), &p.str("dest-password"))?;
    let tls = dest_tls(p)?;
    Ok(Global {
        endpoints: vec![p.args[0].clone()],
        dial_timeout: p.duration("dial-timeout"),
        command_timeout: p.duration("command-timeout"),
        command_timeout_set: false,
        user,
        tls,
    })
}

/// etcdctl's `authDestCfg`: `--dest-user name[:password]`, `--dest-password`.
fn dest_user(user: &str, password: &str) -> Result<Option<(String, String)>, CtlError> {
    if user.is_empty() {
        return Ok(None);
    }
    if !password.is_empty() {
        return Ok(Some((user.to_string(), password.to_string())));
    }
    match user.split_once(':') {
        Some((u, pw)) => Ok(Some((u.to_string(), pw.to_string()))),
        None => Err(err1(
            "password prompt is not supported yet by rustcdctl: use --dest-user name:password or --dest-password",
        )),
    }
}

/// etcdctl's destination `secureCfg`: the `--dest-*` files and transport,
/// never `--insecure-skip-tls-verify`.
fn dest_tls(p: &Parsed) -> Result<Tls, CtlError> {
    Tls::new(&SecureCfg {
        cert: &p.str("dest-cert"),
        key: &p.str("dest-key"),
        cacert: &p.str("dest-cacert"),
        insecure_transport: p.bool("dest-insecure-transport"),
        insecure_skip_verify: false,
    })
    .map_err(bad_args)
}

/// etcdctl's `makeMirror`; Ok once the source ends the watch.
async fn mirror(g: &Global, dest: &Global, names: &Renaming, total: &AtomicI64) -> R {
    let dst = connect_patiently(dest).await?;
    let src = connect_patiently(g).await?;
    // the revision to copy at: the source's latest
    let probe = RangeRequest {
        key: b"foo".to_vec(),
        ..Default::default()
    };
    let rev = range(&src, probe)
        .await
        .map_err(err1)?
        .header
        .unwrap_or_default()
        .revision;
    if names.no_dest_prefix && !names.dest_prefix.is_empty() {
        return Err(bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    copy_base(&src, &dst, names, rev, total).await?;
    follow(&src, &dst, names, rev, total).await
}

/// mirror.Syncer's SyncBase: the keys as of `rev`, page by page, each put
/// to the destination.
async fn copy_base(src: &Conn, dst: &Conn, names: &Renaming, rev: i64, total: &AtomicI64) -> R {
    let (mut key, end) = names.range();
    loop {
        let page = RangeRequest {
            key: key.clone(),
            range_end: end.clone(),
            limit: BATCH,
            revision: rev,
            ..Default::default()
        };
        let resp = range(src, page).await.map_err(err1)?;
        for kv in &resp.kvs {
            let req = PutRequest {
                key: names.rename(&kv.key),
                value: kv.value.clone(),
                ..Default::default()
            };
            put(dst, req).await.map_err(err1)?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match resp.kvs.last() {
            Some(last) if resp.more => key = [last.key.as_slice(), &[0]].concat(),
            _ => return Ok(()),
        }
    }
}

/// mirror.Syncer's SyncUpdates: every change after `rev`, one destination
/// txn per source revision.
async fn follow(src: &Conn, dst: &Conn, names: &Renaming, rev: i64, total: &AtomicI64) -> R {
    let (key, range_end) = names.range();
    let mut w = Watcher::new(
        src,
        WatchCreateRequest {
            key,
            range_end,
            start_revision: rev + 1,
            ..Default::default()
        },
    );
    while let Some(wr) = w.next().await {
        if wr.compact_revision != 0 {
            return Err(err1(
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        for same_rev in wr.events.chunk_by(|a, b| mod_rev(a) == mod_rev(b)) {
            let ops = same_rev.iter().map(|ev| op(ev, names)).collect();
            total.fetch_add(same_rev.len() as i64, Ordering::Relaxed);
            let req = TxnRequest {
                success: ops,
                ..Default::default()
            };
            txn(dst, req).await.map_err(err1)?;
        }
    }
    Ok(())
}

fn mod_rev(ev: &Event) -> i64 {
    ev.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// The destination operation replaying `ev`.
fn op(ev: &Event, names: &Renaming) -> rustcd_proto::etcdserverpb::RequestOp {
    let kv = ev.kv.clone().unwrap_or_default();
    let key = names.rename(&kv.key);
    if ev.r#type == EventType::Delete as i32 {
        delete_op(key)
    } else {
        put_op(key, kv.value, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, dest: &str, no_dest: bool) -> Renaming {
        Renaming {
            prefix: prefix.into(),
            dest_prefix: dest.into(),
            no_dest_prefix: no_dest,
        }
    }

    #[test]
    fn renames_as_etcdctl() {
        assert_eq!(names("a/", "", false).rename(b"a/x"), b"a/x");
        assert_eq!(names("a/", "b/", false).rename(b"a/x"), b"b/x");
        assert_eq!(names("a/", "", true).rename(b"a/x"), b"x");
        assert_eq!(names("", "z/", false).rename(b"k"), b"z/k");
        assert_eq!(names("", "", true).rename(b"k"), b"k");
    }

    #[test]
    fn replaces_only_the_first_occurrence() {
        assert_eq!(replace_first(b"a/a/", b"a/", b"b/"), b"b/a/");
        assert_eq!(replace_first(b"xyz", b"q", b"r"), b"xyz");
    }
}
