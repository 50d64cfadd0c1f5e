//! Members and their ids. Ids are derived exactly as etcd derives them, so
//! the same flags give the same member and cluster ids on rustcd and etcd.

use std::collections::BTreeMap;

use prost::Message as _;
use rustcd_proto::rustcdpb::Member;
use sha1::{Digest, Sha1};

/// etcd's member id: sha1 over the sorted peer URLs concatenated, then the
/// cluster token; the first 8 bytes, big-endian.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's cluster id: sha1 over the sorted member ids, each 8 bytes big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 is 20 bytes"))
}

/// The cluster's members, keyed by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Members(pub BTreeMap<u64, Member>);

impl Members {
    /// Builds the initial members from `--initial-cluster` (a name may carry several URLs).
    pub fn from_initial_cluster(initial: &[(String, String)], token: &str) -> Members {
        let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, url) in initial {
            by_name.entry(name).or_default().push(url.clone());
        }
        let mut members = BTreeMap::new();
        for (name, urls) in by_name {
            let id = member_id(&urls, token);
            members.insert(
                id,
                Member {
                    id,
                    name: name.to_string(),
                    peer_urls: urls,
                    client_urls: Vec::new(),
                    is_learner: false,
                },
            );
        }
        Members(members)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.0.keys().copied().collect()
    }

    /// Length-delimited `Member` messages, as stored under the `members` meta key.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        for m in self.0.values() {
            m.encode_length_delimited(&mut buf).expect("vec has room");
        }
        buf
    }

    pub fn decode(mut buf: &[u8]) -> Result<Members, prost::DecodeError> {
        let mut members = BTreeMap::new();
        while !buf.is_empty() {
            let m = Member::decode_length_delimited(&mut buf)?;
            members.insert(m.id, m);
        }
        Ok(Members(members))
    }
}

/// etcd's id for a member added at runtime: like [`member_id`], with the
/// Unix time of the addition appended, so a re-added URL gets a new id.
pub fn new_member_id(peer_urls: &[String], token: &str, unix_secs: u64) -> u64 {
    member_id(peer_urls, &format!("{token}{unix_secs}"))
}

/// Whether `url` is an absolute http(s) URL with a host and a port, as etcd
/// requires of peer URLs.
pub fn valid_peer_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    match rest.trim_end_matches('/').rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_order_independent() {
        let a = member_id(&["http://localhost:2380".into()], "etcd-cluster-1");
        assert_eq!(
            a,
            member_id(&["http://localhost:2380".into()], "etcd-cluster-1")
        );
        assert_ne!(a, member_id(&["http://localhost:2380".into()], "other"));
        let c1 = cluster_id(&[1, 2, 3]);
        assert_eq!(c1, cluster_id(&[3, 1, 2]));
        let ms = Members::from_initial_cluster(
            &[
                ("etcd0".into(), "http://localhost:2380".into()),
                ("etcd1".into(), "http://localhost:2381".into()),
            ],
            "etcd-cluster-1",
        );
        assert_eq!(Members::decode(&ms.encode()).unwrap(), ms);
    }
}
