//! Whole-store snapshots: what a Raft leader sends a member too far behind
//! its log, and what that member installs in place of its state.
//!
//! A snapshot is a logical dump of the four tables taken from one read
//! transaction, so it is consistent and independent of redb's file layout:
//!
//! ```text
//! magic "rustcd-snap/1" | record* | end marker 0xFF | crc32c(all before) u32 LE
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

fn record(buf: &mut Vec<u8>, table: u8, key: &[u8], value: &[u8]) {
    buf.push(table);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
}

impl ReadTxn {
    /// The (applied raft index, term) this snapshot of the store reflects.
    pub fn consistent_index(&self) -> Result<(u64, u64)> {
        let meta = self.txn().open_table(META).ctx("opening meta table")?;
        Ok(load_committed(&meta)?.consistent_index)
    }

    /// Serialises the whole store as of this read snapshot (see the module
    /// docs for the format). Holds the data in memory.
    pub fn snapshot_data(&self) -> Result<Vec<u8>> {
        let txn = self.txn();
        let mut buf = MAGIC.to_vec();
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
            record(&mut buf, T_KV, &key, v.value());
        }
        let rev = txn.open_table(REV).ctx("opening rev table")?;
        for row in rev.iter().ctx("reading rev table")? {
            let (k, v) = row.ctx("reading rev table")?;
            let (main, sub) = k.value();
            let mut key = main.to_be_bytes().to_vec();
            key.extend_from_slice(&sub.to_be_bytes());
            record(&mut buf, T_REV, &key, v.value());
        }
        for (def, tag) in [(META, T_META), (APP_META, T_APP_META)] {
            let t = txn.open_table(def).ctx("opening meta table")?;
            for row in t.iter().ctx("reading meta table")? {
                let (k, v) = row.ctx("reading meta table")?;
                record(&mut buf, tag, k.value().as_bytes(), v.value());
            }
        }
        buf.push(T_END);
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        Ok(buf)
    }
}

/// A parsed snapshot record.
struct Rec<'a> {
    table: u8,
    key: &'a [u8],
    value: &'a [u8],
}

fn parse(data: &[u8]) -> Result<Vec<Rec<'_>>> {
    let bad = |why: &str| Error::Corrupt(format!("snapshot data: {why}"));
    if data.len() < MAGIC.len() + 5 || !data.starts_with(MAGIC) {
        return Err(bad("not a rustcd snapshot"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad("checksum mismatch"));
    }
    let mut recs = Vec::new();
    let mut p = &body[MAGIC.len()..];
    let take = |p: &mut &[u8], n: usize| -> Result<Vec<u8>> {
        if p.len() < n {
            return Err(Error::Corrupt("snapshot data: truncated record".into()));
        }
        let (h, t) = p.split_at(n);
        *p = t;
        Ok(h.to_vec())
    };
    loop {
        let table = *p.first().ok_or_else(|| bad("missing end marker"))?;
        p = &p[1..];
        if table == T_END {
            if !p.is_empty() {
                return Err(bad("data after end marker"));
            }
            return Ok(recs);
        }
        let klen = u32::from_le_bytes(take(&mut p, 4)?.try_into().expect("4 bytes")) as usize;
        if p.len() < klen {
            return Err(bad("truncated key"));
        }
        let (key, rest) = p.split_at(klen);
        p = rest;
        let vlen = u32::from_le_bytes(take(&mut p, 4)?.try_into().expect("4 bytes")) as usize;
        if p.len() < vlen {
            return Err(bad("truncated value"));
        }
        let (value, rest) = p.split_at(vlen);
        p = rest;
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
        self.inner.invalidate_in_use();
        tracing::info!(
            revision = state.current_rev,
            consistent_index = state.consistent_index.0,
            "restored mvcc store from snapshot"
        );
        Ok(())
    }
}
