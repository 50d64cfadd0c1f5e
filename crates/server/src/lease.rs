//! The lessor: leases, the keys attached to them, and their deadlines.
//!
//! Grants, revokes, checkpoints and key attachment change only in apply, so
//! every member holds the same leases. Deadlines are the leader's business:
//! only the leader ("primary") runs them down, and it expires a lease by
//! proposing a revoke, so every member deletes the same keys at the same
//! revision. A new leader gives every lease its remaining TTL (as last
//! checkpointed) plus an election timeout, so keep-alives in flight during
//! the election are not lost and a long lease is not renewed to full TTL.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustcd_mvcc::{Store, WriteBatch};
use rustcd_proto::etcdserverpb::RangeRequest;

use crate::error::ServerError;

/// etcd's largest lease TTL, in seconds.
pub(crate) const MAX_LEASE_TTL: i64 = 9_000_000_000;
const META_PREFIX: &str = "lease/";

struct Lease {
    /// Granted TTL in seconds (after raising to the minimum).
    ttl: i64,
    /// Remaining TTL as of the last checkpoint; 0 = none.
    remaining_ttl: i64,
    keys: BTreeSet<Vec<u8>>,
    /// When the lease expires; only set while this member is primary.
    expiry: Option<Instant>,
}

impl Lease {
    /// The TTL a new leader starts the lease from.
    fn restart_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, Lease>,
    primary: bool,
}

/// What `LeaseTimeToLive` reports.
pub(crate) struct TimeToLive {
    pub remaining: i64,
    pub granted: i64,
    pub keys: Vec<Vec<u8>>,
}

pub(crate) struct Lessor {
    state: Mutex<State>,
    /// Leases shorter than this are raised to it (etcd: 1.5 election timeouts).
    min_ttl: i64,
}

fn encode(ttl: i64, remaining: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ttl.to_be_bytes());
    b[8..].copy_from_slice(&remaining.to_be_bytes());
    b
}

fn meta_key(id: i64) -> String {
    format!("{META_PREFIX}{:016x}", id as u64)
}

impl Lessor {
    /// Rebuilds the lessor from the store: lease records from meta, attached
    /// keys from the key space.
    pub(crate) fn recover(store: &Store, min_ttl: i64) -> Result<Lessor, String> {
        let rtx = store.read().map_err(|e| e.to_string())?;
        let mut leases = HashMap::new();
        for (k, v) in rtx
            .meta_with_prefix(META_PREFIX)
            .map_err(|e| e.to_string())?
        {
            let id = u64::from_str_radix(&k[META_PREFIX.len()..], 16)
                .map_err(|_| format!("bad lease record {k:?}"))? as i64;
            if v.len() != 16 {
                return Err(format!("bad lease record {k:?}"));
            }
            let ttl = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            let remaining_ttl = i64::from_be_bytes(v[8..].try_into().expect("8 bytes"));
            leases.insert(
                id,
                Lease {
                    ttl,
                    remaining_ttl,
                    keys: BTreeSet::new(),
                    expiry: None,
                },
            );
        }
        if !leases.is_empty() {
            let all = rtx
                .range(&RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            for kv in all.kvs {
                if let Some(l) = leases.get_mut(&kv.lease) {
                    l.keys.insert(kv.key);
                }
            }
        }
        Ok(Lessor {
            state: Mutex::new(State {
                leases,
                primary: false,
            }),
            min_ttl,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    // ---- apply side ----

    /// Grants a lease (apply). Returns the TTL actually granted.
    pub(crate) fn grant(
        &self,
        batch: &mut WriteBatch,
        id: i64,
        ttl: i64,
    ) -> Result<i64, ServerError> {
        let mut st = self.lock();
        if st.leases.contains_key(&id) {
            return Err(ServerError::LeaseExists);
        }
        let ttl = ttl.max(self.min_ttl);
        batch.put_meta(&meta_key(id), &encode(ttl, 0))?;
        let expiry = st
            .primary
            .then(|| Instant::now() + Duration::from_secs(ttl as u64));
        st.leases.insert(
            id,
            Lease {
                ttl,
                remaining_ttl: 0,
                keys: BTreeSet::new(),
                expiry,
            },
        );
        Ok(ttl)
    }

    /// Forgets a lease (apply) and returns its attached keys, which the
    /// caller deletes in the same revision.
    pub(crate) fn revoke(
        &self,
        batch: &mut WriteBatch,
        id: i64,
    ) -> Result<Vec<Vec<u8>>, ServerError> {
        let mut st = self.lock();
        let Some(l) = st.leases.remove(&id) else {
            return Err(ServerError::LeaseNotFound);
        };
        batch.delete_meta(&meta_key(id))?;
        Ok(l.keys.into_iter().collect())
    }

    /// Records remaining TTLs (apply), so a later leader resumes from them.
    pub(crate) fn checkpoint(
        &self,
        batch: &mut WriteBatch,
        id: i64,
        remaining: i64,
    ) -> Result<(), ServerError> {
        let mut st = self.lock();
        if let Some(l) = st.leases.get_mut(&id) {
            l.remaining_ttl = remaining;
            batch.put_meta(&meta_key(id), &encode(l.ttl, remaining))?;
        }
        Ok(())
    }

    /// Key `key` now belongs to lease `new` (0 = none) instead of `old`.
    pub(crate) fn reattach(&self, key: &[u8], old: i64, new: i64) {
        if old == new {
            return;
        }
        let mut st = self.lock();
        if let Some(l) = st.leases.get_mut(&old) {
            l.keys.remove(key);
        }
        if let Some(l) = st.leases.get_mut(&new) {
            l.keys.insert(key.to_vec());
        }
    }

    // ---- leader side ----

    /// This member became leader: start every lease's clock from its
    /// remaining TTL plus `extend`.
    pub(crate) fn promote(&self, extend: Duration) {
        let mut st = self.lock();
        st.primary = true;
        let now = Instant::now();
        for l in st.leases.values_mut() {
            l.expiry = Some(now + extend + Duration::from_secs(l.restart_ttl() as u64));
        }
    }

    pub(crate) fn demote(&self) {
        let mut st = self.lock();
        st.primary = false;
        for l in st.leases.values_mut() {
            l.expiry = None;
        }
    }

    pub(crate) fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A keep-alive on the leader: restarts the lease's clock. Returns the TTL.
    pub(crate) fn renew(&self, id: i64) -> Result<i64, ServerError> {
        let mut st = self.lock();
        if !st.primary {
            return Err(ServerError::NotLeader);
        }
        let l = st.leases.get_mut(&id).ok_or(ServerError::LeaseNotFound)?;
        if l.expiry.is_some_and(|e| e <= Instant::now()) {
            // Expired: its revoke is on the way.
            return Err(ServerError::LeaseNotFound);
        }
        l.expiry = Some(Instant::now() + Duration::from_secs(l.ttl as u64));
        l.remaining_ttl = 0;
        Ok(l.ttl)
    }

    pub(crate) fn time_to_live(&self, id: i64, keys: bool) -> Option<TimeToLive> {
        let st = self.lock();
        let l = st.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => l.restart_ttl(),
        };
        Some(TimeToLive {
            remaining,
            granted: l.ttl,
            keys: if keys {
                l.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Leases whose deadline has passed (leader only).
    pub(crate) fn expired(&self) -> Vec<i64> {
        let st = self.lock();
        let now = Instant::now();
        st.leases
            .iter()
            .filter(|(_, l)| l.expiry.is_some_and(|e| e <= now))
            .map(|(id, _)| *id)
            .collect()
    }

    /// (id, remaining seconds) of every lease, for a checkpoint (leader only).
    pub(crate) fn remaining(&self) -> Vec<(i64, i64)> {
        let st = self.lock();
        let now = Instant::now();
        st.leases
            .iter()
            .filter_map(|(id, l)| {
                l.expiry.map(|e| {
                    (
                        *id,
                        e.saturating_duration_since(now).as_secs().max(1) as i64,
                    )
                })
            })
            .collect()
    }

    pub(crate) fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}
