//! Alarms (etcd's alarm store): raised and cleared through Raft so every
//! member agrees, kept in the store's meta table. While a NOSPACE alarm is
//! active, apply refuses what would grow the store (puts, txns that put,
//! lease grants) with `etcdserver: mvcc: database space exceeded`; reads,
//! deletes, compaction and disarm still work.

use std::collections::BTreeSet;
use std::sync::RwLock;

use rustcd_mvcc::{Store, WriteBatch};
use rustcd_proto::etcdserverpb::alarm_request::AlarmAction;
use rustcd_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};

use crate::error::ServerError;

pub(crate) const META_ALARMS: &str = "alarms";

#[derive(Default)]
pub(crate) struct Alarms {
    active: RwLock<BTreeSet<(u64, i32)>>,
}

fn encode(set: &BTreeSet<(u64, i32)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.len() * 12);
    for (m, a) in set {
        out.extend_from_slice(&m.to_be_bytes());
        out.extend_from_slice(&a.to_be_bytes());
    }
    out
}

impl Alarms {
    pub(crate) fn recover(store: &Store) -> Result<Alarms, String> {
        let mut set = BTreeSet::new();
        if let Some(b) = store.get_meta(META_ALARMS).map_err(|e| e.to_string())? {
            if b.len() % 12 != 0 {
                return Err("bad alarm record".into());
            }
            for c in b.chunks(12) {
                let m = u64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
                let a = i32::from_be_bytes(c[8..].try_into().expect("4 bytes"));
                set.insert((m, a));
            }
        }
        Ok(Alarms {
            active: RwLock::new(set),
        })
    }

    /// Replaces the alarms with those in `store` (after a snapshot install).
    pub(crate) fn reload(&self, store: &Store) -> Result<(), String> {
        let fresh = Alarms::recover(store)?;
        *self.active.write().unwrap() = fresh.active.into_inner().unwrap();
        Ok(())
    }

    pub(crate) fn no_space(&self) -> bool {
        self.active
            .read()
            .unwrap()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    /// Active alarms of type `alarm` (NONE = all).
    pub(crate) fn list(&self, alarm: i32) -> Vec<AlarmMember> {
        self_list(&self.active.read().unwrap(), alarm)
    }

    /// Applies an ACTIVATE or DEACTIVATE; returns the alarms it changed.
    pub(crate) fn apply(
        &self,
        batch: &mut WriteBatch,
        r: &AlarmRequest,
    ) -> Result<Vec<AlarmMember>, ServerError> {
        let mut set = self.active.write().unwrap();
        let key = (r.member_id, r.alarm);
        let changed = match AlarmAction::try_from(r.action) {
            Ok(AlarmAction::Activate) if r.alarm != AlarmType::None as i32 => set.insert(key),
            Ok(AlarmAction::Deactivate) => set.remove(&key),
            Ok(AlarmAction::Get) => return Ok(self_list(&set, r.alarm)),
            _ => false,
        };
        if !changed {
            return Ok(Vec::new());
        }
        batch.put_meta(META_ALARMS, &encode(&set))?;
        tracing::warn!(
            member = %format!("{:x}", r.member_id),
            alarm = ?AlarmType::try_from(r.alarm).unwrap_or(AlarmType::None),
            action = ?AlarmAction::try_from(r.action).unwrap_or(AlarmAction::Get),
            "alarm changed"
        );
        Ok(vec![AlarmMember {
            member_id: r.member_id,
            alarm: r.alarm,
        }])
    }
}

fn self_list(set: &BTreeSet<(u64, i32)>, alarm: i32) -> Vec<AlarmMember> {
    set.iter()
        .filter(|(_, a)| alarm == AlarmType::None as i32 || *a == alarm)
        .map(|(m, a)| AlarmMember {
            member_id: *m,
            alarm: *a,
        })
        .collect()
}
