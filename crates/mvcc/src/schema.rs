//! Table definitions and the byte formats stored in them (see DESIGN.md).

use prost::Message;
use redb::TableDefinition;
use rustcd_proto::mvccpb::KeyValue;

use crate::error::{Error, Result};

/// The key index: one row per version of a user key, (user key, main revision, sub revision) →
/// the prost-encoded `mvccpb::KeyValue` with its `key` and `value` fields left empty (the key is
/// in the row key, the value in [`REV`]), or zero bytes for a tombstone.
///
/// Values live apart so that index rows stay small: a random put or a large delete rewrites
/// index pages holding many keys each, and the values are only ever appended in revision order
/// (etcd keeps its values keyed by revision for the same reason).
pub(crate) const KV: TableDefinition<(&[u8], u64, u64), &[u8]> = TableDefinition::new("kv");

/// One row per version, ordered by revision: (main, sub) → [flag byte][user key length, u32
/// big-endian][user key][value]. The flag is [`REV_PUT`] or [`REV_TOMBSTONE`]; a tombstone has no
/// value.
pub(crate) const REV: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("rev");

/// The store's own bookkeeping (schema marker, revisions, consistent index).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Keys written by the server through `put_meta`; kept apart from [`META`] so that the two
/// namespaces can never collide.
pub(crate) const APP_META: TableDefinition<&str, &[u8]> = TableDefinition::new("app_meta");

pub(crate) const REV_PUT: u8 = 0;
pub(crate) const REV_TOMBSTONE: u8 = 1;

/// `META` key of the schema marker; its value must be [`SCHEMA_VERSION`].
pub(crate) const META_SCHEMA: &str = "schema";
pub(crate) const SCHEMA_VERSION: &[u8] = b"rustcd-mvcc/2";
/// `META` key of the current revision: i64 big-endian. Absent in a new store (revision 1).
pub(crate) const META_CURRENT_REV: &str = "current_rev";
/// `META` key of the compact revision: i64 big-endian. Absent if never compacted.
pub(crate) const META_COMPACT_REV: &str = "compact_rev";
/// `META` key of the physical compaction cursor: the (main, sub) of the last `REV` entry that
/// physical compaction has dealt with, u64 big-endian each. Absent = (0, 0), nothing done yet.
/// Compaction is finished when the cursor is at (compact revision, u64::MAX).
pub(crate) const META_COMPACT_CURSOR: &str = "compact_cursor";
/// `META` key of the consistent index: u64 big-endian raft index then u64 big-endian term.
pub(crate) const META_CONSISTENT_INDEX: &str = "consistent_index";

/// Encodes a put's index row value: the KeyValue without its key and value.
pub(crate) fn encode_put(kv: &KeyValue) -> Vec<u8> {
    let stored = KeyValue {
        key: Vec::new(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: Vec::new(),
        lease: kv.lease,
    };
    let buf = stored.encode_to_vec();
    debug_assert!(!buf.is_empty(), "a put row is never empty");
    buf
}

/// Decodes a put's index row value, filling in the user key from the row key; the value is left
/// empty (it is in the `rev` row).
pub(crate) fn decode_put(key: &[u8], bytes: &[u8]) -> Result<KeyValue> {
    let mut kv = KeyValue::decode(bytes).map_err(|e| {
        Error::Corrupt(format!(
            "undecodable KeyValue for key {:?}: {e}",
            String::from_utf8_lossy(key)
        ))
    })?;
    kv.key = key.to_vec();
    Ok(kv)
}

/// Encodes a `REV` row value; a tombstone's `value` must be empty.
pub(crate) fn encode_rev_value(tombstone: bool, key: &[u8], value: &[u8]) -> Vec<u8> {
    debug_assert!(!tombstone || value.is_empty());
    let mut v = Vec::with_capacity(5 + key.len() + value.len());
    v.push(if tombstone { REV_TOMBSTONE } else { REV_PUT });
    v.extend_from_slice(&(key.len() as u32).to_be_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// A decoded `REV` row value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RevValue<'a> {
    pub(crate) tombstone: bool,
    pub(crate) key: &'a [u8],
    /// The put's value (empty for a tombstone).
    pub(crate) value: &'a [u8],
}

/// Splits a `REV` row value into its flag, user key and value.
pub(crate) fn decode_rev_value(bytes: &[u8]) -> Result<RevValue<'_>> {
    let bad = || Error::Corrupt(format!("invalid rev table entry {bytes:?}"));
    let (&flag, rest) = bytes.split_first().ok_or_else(bad)?;
    let tombstone = match flag {
        REV_PUT => false,
        REV_TOMBSTONE => true,
        _ => return Err(bad()),
    };
    if rest.len() < 4 {
        return Err(bad());
    }
    let klen = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let rest = &rest[4..];
    if rest.len() < klen || (tombstone && rest.len() != klen) {
        return Err(bad());
    }
    let (key, value) = rest.split_at(klen);
    Ok(RevValue {
        tombstone,
        key,
        value,
    })
}

pub(crate) fn encode_i64(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn decode_i64(what: &str, bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::Corrupt(format!(
            "meta {what}: expected 8 bytes, got {}",
            bytes.len()
        ))
    })?;
    Ok(i64::from_be_bytes(arr))
}

/// Encodes a pair of u64s (consistent index and term, or a revision cursor), big-endian.
pub(crate) fn encode_pair(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

pub(crate) fn decode_pair(what: &str, bytes: &[u8]) -> Result<(u64, u64)> {
    if bytes.len() != 16 {
        return Err(Error::Corrupt(format!(
            "meta {what}: expected 16 bytes, got {}",
            bytes.len()
        )));
    }
    let a = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let b = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
    Ok((a, b))
}

/// Whether `key` lies in the etcd range [start, end): `end` empty means the single key `start`,
/// `end == [0]` means every key >= `start`.
pub(crate) fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match RangeEnd::from_request(end) {
        RangeEnd::Single => key == start,
        RangeEnd::Unbounded => key >= start,
        RangeEnd::Before(e) => key >= start && key < e,
    }
}

/// The decoded form of an etcd `range_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeEnd<'a> {
    /// Empty range_end: only the key itself.
    Single,
    /// range_end == "\0": every key >= key.
    Unbounded,
    /// Keys strictly before this one.
    Before(&'a [u8]),
}

impl<'a> RangeEnd<'a> {
    pub(crate) fn from_request(end: &'a [u8]) -> Self {
        match end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            e => RangeEnd::Before(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_rows_round_trip_without_the_key() {
        for value in [Vec::new(), b"v".to_vec(), vec![7u8; 100_000]] {
            let kv = KeyValue {
                key: b"some/key".to_vec(),
                create_revision: 2,
                mod_revision: 9,
                version: 3,
                value: value.clone(),
                lease: -5,
            };
            let row = encode_put(&kv);
            assert!(!row.is_empty());
            // Neither the key nor the value is stored in the index row.
            assert!(row.len() < 30);
            assert_eq!(KeyValue::decode(row.as_slice()).unwrap().key, b"");
            let decoded = decode_put(b"some/key", &row).unwrap();
            assert_eq!(decoded.value, b"");
            assert_eq!(
                decoded,
                KeyValue {
                    value: Vec::new(),
                    ..kv
                }
            );
        }
        assert!(matches!(
            decode_put(b"k", &[0xff, 0xff]),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn rev_values() {
        let rv = |tombstone, key, value| RevValue {
            tombstone,
            key,
            value,
        };
        assert_eq!(
            decode_rev_value(&encode_rev_value(true, b"k", b"")).unwrap(),
            rv(true, &b"k"[..], &b""[..])
        );
        assert_eq!(
            decode_rev_value(&encode_rev_value(false, b"", b"")).unwrap(),
            rv(false, &b""[..], &b""[..])
        );
        assert_eq!(
            decode_rev_value(&encode_rev_value(false, b"key", b"value")).unwrap(),
            rv(false, &b"key"[..], &b"value"[..])
        );
        assert!(decode_rev_value(&[]).is_err());
        assert!(decode_rev_value(&[7, 1]).is_err());
        // Truncated key, and a tombstone carrying a value.
        assert!(decode_rev_value(&[0, 0, 0, 0, 5, b'k']).is_err());
        assert!(decode_rev_value(&[1, 0, 0, 0, 1, b'k', b'v']).is_err());
    }

    #[test]
    fn meta_integers() {
        assert_eq!(decode_i64("x", &encode_i64(-1)).unwrap(), -1);
        assert_eq!(
            decode_pair("x", &encode_pair(u64::MAX, 3)).unwrap(),
            (u64::MAX, 3)
        );
        assert!(decode_i64("x", &[1, 2]).is_err());
        assert!(decode_pair("x", &[0; 15]).is_err());
    }

    #[test]
    fn etcd_range_ends() {
        assert!(in_range(b"a", b"a", b""));
        assert!(!in_range(b"ab", b"a", b""));
        assert!(in_range(b"zzz", b"b", b"\0"));
        assert!(!in_range(b"a", b"b", b"\0"));
        assert!(in_range(b"\0", b"\0", b"\0"));
        assert!(in_range(b"b", b"b", b"c"));
        assert!(in_range(b"bzz", b"b", b"c"));
        assert!(!in_range(b"c", b"b", b"c"));
        assert!(!in_range(b"b", b"c", b"b"));
    }
}
