//! `HashKV`: a checksum of the key space as of a revision, equal on every
//! member that applied the same entries (used to detect divergence).

use redb::ReadableTable;

use crate::error::{Error, Result, StorageContext};
use crate::range::put_value;
use crate::store::ReadTxn;

impl ReadTxn {
    /// CRC32C over every version visible at or below `rev` (0 = current):
    /// its key, revision, index row and value, in key then revision order, with
    /// history that compaction removes left out whether or not it is
    /// physically gone yet. Returns (hash, the revision hashed).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64)> {
        let current = self.revision();
        let rev = if rev <= 0 { current } else { rev };
        if rev > current {
            return Err(Error::FutureRev);
        }
        let compacted = self.compact_revision();
        if compacted > 0 && rev < compacted {
            return Err(Error::Compacted);
        }
        let mut crc = 0u32;
        for row in self.kv.iter().ctx("reading kv table")? {
            let (k, v) = row.ctx("reading kv table")?;
            let (key, main, sub) = k.value();
            if main as i64 > rev {
                continue;
            }
            if main as i64 <= compacted
                && (v.value().is_empty() || !self.survives_compaction(key, main, sub, compacted)?)
            {
                continue;
            }
            crc = crc32c::crc32c_append(crc, key);
            crc = crc32c::crc32c_append(crc, &main.to_be_bytes());
            crc = crc32c::crc32c_append(crc, &sub.to_be_bytes());
            crc = crc32c::crc32c_append(crc, v.value());
            if !v.value().is_empty() {
                crc = crc32c::crc32c_append(crc, &put_value(&self.rev, main, sub)?);
            }
        }
        Ok((crc, rev))
    }

    /// Whether (`main`, `sub`) is `key`'s newest row at or below `compacted`,
    /// the one version compaction keeps.
    fn survives_compaction(&self, key: &[u8], main: u64, sub: u64, compacted: i64) -> Result<bool> {
        let newest = self
            .kv
            .range::<(&[u8], u64, u64)>((key, 0, 0)..=(key, compacted as u64, u64::MAX))
            .ctx("reading key history")?
            .next_back()
            .transpose()
            .ctx("reading key history")?;
        Ok(newest.is_some_and(|(k, _)| {
            let (_, m, s) = k.value();
            (m, s) == (main, sub)
        }))
    }
}
