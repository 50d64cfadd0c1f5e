//! `snapshot status` and `snapshot restore` for rustcd's snapshot files,
//! as etcdctl 3.5.1 runs them (it hands both to etcdutl).
//!
//! What `snapshot save` gets from rustcd is not etcd's bbolt file but
//! rustcd's own: a logical dump of the store (`rustcd-snap/1`, records and
//! a CRC32C, see rustcd-mvcc's `snapshot.rs`), zero padding to a multiple
//! of 512 bytes, and the SHA-256 of all that, as etcd appends one to its
//! files. A member's database file (redb) copied out of a data dir is
//! read too, as etcd reads a bbolt file copied from one; it holds what the
//! member had made durable, so copy it from a stopped member.
//!
//! `status` reports, in etcdctl's formats, the dump's CRC32C as the hash
//! (etcd's is a CRC32C of its buckets' content), the store's revision, its
//! rows in all tables as total keys (etcd counts the keys of all its
//! buckets) and the size of the data without the SHA-256.
//!
//! `restore` checks the file and leaves building the data dir to the
//! server's own code (`rustcd_server::restore_snapshot`), so that `rustcd`
//! starts from it exactly as from `rustcd snapshot restore`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::flags::Kind::{Bool, Str};
use crate::flags::{f, Cmd, Flag, Parsed};
use crate::gofmt::{self, humanize_bytes, quote_str, Obj};
use crate::printer::Format;
use crate::{err_out, out, table, CtlError, EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR};

type R = Result<(), CtlError>;

pub const STATUS: Cmd = Cmd {
    name: "status",
    use_: "status <filename>",
    short: "[deprecated] Gets backend snapshot status of a given file",
    long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.

Moved to 'etcdctl snapshot status ...'
",
    flags: &[],
    persistent: &[],
    subs: &[],
    runnable: true,
};

const RESTORE_FLAGS: &[Flag] = &[
    f("data-dir", Str, "", "Path to the data directory"),
    f(
        "wal-dir",
        Str,
        "",
        "Path to the WAL directory (use --data-dir if none given)",
    ),
    f(
        "initial-cluster",
        Str,
        "default=http://localhost:2380",
        "Initial cluster configuration for restore bootstrap",
    ),
    f(
        "initial-cluster-token",
        Str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during restore bootstrap",
    ),
    f(
        "initial-advertise-peer-urls",
        Str,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster",
    ),
    f(
        "name",
        Str,
        "default",
        "Human-readable name for this member",
    ),
    f(
        "skip-hash-check",
        Bool,
        "false",
        "Ignore snapshot integrity hash value (required if copied from data directory)",
    ),
];

pub const RESTORE: Cmd = Cmd {
    name: "restore",
    use_: "restore <filename> [options]",
    short: "Restores an etcd member snapshot to an etcd directory",
    long: "Moved to `etcdctl snapshot restore ...`\n",
    flags: RESTORE_FLAGS,
    persistent: &[],
    subs: &[],
    runnable: true,
};

pub async fn run(p: &mut Parsed) -> R {
    match p.cmd().name {
        "status" => status(p),
        _ => restore(p),
    }
}

fn err1(msg: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, msg)
}

// --------------------------------------------------------------- files

const DUMP_MAGIC: &[u8] = b"rustcd-snap/1";
const REDB_MAGIC: &[u8] = &[b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// bbolt's meta page magic (0xED0CDAED, little-endian) after the page header.
const BBOLT_MAGIC: &[u8] = &[0xED, 0xDA, 0x0C, 0xED];
const SHA_LEN: u64 = 32;

/// The dump's record tables (rustcd-mvcc's snapshot format).
const T_KV: u8 = 1;
const T_APP_META: u8 = 4;
const T_META: u8 = 3;
const T_END: u8 = 0xFF;
/// Store bookkeeping in the `meta` table: the revision (i64 big-endian;
/// absent in a new store, revision 1) and the schema marker.
const META_CURRENT_REV: &[u8] = b"current_rev";
const META_SCHEMA: &[u8] = b"schema";
const SCHEMA_VERSION: &[u8] = b"rustcd-mvcc/2";

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Dump,
    Redb,
    Bbolt,
    Unknown,
}

fn sniff(path: &Path) -> Result<FileKind, String> {
    let mut head = Vec::with_capacity(32);
    File::open(path)
        .and_then(|f| f.take(32).read_to_end(&mut head))
        .map_err(|e| format!("open {}: {}", path.display(), gofmt::io_error(&e)))?;
    Ok(if head.starts_with(DUMP_MAGIC) {
        FileKind::Dump
    } else if head.starts_with(REDB_MAGIC) {
        FileKind::Redb
    } else if head.len() >= 20 && &head[16..20] == BBOLT_MAGIC {
        FileKind::Bbolt
    } else {
        FileKind::Unknown
    })
}

/// Why rustcdctl cannot read an etcd snapshot, and what can.
fn bbolt_error(path: &Path, cmd: &str) -> String {
    format!(
        "{} is an etcd (bbolt) snapshot: rustcd keeps its data in its own format and reads only snapshots saved from rustcd; use etcd's `etcdutl snapshot {cmd}` for etcd's files",
        path.display()
    )
}

fn unknown_error(path: &Path) -> String {
    format!(
        "invalid database: {} is not a rustcd snapshot",
        path.display()
    )
}

/// Whether a file of `len` bytes ends with a SHA-256, by etcd's rule.
fn has_hash(len: u64) -> bool {
    len % 512 == SHA_LEN
}

/// What one pass over a dump finds.
struct Scan {
    /// The CRC32C the dump ends with (checked).
    crc: u32,
    /// Records in all tables.
    rows: u64,
    revision: i64,
    /// Bytes of the dump itself (padding and hash follow).
    len: u64,
}

/// Reads exactly what the dump says, CRC32C-ing it, never past `limit`
/// (so a corrupt length cannot make it allocate what is not there).
struct DumpReader<R> {
    r: R,
    crc: u32,
    pos: u64,
    limit: u64,
}

impl<R: Read> DumpReader<R> {
    fn read(&mut self, n: u64, buf: &mut Vec<u8>) -> Result<(), String> {
        if self.pos + n > self.limit {
            return Err("truncated record".into());
        }
        buf.resize(n as usize, 0);
        self.r.read_exact(buf).map_err(|e| gofmt::io_error(&e))?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, buf: &mut Vec<u8>) -> Result<u32, String> {
        self.read(4, buf)?;
        Ok(u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")))
    }
}

/// Walks a dump of at most `limit` bytes, checking its structure, its
/// schema marker and its CRC32C; the error says what is wrong.
fn scan_dump(r: impl Read, limit: u64) -> Result<Scan, String> {
    let mut d = DumpReader {
        r,
        crc: 0,
        pos: 0,
        limit,
    };
    let (mut buf, mut key) = (Vec::new(), Vec::new());
    d.read(DUMP_MAGIC.len() as u64, &mut buf)?;
    if buf != DUMP_MAGIC {
        return Err("not a rustcd snapshot".into());
    }
    let (mut rows, mut revision, mut schema_ok) = (0, 1, false);
    loop {
        d.read(1, &mut buf)?;
        let table = buf[0];
        if table == T_END {
            let sum = d.crc;
            let stored = d.u32(&mut buf)?;
            if stored != sum {
                return Err("checksum mismatch".into());
            }
            if !schema_ok {
                return Err("schema marker missing or unsupported".into());
            }
            return Ok(Scan {
                crc: stored,
                rows,
                revision,
                len: d.pos,
            });
        }
        if !(T_KV..=T_APP_META).contains(&table) {
            return Err(format!("unknown table {table}"));
        }
        let klen = d.u32(&mut buf)?;
        d.read(klen.into(), &mut key)?;
        let vlen = d.u32(&mut buf)?;
        d.read(vlen.into(), &mut buf)?;
        if table == T_META && key == META_CURRENT_REV {
            let b: [u8; 8] = buf[..]
                .try_into()
                .map_err(|_| "bad current revision".to_string())?;
            revision = i64::from_be_bytes(b);
        }
        schema_ok |= table == T_META && key == META_SCHEMA && buf == SCHEMA_VERSION;
        rows += 1;
    }
}

/// Checks that nothing but zeros (and the hash, if the size says there
/// is one) follows the dump, as the server's restore requires.
fn check_tail(file: &mut File, dump_len: u64, len: u64) -> Result<(), String> {
    let end = if has_hash(len) && len - SHA_LEN >= dump_len {
        len - SHA_LEN
    } else {
        len
    };
    file.seek(SeekFrom::Start(dump_len))
        .map_err(|e| gofmt::io_error(&e))?;
    let mut tail = BufReader::new(file.take(end - dump_len));
    let mut buf = [0u8; 8192];
    loop {
        let n = tail.read(&mut buf).map_err(|e| gofmt::io_error(&e))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err("data after end marker".into());
        }
    }
}

/// Scans the dump in `path` (a file made by `snapshot save`, with or
/// without its hash) and its tail.
fn scan_file(path: &Path) -> Result<Scan, String> {
    let corrupt = |why: String| format!("snapshot file {} is corrupt: {why}", path.display());
    let open_err = |e: std::io::Error| format!("open {}: {}", path.display(), gofmt::io_error(&e));
    let mut file = File::open(path).map_err(open_err)?;
    let len = file.metadata().map_err(open_err)?.len();
    let scan = scan_dump(BufReader::new(&mut file), len).map_err(corrupt)?;
    check_tail(&mut file, scan.len, len).map_err(corrupt)?;
    Ok(scan)
}

/// Writes a snapshot file as `snapshot save` makes it: the dump, zero
/// padding to a multiple of 512, the SHA-256 of both.
struct SnapshotWriter<W: Write> {
    w: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Write for SnapshotWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(data)?;
        self.sha.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

impl<W: Write> SnapshotWriter<W> {
    fn new(w: W) -> Self {
        SnapshotWriter {
            w,
            sha: Sha256::new(),
            len: 0,
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        let pad = (512 - self.len % 512) % 512;
        self.write_all(&vec![0; pad as usize])?;
        let sum = self.sha.clone().finalize();
        self.w.write_all(&sum)?;
        self.w.flush()
    }
}

/// A temporary file in `dir` (beside the data dir: snapshots can be large).
fn temp_in(dir: &Path) -> Result<NamedTempFile, String> {
    tempfile::Builder::new()
        .prefix(".rustcdctl-snapshot-")
        .tempfile_in(dir)
        .map_err(|e| format!("creating a temporary file in {}: {e}", dir.display()))
}

/// A fresh snapshot file holding the first `dump_len` bytes of `src`.
fn rewrap_dump(src: &Path, dump_len: u64, dir: &Path) -> Result<NamedTempFile, String> {
    let io = |e: std::io::Error| format!("copying {}: {}", src.display(), gofmt::io_error(&e));
    let tmp = temp_in(dir)?;
    let mut w = SnapshotWriter::new(BufWriter::new(tmp.as_file()));
    let mut r = File::open(src).map_err(io)?.take(dump_len);
    std::io::copy(&mut r, &mut w).map_err(io)?;
    w.finish().map_err(io)?;
    Ok(tmp)
}

/// A snapshot file dumped from a copy of the member database `src` (the
/// copy because opening a database may repair it in place).
fn dump_database(src: &Path, dir: &Path) -> Result<NamedTempFile, String> {
    let io = |e: std::io::Error| format!("copying {}: {}", src.display(), gofmt::io_error(&e));
    let db = temp_in(dir)?;
    std::fs::copy(src, db.path()).map_err(io)?;
    let store = rustcd_mvcc::Store::open(db.path()).map_err(|e| e.to_string())?;
    let tmp = temp_in(dir)?;
    let mut w = SnapshotWriter::new(BufWriter::new(tmp.as_file()));
    store
        .read()
        .and_then(|rtx| rtx.write_snapshot(&mut w))
        .map_err(|e| e.to_string())?;
    w.finish().map_err(io)?;
    Ok(tmp)
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

// -------------------------------------------------------------- status

/// etcdutl's `snapshot.Status`, for rustcd's files.
struct SnapStatus {
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
}

fn status(p: &mut Parsed) -> R {
    err_out(b"Deprecated: Use `etcdutl snapshot status` instead.\n\n");
    if p.args.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "snapshot status requires exactly one argument",
        ));
    }
    // etcdutl reads --write-out only: no ETCDCTL_* variables, no client
    let format = Format::parse(&p.str("write-out"))
        .ok_or_else(|| CtlError::new(EXIT_BAD_FEATURE, "unsupported output format"))?;
    let st = file_status(Path::new(&p.args[0])).map_err(err1)?;
    out(status_text(format, &st)?.as_bytes());
    Ok(())
}

fn file_status(path: &Path) -> Result<SnapStatus, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("stat {}: {}", path.display(), gofmt::io_error(&e)))?
        .len();
    match sniff(path)? {
        FileKind::Dump => {
            let scan = scan_file(path)?;
            let total_size = if has_hash(len) { len - SHA_LEN } else { len };
            Ok(status_of(&scan, total_size))
        }
        FileKind::Redb => {
            let snap = dump_database(path, &std::env::temp_dir())?;
            Ok(status_of(&scan_file(snap.path())?, len))
        }
        FileKind::Bbolt => Err(bbolt_error(path, "status")),
        FileKind::Unknown => Err(unknown_error(path)),
    }
}

fn status_of(scan: &Scan, total_size: u64) -> SnapStatus {
    SnapStatus {
        hash: scan.crc,
        revision: scan.revision,
        total_key: scan.rows,
        total_size,
    }
}

/// etcdutl's `DBStatus` printers.
fn status_text(format: Format, st: &SnapStatus) -> Result<String, CtlError> {
    let row = || {
        vec![
            format!("{:x}", st.hash),
            st.revision.to_string(),
            st.total_key.to_string(),
            humanize_bytes(st.total_size),
        ]
    };
    Ok(match format {
        Format::Simple => row().join(", ") + "\n",
        Format::Json => {
            let o = Obj::new()
                .num("hash", st.hash)
                .num("revision", st.revision)
                .num("totalKey", st.total_key)
                .num("totalSize", st.total_size)
                .finish();
            o + "\n"
        }
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
        Format::Table => table::render(&["hash", "revision", "total keys", "total size"], &[row()]),
        Format::Protobuf => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                "protobuf not supported as output format",
            ))
        }
    })
}

// ------------------------------------------------------------- restore

fn restore(p: &mut Parsed) -> R {
    err_out(b"Deprecated: Use `etcdutl snapshot restore` instead.\n\n");
    if p.args.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "snapshot restore requires exactly one argument",
        ));
    }
    let src = PathBuf::from(&p.args[0]);
    let cfg = restore_config(p).map_err(err1)?;
    // `--wal-dir` is accepted and has nothing to receive: a restored rustcd
    // member starts with an empty log, and `rustcd --wal-dir` creates it
    prepare_data_dir(&cfg.data_dir).map_err(err1)?;
    let snap = checked_snapshot(&src, p.bool("skip-hash-check"), &cfg.data_dir);
    let res = snap
        .and_then(|s| rustcd_server::restore_snapshot(s.path(), &cfg).map_err(|e| e.to_string()));
    if let Err(e) = res {
        // leave no half-made data dir behind (it was absent or empty)
        let _ = std::fs::remove_dir_all(&cfg.data_dir);
        return Err(err1(e));
    }
    Ok(())
}

/// The member to bootstrap, from the flags as etcdutl reads them.
fn restore_config(p: &Parsed) -> Result<rustcd_server::ServerConfig, String> {
    let name = p.str("name");
    let mut data_dir = p.str("data-dir");
    if data_dir.is_empty() {
        data_dir = format!("{name}.etcd");
    }
    let mut peer_urls = p
        .str("initial-advertise-peer-urls")
        .split(',')
        .map(check_url)
        .collect::<Result<Vec<_>, _>>()?;
    peer_urls.sort();
    peer_urls.dedup();
    Ok(rustcd_server::ServerConfig {
        name,
        data_dir: PathBuf::from(data_dir),
        initial_advertise_peer_urls: peer_urls,
        initial_cluster: initial_cluster(&p.str("initial-cluster"))?,
        initial_cluster_token: p.str("initial-cluster-token"),
        ..Default::default()
    })
}

/// `name=url,...` with each URL checked.
fn initial_cluster(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (name, url) = e.trim().split_once('=').unwrap_or((e.trim(), ""));
            Ok((name.to_string(), check_url(url)?))
        })
        .collect()
}

/// One peer URL, checked with etcd's `types.NewURLs` messages, written as
/// rustcd writes it (lower-case scheme) so member ids come out the same.
fn check_url(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let (scheme, rest) = s.split_once("://").unwrap_or(("", s));
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {s}"
        ));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !authority.contains(':') {
        return Err(format!(
            "URL address does not have the form \"host:port\": {s}"
        ));
    }
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {s}"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// etcdutl restores only into a missing or empty data dir. An empty one
/// is removed so that the server's bootstrap (which wants none) makes it.
fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if !empty || std::fs::remove_dir(dir).is_err() {
        return Err(format!(
            "data-dir {} not empty or could not be read",
            quote_str(&dir.display().to_string())
        ));
    }
    Ok(())
}

/// A checked snapshot file: `src` itself, or a copy rewritten with a hash.
enum Checked {
    Original(PathBuf),
    Rewritten(NamedTempFile),
}

impl Checked {
    fn path(&self) -> &Path {
        match self {
            Checked::Original(p) => p,
            Checked::Rewritten(t) => t.path(),
        }
    }
}

/// etcdutl's checks of the snapshot file (a hash unless skipped), then the
/// dump's own, all before the data dir is made. With `--skip-hash-check`
/// the file goes to the server rewritten with a fresh hash: the dump's
/// CRC32C still guards its content.
fn checked_snapshot(src: &Path, skip_hash: bool, data_dir: &Path) -> Result<Checked, String> {
    let kind = sniff(src)?;
    if kind == FileKind::Bbolt {
        return Err(bbolt_error(src, "restore"));
    }
    let len = std::fs::metadata(src)
        .map_err(|e| format!("open {}: {}", src.display(), gofmt::io_error(&e)))?
        .len();
    if !has_hash(len) && !skip_hash {
        return Err("snapshot missing hash but --skip-hash-check=false".into());
    }
    if has_hash(len) && !skip_hash {
        verify_sha256(src, len)?;
    }
    let dir = dir_of(data_dir);
    match kind {
        FileKind::Dump => {
            let scan = scan_file(src)?;
            if skip_hash {
                Ok(Checked::Rewritten(rewrap_dump(src, scan.len, &dir)?))
            } else {
                Ok(Checked::Original(src.to_path_buf()))
            }
        }
        FileKind::Redb => Ok(Checked::Rewritten(dump_database(src, &dir)?)),
        _ => Err(unknown_error(src)),
    }
}

/// The file's last 32 bytes must be the SHA-256 of the rest (etcd's text).
fn verify_sha256(path: &Path, len: u64) -> Result<(), String> {
    let io = |e: std::io::Error| format!("open {}: {}", path.display(), gofmt::io_error(&e));
    let mut file = File::open(path).map_err(io)?;
    let mut sha = Sha256::new();
    std::io::copy(&mut (&mut file).take(len - SHA_LEN), &mut sha).map_err(io)?;
    let mut want = [0u8; SHA_LEN as usize];
    file.read_exact(&mut want).map_err(io)?;
    let got = sha.finalize();
    if got.as_slice() != want {
        return Err(format!(
            "expected sha256 {}, got {}",
            go_bytes(&want),
            go_bytes(&got)
        ));
    }
    Ok(())
}

/// Go's `%v` of a byte slice: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let v: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", v.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &mut Vec<u8>, table: u8, key: &[u8], value: &[u8]) {
        out.push(table);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }

    fn dump(rev: i64) -> Vec<u8> {
        let mut d = DUMP_MAGIC.to_vec();
        record(
            &mut d,
            T_KV,
            b"\x01\0\0\0k\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\0",
            b"v",
        );
        record(&mut d, T_META, META_CURRENT_REV, &rev.to_be_bytes());
        record(&mut d, T_META, META_SCHEMA, SCHEMA_VERSION);
        d.push(T_END);
        let crc = crc32c::crc32c(&d);
        d.extend_from_slice(&crc.to_le_bytes());
        d
    }

    #[test]
    fn scans_a_dump() {
        let d = dump(7);
        let s = scan_dump(&d[..], d.len() as u64).unwrap();
        assert_eq!((s.rows, s.revision, s.len), (3, 7, d.len() as u64));
        assert_eq!(s.crc, crc32c::crc32c(&d[..d.len() - 4]));
    }

    #[test]
    fn refuses_damage() {
        let d = dump(7);
        let n = d.len() as u64;
        assert_eq!(scan_dump(&d[..20], 20).err().unwrap(), "truncated record");
        let mut bad = d.clone();
        bad[20] ^= 1;
        assert!(scan_dump(&bad[..], n).is_err());
        let mut bad = d.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(scan_dump(&bad[..], n).err().unwrap(), "checksum mismatch");
        // a length far beyond the file is not believed
        let mut huge = DUMP_MAGIC.to_vec();
        huge.push(T_KV);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let hn = huge.len() as u64;
        assert_eq!(scan_dump(&huge[..], hn).err().unwrap(), "truncated record");
    }

    #[test]
    fn status_formats() {
        let st = SnapStatus {
            hash: 0xfc737a0b,
            revision: 5,
            total_key: 10,
            total_size: 24576,
        };
        let t = |f| status_text(f, &st).unwrap();
        assert_eq!(t(Format::Simple), "fc737a0b, 5, 10, 25 kB\n");
        assert_eq!(
            t(Format::Json),
            "{\"hash\":4235426315,\"revision\":5,\"totalKey\":10,\"totalSize\":24576}\n"
        );
        assert_eq!(
            t(Format::Fields),
            "\"Hash\" : 4235426315\n\"Revision\" : 5\n\"Keys\" : 10\n\"Size\" : 24576\n"
        );
        assert!(t(Format::Table).contains("| fc737a0b |        5 |         10 |      25 kB |"));
        assert!(status_text(Format::Protobuf, &st).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(check_url(" HTTP://a:1").unwrap(), "http://a:1");
        assert!(check_url("ftp://a:1")
            .unwrap_err()
            .starts_with("URL scheme"));
        assert!(check_url("http://a").unwrap_err().contains("host:port"));
        assert!(check_url("http://a:1/x").unwrap_err().contains("path"));
        assert_eq!(
            initial_cluster("a=http://x:1,b=http://y:2").unwrap(),
            vec![
                ("a".to_string(), "http://x:1".to_string()),
                ("b".to_string(), "http://y:2".to_string())
            ]
        );
    }
}
