//! The write-ahead log: the durable record of Raft entries and hard state.
//!
//! Written by hand because no maintained crate offers a Raft-shaped WAL with
//! etcd's recovery rules (torn tail truncated, earlier corruption refused).
//!
//! Layout: `<wal-dir>/<seq:016x>-<first-index:016x>.wal` segments, each
//! preallocated to [`SEGMENT_BYTES`] (zero-filled, so the first zero length
//! marks the end of data). A record is
//! `len: u32 LE | crc32c(type ++ payload): u32 LE | type: u8 | payload`.
//! Payloads are raft-rs protobufs (`Entry`, `HardState`) or a snapshot marker
//! (`SnapshotMetadata`: everything at or below its index lives in the state
//! machine).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

/// Size a segment is preallocated to; a batch that does not fit starts a new one.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const HEADER: usize = 9;
const MAX_RECORD: u32 = 512 * 1024 * 1024;

const REC_ENTRY: u8 = 1;
const REC_HARD_STATE: u8 = 2;
const REC_SNAPSHOT: u8 = 3;
/// etcd's `warnSyncDuration`: a WAL sync slower than this is logged.
const SLOW_FSYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// WAL failures; each names the file and offset it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wal: corrupt record in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

type Result<T> = std::result::Result<T, WalError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What replaying the WAL recovered.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest snapshot marker, if any.
    pub snapshot: Option<SnapshotMetadata>,
    pub hard_state: HardState,
    /// Entries after the snapshot index, contiguous, newest write wins.
    pub entries: Vec<Entry>,
}

struct Segment {
    path: PathBuf,
    seq: u64,
    first_index: u64,
}

/// An open WAL, appending to its newest segment.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    offset: u64,
    buf: Vec<u8>,
    /// Lowest entry index in `buf`: a segment cut before writing it starts there.
    buf_first: Option<u64>,
    last_index: u64,
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, idx) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(idx, 16).ok()?,
    ))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync dir", dir))
}

impl Wal {
    /// Whether `dir` holds a WAL already.
    pub fn exists(dir: &Path) -> bool {
        fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .any(|e| parse_segment_name(&e.file_name().to_string_lossy()).is_some())
            })
            .unwrap_or(false)
    }

    /// Opens (creating if needed) the WAL in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered)> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let mut segments = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
            let e = e.map_err(io_err("read dir", dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((seq, first_index)) = parse_segment_name(&name) {
                segments.push(Segment {
                    path: e.path(),
                    seq,
                    first_index,
                });
            } else if name.ends_with(".tmp") {
                // A segment whose creation did not finish; never held acknowledged data.
                let _ = fs::remove_file(e.path());
            }
        }
        segments.sort_by_key(|s| s.seq);

        let mut rec = Recovered::default();
        let mut tail_offset = 0;
        let mut dirty_end = 0;
        let n = segments.len();
        for (i, seg) in segments.iter().enumerate() {
            (tail_offset, dirty_end) = replay_segment(&seg.path, i + 1 == n, &mut rec)?;
        }

        let (file, offset) = if let Some(last) = segments.last() {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&last.path)
                .map_err(io_err("open", &last.path))?;
            if dirty_end > tail_offset {
                // Zero what a torn write left after the last good record:
                // shorter records appended later must not end up followed
                // by its garbage, which the next replay would call corruption.
                f.seek(SeekFrom::Start(tail_offset))
                    .map_err(io_err("seek", &last.path))?;
                f.write_all(&vec![0; (dirty_end - tail_offset) as usize])
                    .map_err(io_err("zero torn tail", &last.path))?;
                f.sync_data().map_err(io_err("fdatasync", &last.path))?;
            }
            f.seek(SeekFrom::Start(tail_offset))
                .map_err(io_err("seek", &last.path))?;
            (f, tail_offset)
        } else {
            let seg = create_segment(dir, 0, 1)?;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&seg.path)
                .map_err(io_err("open", &seg.path))?;
            segments.push(seg);
            (f, 0)
        };
        let last_index = rec
            .entries
            .last()
            .map(|e| e.index)
            .or(rec.snapshot.as_ref().map(|s| s.index))
            .unwrap_or(0);
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                segments,
                file,
                offset,
                buf: Vec::new(),
                buf_first: None,
                last_index,
            },
            rec,
        ))
    }

    /// Buffers entries for the next [`Wal::sync`].
    pub fn append_entries(&mut self, entries: &[Entry]) {
        for e in entries {
            encode(
                &mut self.buf,
                REC_ENTRY,
                &e.write_to_bytes().expect("encode entry"),
            );
            self.buf_first = Some(self.buf_first.map_or(e.index, |f| f.min(e.index)));
            self.last_index = e.index;
        }
    }

    /// Buffers a hard state for the next [`Wal::sync`].
    pub fn set_hard_state(&mut self, hs: &HardState) {
        encode(
            &mut self.buf,
            REC_HARD_STATE,
            &hs.write_to_bytes().expect("encode hard state"),
        );
    }

    /// Buffers a snapshot marker: entries up to `meta.index` are in the state machine.
    pub fn save_snapshot(&mut self, meta: &SnapshotMetadata) {
        encode(
            &mut self.buf,
            REC_SNAPSHOT,
            &meta.write_to_bytes().expect("encode snapshot metadata"),
        );
        self.last_index = self.last_index.max(meta.index);
    }

    /// Writes what is buffered and makes it durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.offset > 0 && self.offset + self.buf.len() as u64 > SEGMENT_BYTES {
            self.cut()?;
        }
        let path = &self.segments.last().expect("a segment").path;
        let started = std::time::Instant::now();
        self.file
            .write_all(&self.buf)
            .map_err(io_err("write", path))?;
        self.file.sync_data().map_err(io_err("fdatasync", path))?;
        let took = started.elapsed();
        crate::metrics::WAL_FSYNC.observe(took);
        if took >= SLOW_FSYNC {
            // etcd's warning, with its threshold.
            tracing::warn!(took = ?took, expected_duration = ?SLOW_FSYNC, "slow fdatasync");
        }
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        self.buf_first = None;
        Ok(())
    }

    /// Starts a new segment (the current one is full).
    fn cut(&mut self) -> Result<()> {
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let first = self.buf_first.unwrap_or(self.last_index + 1);
        let seg = create_segment(&self.dir, seq, first)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg.path)
            .map_err(io_err("open", &seg.path))?;
        self.segments.push(seg);
        self.offset = 0;
        tracing::debug!(segment = seq, "wal: cut new segment");
        Ok(())
    }

    /// Deletes segments that only hold entries at or below `index`, which the
    /// state machine has durably applied. The newest segment always stays.
    pub fn release_to(&mut self, index: u64) -> Result<()> {
        let mut keep_from = 0;
        for i in 1..self.segments.len() {
            // Segment i-1 ends before segment i's first index.
            if self.segments[i].first_index <= index + 1 {
                keep_from = i;
            }
        }
        if keep_from == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..keep_from) {
            fs::remove_file(&seg.path).map_err(io_err("remove", &seg.path))?;
            tracing::info!(path = %seg.path.display(), "wal: released segment");
        }
        sync_dir(&self.dir)
    }
}

fn encode(buf: &mut Vec<u8>, typ: u8, payload: &[u8]) {
    let mut crc = crc32c::crc32c(&[typ]);
    crc = crc32c::crc32c_append(crc, payload);
    buf.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(typ);
    buf.extend_from_slice(payload);
}

/// Reserves the segment's blocks up front (`fallocate`), so a full disk
/// shows when a segment is created rather than in the middle of an append;
/// file systems without it get a zero-filled (sparse) file.
fn preallocate(f: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on an open descriptor we own; no pointers involved.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return f.set_len(len);
    }
    Err(err)
}

fn create_segment(dir: &Path, seq: u64, first_index: u64) -> Result<Segment> {
    let path = dir.join(segment_name(seq, first_index));
    let tmp = dir.join(format!("{}.tmp", segment_name(seq, first_index)));
    let f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    // Zero-filled to its full size up front so appends never change the
    // file's length (fdatasync then has no size metadata to flush).
    preallocate(&f, SEGMENT_BYTES).map_err(io_err("preallocate", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    sync_dir(dir)?;
    Ok(Segment {
        path,
        seq,
        first_index,
    })
}

/// Replays one segment into `rec`; returns the offset just past its last
/// good record and the offset just past the last non-zero byte (where a
/// torn write left garbage beyond the good records).
fn replay_segment(path: &Path, is_last: bool, rec: &mut Recovered) -> Result<(u64, u64)> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err("read", path))?;
    let tail = replay_records(path, &data, is_last, rec)?;
    let dirty_end = data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1) as u64;
    Ok((tail, dirty_end.max(tail)))
}

/// Replays the records of one segment. A bad record at the tail of the last
/// segment is a torn write and is cut off; anything else bad is corruption.
fn replay_records(path: &Path, data: &[u8], is_last: bool, rec: &mut Recovered) -> Result<u64> {
    let mut off = 0usize;
    loop {
        if off + HEADER > data.len() {
            return Ok(off as u64);
        }
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap());
        if len == 0 {
            // End of written data: the rest of the segment must be zero-fill.
            return check_tail(path, data, off, off, is_last);
        }
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap());
        let end = off + 8 + len as usize;
        if len > MAX_RECORD || end > data.len() {
            return check_tail(path, data, off, off + 8, is_last);
        }
        let body = &data[off + 8..end];
        if crc32c::crc32c(body) != crc {
            return check_tail(path, data, off, end, is_last);
        }
        let (typ, payload) = (body[0], &body[1..]);
        let corrupt = |reason: String| WalError::Corrupt {
            path: path.to_path_buf(),
            offset: off as u64,
            reason,
        };
        match typ {
            REC_ENTRY => {
                let e = Entry::parse_from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
                // A later write of an index replaces it and everything after.
                while rec.entries.last().is_some_and(|l| l.index >= e.index) {
                    rec.entries.pop();
                }
                rec.entries.push(e);
            }
            REC_HARD_STATE => {
                rec.hard_state =
                    HardState::parse_from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
            }
            REC_SNAPSHOT => {
                let m = SnapshotMetadata::parse_from_bytes(payload)
                    .map_err(|e| corrupt(e.to_string()))?;
                rec.entries.retain(|e| e.index > m.index);
                rec.snapshot = Some(m);
            }
            t => return Err(corrupt(format!("unknown record type {t}"))),
        }
        off = end;
    }
}

/// A bad record at `off` is acceptable only at the end of the newest segment,
/// with nothing but zeros after `from` (a torn, partly written batch).
fn check_tail(path: &Path, data: &[u8], off: usize, from: usize, is_last: bool) -> Result<u64> {
    let zeros_after = data[from.min(data.len())..].iter().all(|b| *b == 0);
    if zeros_after && (is_last || data[off..].iter().all(|b| *b == 0)) {
        if data[off..].iter().any(|b| *b != 0) {
            tracing::warn!(path = %path.display(), offset = off, "wal: truncating torn record at the tail");
        }
        return Ok(off as u64);
    }
    Err(WalError::Corrupt {
        path: path.to_path_buf(),
        offset: off as u64,
        reason: "record checksum or length mismatch followed by more data".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn segment_path(dir: &Path) -> PathBuf {
        fs::read_dir(dir).unwrap().next().unwrap().unwrap().path()
    }

    #[test]
    fn replays_entries_hard_state_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, rec) = Wal::open(dir.path()).unwrap();
            assert!(rec.entries.is_empty());
            wal.append_entries(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]);
            let hs = HardState {
                term: 2,
                commit: 2,
                ..Default::default()
            };
            wal.set_hard_state(&hs);
            wal.sync().unwrap();
            // A new leader overwrites index 3.
            wal.append_entries(&[entry(3, 2, b"C")]);
            wal.sync().unwrap();
        }
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 3);
        assert_eq!(&rec.entries[2].data[..], b"C");
        assert_eq!(rec.entries[2].term, 2);
        assert_eq!(rec.hard_state.commit, 2);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let end;
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1, b"a")]);
            wal.sync().unwrap();
            wal.append_entries(&[entry(2, 1, b"bbbbbbbbbbbbbbbb")]);
            wal.sync().unwrap();
            end = wal.offset;
        }
        // Tear the last record: zero its final bytes as an interrupted write would.
        let path = segment_path(dir.path());
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(end - 6)).unwrap();
        f.write_all(&[0; 6]).unwrap();
        drop(f);
        {
            let (mut wal, rec) = Wal::open(dir.path()).unwrap();
            assert_eq!(rec.entries.len(), 1);
            wal.append_entries(&[entry(2, 1, b"b2")]);
            wal.sync().unwrap();
        }
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 2);
        assert_eq!(&rec.entries[1].data[..], b"b2");
    }

    #[test]
    fn a_torn_tail_is_zeroed_so_shorter_appends_replay_after_the_next_crash() {
        let dir = tempfile::tempdir().unwrap();
        let end;
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1, b"a")]);
            wal.sync().unwrap();
            end = wal.offset;
        }
        // A torn write: a record header claiming 500 bytes, only 200 of
        // them written, zero-fill after.
        let path = segment_path(dir.path());
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(end)).unwrap();
        let mut torn = 501u32.to_le_bytes().to_vec();
        torn.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        torn.push(REC_ENTRY);
        torn.extend_from_slice(&[0x5A; 200]);
        f.write_all(&torn).unwrap();
        drop(f);
        {
            let (mut wal, rec) = Wal::open(dir.path()).unwrap();
            assert_eq!(rec.entries.len(), 1);
            // Shorter than the garbage: without zeroing, garbage follows it.
            wal.append_entries(&[entry(2, 1, b"b")]);
            wal.sync().unwrap();
        }
        let (_, rec) = Wal::open(dir.path()).expect("no garbage left behind the new record");
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn corruption_before_good_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1, b"first"), entry(2, 1, b"second")]);
            wal.sync().unwrap();
        }
        let path = segment_path(dir.path());
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(HEADER as u64 + 2)).unwrap();
        f.write_all(b"XX").unwrap();
        drop(f);
        let err = Wal::open(dir.path())
            .err()
            .expect("corruption must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("corrupt record") && msg.contains("offset 0"),
            "{msg}"
        );
    }

    #[test]
    fn snapshot_marker_drops_older_entries_and_release_removes_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1, b"a"), entry(2, 1, b"b")]);
        wal.sync().unwrap();
        wal.cut().unwrap();
        wal.append_entries(&[entry(3, 1, b"c")]);
        let meta = SnapshotMetadata {
            index: 2,
            term: 1,
            ..Default::default()
        };
        wal.save_snapshot(&meta);
        wal.sync().unwrap();
        wal.release_to(2).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(wal);
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.unwrap().index, 2);
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![3]
        );
    }
}
