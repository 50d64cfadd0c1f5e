//! Whole-store snapshots: what a Raft leader sends a member too far behind
//! its log, and what that member installs in place of its state.
//!
//! A snapshot is a logical dump of the four tables taken from one read
//! transaction, so it is consistent and independent of redb's file layout:
//!
//! ```text
//! magic "rustcd-snap/1" | record* | end marker 0xFF | crc32c(all before) u32 LE | zero padding*
//! record = table u8 | key_len u32 LE | key | value_len u32 LE | value
//! ```
//! Keys of `kv` are `key_len`-prefixed user key + main u64 BE + sub u64 BE;
//! keys of `rev` are main u64 BE + sub u64 BE; meta keys are UTF-8.

use redb::{Durability, ReadableTable};

use crate::error::{Error, Result, StorageContext};
use crate::schema::{APP_META, KV, META, META_SCHEMA, REV, SCHEMA_VERSION};
use crate::store::{load_committed, ReadTxn, Store};

const MAGIC: &[u8] = b"rustcd-snap/1";
const T_KV: u8 = 1;
const T_REV: u8 = 2;
const T_META: u8 = 3;
const T_APP_META: u8 = 4;
const T_END: u8 = 0xFF;

/// Writes records while keeping the running CRC32C of everything written.
struct SnapWriter<'w> {
    w: &'w mut dyn std::io::Write,
    crc: u32,
    written: u64,
}

impl SnapWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.written += bytes.len() as u64;
        self.w
            .write_all(bytes)
            .map_err(|e| Error::Storage(format!("writing snapshot: {e}")))
    }

    fn record(&mut self, table: u8, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(&[table])?;
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)
    }
}

impl ReadTxn {
    /// The (applied raft index, term) this snapshot of the store reflects.
    pub fn consistent_index(&self) -> Result<(u64, u64)> {
        let meta = self.txn().open_table(META).ctx("opening meta table")?;
        Ok(load_committed(&meta)?.consistent_index)
    }

    /// Serialises the whole store as of this read snapshot (see the module
    /// docs for the format) into `w`, a record at a time, so memory stays
    /// bounded whatever the store's size. Returns the bytes written.
    pub fn write_snapshot(&self, w: &mut dyn std::io::Write) -> Result<u64> {
        let txn = self.txn();
        let mut out = SnapWriter {
            w,
            crc: 0,
            written: 0,
        };
        out.put(MAGIC)?;
        let kv = txn.open_table(KV).ctx("opening kv table")?;
        let mut key = Vec::new();
        for row in kv.iter().ctx("reading kv table")? {
            let (k, v) = row.ctx("reading kv table")?;
            let (user, main, sub) = k.value();
            key.clear();
            key.extend_from_slice(&(user.len() as u32).to_le_bytes());
            key.extend_from_slice(user);
            key.extend_from_slice(&main.to_be_bytes());
            key.extend_from_slice(&sub.to_be_bytes());
            out.record(T_KV, &key, v.value())?;
        }
        let rev = txn.open_table(REV).ctx("opening rev table")?;
        for row in rev.iter().ctx("reading rev table")? {
            let (k, v) = row.ctx("reading rev table")?;
            let (main, sub) = k.value();
            let mut key = main.to_be_bytes().to_vec();
            key.extend_from_slice(&sub.to_be_bytes());
            out.record(T_REV, &key, v.value())?;
        }
        for (def, tag) in [(META, T_META), (APP_META, T_APP_META)] {
            let t = txn.open_table(def).ctx("opening meta table")?;
            for row in t.iter().ctx("reading meta table")? {
                let (k, v) = row.ctx("reading meta table")?;
                out.record(tag, k.value().as_bytes(), v.value())?;
            }
        }
        out.put(&[T_END])?;
        let crc = out.crc;
        out.put(&crc.to_le_bytes())?;
        Ok(out.written)
    }

    /// The whole snapshot in memory (see [`ReadTxn::write_snapshot`]).
    pub fn snapshot_data(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.write_snapshot(&mut buf)?;
        Ok(buf)
    }
}

/// A parsed snapshot record.
struct Rec<'a> {
    table: u8,
    key: &'a [u8],
    value: &'a [u8],
}

/// Parses a snapshot. Zero bytes after the checksum are allowed (a saved
/// snapshot file pads the dump to a 512-byte multiple).
fn parse(data: &[u8]) -> Result<Vec<Rec<'_>>> {
    let bad = |why: &str| Error::Corrupt(format!("snapshot data: {why}"));
    if data.len() < MAGIC.len() + 5 || !data.starts_with(MAGIC) {
        return Err(bad("not a rustcd snapshot"));
    }
    let mut recs = Vec::new();
    let mut pos = MAGIC.len();
    let field = |pos: &mut usize, n: usize| -> Result<&[u8]> {
        let end = pos.checked_add(n).filter(|e| *e <= data.len());
        let Some(end) = end else {
            return Err(Error::Corrupt("snapshot data: truncated record".into()));
        };
        let f = &data[*pos..end];
        *pos = end;
        Ok(f)
    };
    loop {
        let table = field(&mut pos, 1)?[0];
        if table == T_END {
            let crc = field(&mut pos, 4)?;
            if crc32c::crc32c(&data[..pos - 4])
                != u32::from_le_bytes(crc.try_into().expect("4 bytes"))
            {
                return Err(bad("checksum mismatch"));
            }
            if data[pos..].iter().any(|b| *b != 0) {
                return Err(bad("data after end marker"));
            }
            return Ok(recs);
        }
        let klen = u32::from_le_bytes(field(&mut pos, 4)?.try_into().expect("4 bytes")) as usize;
        let key = field(&mut pos, klen)?;
        let vlen = u32::from_le_bytes(field(&mut pos, 4)?.try_into().expect("4 bytes")) as usize;
        let value = field(&mut pos, vlen)?;
        recs.push(Rec { table, key, value });
    }
}

impl Store {
    /// Replaces the whole content of the store with a snapshot made by
    /// [`ReadTxn::snapshot_data`], in one durable transaction: after a crash
    /// the store is either entirely old or entirely the snapshot.
    pub fn restore(&self, data: &[u8]) -> Result<()> {
        let recs = parse(data)?;
        let bad = |why: &str| Error::Corrupt(format!("snapshot data: {why}"));
        let mut wtx = self
            .inner
            .db
            .begin_write()
            .ctx("beginning snapshot restore")?;
        wtx.set_durability(Durability::Immediate)
            .ctx("beginning snapshot restore")?;
        wtx.delete_table(KV).ctx("clearing kv table")?;
        wtx.delete_table(REV).ctx("clearing rev table")?;
        wtx.delete_table(META).ctx("clearing meta table")?;
        wtx.delete_table(APP_META).ctx("clearing app_meta table")?;
        let state = {
            let mut kv = wtx.open_table(KV).ctx("opening kv table")?;
            let mut rev = wtx.open_table(REV).ctx("opening rev table")?;
            let mut meta = wtx.open_table(META).ctx("opening meta table")?;
            let mut app = wtx.open_table(APP_META).ctx("opening app_meta table")?;
            for r in &recs {
                match r.table {
                    T_KV => {
                        if r.key.len() < 4 {
                            return Err(bad("short kv key"));
                        }
                        let ulen = u32::from_le_bytes(r.key[..4].try_into().expect("4")) as usize;
                        if r.key.len() != 4 + ulen + 16 {
                            return Err(bad("bad kv key"));
                        }
                        let user = &r.key[4..4 + ulen];
                        let main =
                            u64::from_be_bytes(r.key[4 + ulen..12 + ulen].try_into().expect("8"));
                        let sub = u64::from_be_bytes(r.key[12 + ulen..].try_into().expect("8"));
                        kv.insert((user, main, sub), r.value).ctx("restoring kv")?;
                    }
                    T_REV => {
                        if r.key.len() != 16 {
                            return Err(bad("bad rev key"));
                        }
                        let main = u64::from_be_bytes(r.key[..8].try_into().expect("8"));
                        let sub = u64::from_be_bytes(r.key[8..].try_into().expect("8"));
                        rev.insert((main, sub), r.value).ctx("restoring rev")?;
                    }
                    T_META | T_APP_META => {
                        let k =
                            std::str::from_utf8(r.key).map_err(|_| bad("meta key not UTF-8"))?;
                        let t = if r.table == T_META {
                            &mut meta
                        } else {
                            &mut app
                        };
                        t.insert(k, r.value).ctx("restoring meta")?;
                    }
                    _ => return Err(bad("unknown table")),
                }
            }
            match meta.get(META_SCHEMA).ctx("reading schema marker")? {
                Some(v) if v.value() == SCHEMA_VERSION => {}
                _ => return Err(bad("schema marker missing or unsupported")),
            }
            load_committed(&meta)?
        };
        wtx.commit().ctx("committing snapshot restore")?;
        self.inner.set_state(state);
        self.inner.refresh_file_size();
        self.inner.invalidate_in_use();
        tracing::info!(
            revision = state.current_rev,
            consistent_index = state.consistent_index.0,
            "restored mvcc store from snapshot"
        );
        Ok(())
    }
}
