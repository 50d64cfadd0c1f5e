//! etcdctl 3.5's printers: `simple`, `json` (Go's `encoding/json` of the
//! client's response structs: int64 as numbers, bytes as base64, zero
//! `omitempty` fields left out), `fields`, `protobuf` (the message's wire
//! bytes) and `table`. Every printer writes into a byte buffer; a format
//! that etcdctl does not support for a response is an error with its text.

use prost::Message;
use rustcd_proto::etcdserverpb::{
    response_op, AlarmMember, AlarmResponse, AlarmType, DeleteRangeResponse, HashKvResponse,
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse,
    MemberRemoveResponse, MemberUpdateResponse, MoveLeaderResponse, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use rustcd_proto::mvccpb::{Event, KeyValue};

use crate::gofmt::{self, json_array, json_string, quote, Obj};
use crate::{table, CtlError, EXIT_BAD_ARGS, EXIT_BAD_FEATURE};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Protobuf,
    Table,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "protobuf" => Format::Protobuf,
            "table" => Format::Table,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Protobuf => "protobuf",
            Format::Table => "table",
        }
    }
}

/// One endpoint's health, as `endpoint health` reports it.
pub struct EpHealth {
    pub ep: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

pub struct EpStatus {
    pub ep: String,
    pub resp: StatusResponse,
}

pub struct EpHashKv {
    pub ep: String,
    pub resp: HashKvResponse,
}

pub struct Printer {
    pub format: Format,
    pub hex: bool,
    pub value_only: bool,
    pub out: Vec<u8>,
}

type R = Result<(), CtlError>;

fn unsupported(f: Format) -> CtlError {
    CtlError::new(
        EXIT_BAD_FEATURE,
        format!("{} not supported as output format", f.name()),
    )
}

fn hdr_or_default(h: &Option<ResponseHeader>) -> ResponseHeader {
    (*h).unwrap_or_default()
}

// ------------------------------------------------------------------ JSON

pub fn j_header(h: &ResponseHeader) -> String {
    Obj::new()
        .num_omit("cluster_id", h.cluster_id)
        .num_omit("member_id", h.member_id)
        .num_omit("revision", h.revision)
        .num_omit("raft_term", h.raft_term)
        .finish()
}

fn j_header_opt(h: &Option<ResponseHeader>) -> Option<String> {
    h.as_ref().map(j_header)
}

/// The header's fields inline, as Go encodes an embedded `*ResponseHeader`.
fn flat_header(o: &mut Obj, h: &Option<ResponseHeader>) {
    if let Some(h) = h {
        o.num_omit("cluster_id", h.cluster_id)
            .num_omit("member_id", h.member_id)
            .num_omit("revision", h.revision)
            .num_omit("raft_term", h.raft_term);
    }
}

pub fn j_kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes_omit("key", &kv.key)
        .num_omit("create_revision", kv.create_revision)
        .num_omit("mod_revision", kv.mod_revision)
        .num_omit("version", kv.version)
        .bytes_omit("value", &kv.value)
        .num_omit("lease", kv.lease)
        .finish()
}

fn j_kvs(o: &mut Obj, k: &str, kvs: &[KeyValue]) {
    if !kvs.is_empty() {
        o.raw(k, &json_array(kvs.iter().map(j_kv)));
    }
}

fn j_range(r: &RangeResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    j_kvs(&mut o, "kvs", &r.kvs);
    o.bool_omit("more", r.more).num_omit("count", r.count);
    o.finish()
}

fn j_put(r: &PutResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    o.raw_opt("prev_kv", r.prev_kv.as_ref().map(j_kv));
    o.finish()
}

fn j_del(r: &DeleteRangeResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    o.num_omit("deleted", r.deleted);
    j_kvs(&mut o, "prev_kvs", &r.prev_kvs);
    o.finish()
}

fn j_txn(r: &TxnResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    o.bool_omit("succeeded", r.succeeded);
    if !r.responses.is_empty() {
        let items = r.responses.iter().map(|op| {
            let inner = match &op.response {
                Some(response_op::Response::ResponseRange(x)) => {
                    Obj::new().raw("response_range", &j_range(x)).finish()
                }
                Some(response_op::Response::ResponsePut(x)) => {
                    Obj::new().raw("response_put", &j_put(x)).finish()
                }
                Some(response_op::Response::ResponseDeleteRange(x)) => {
                    Obj::new().raw("response_delete_range", &j_del(x)).finish()
                }
                Some(response_op::Response::ResponseTxn(x)) => {
                    Obj::new().raw("response_txn", &j_txn(x)).finish()
                }
                None => "null".to_string(),
            };
            Obj::new().raw("Response", &inner).finish()
        });
        o.raw("responses", &json_array(items));
    }
    o.finish()
}

pub fn j_member(m: &Member) -> String {
    Obj::new()
        .num_omit("ID", m.id)
        .str_omit("name", &m.name)
        .strs_omit("peerURLs", &m.peer_ur_ls)
        .strs_omit("clientURLs", &m.client_ur_ls)
        .bool_omit("isLearner", m.is_learner)
        .finish()
}

fn j_members(o: &mut Obj, ms: &[Member]) {
    if !ms.is_empty() {
        o.raw("members", &json_array(ms.iter().map(j_member)));
    }
}

fn j_event(e: &Event) -> String {
    let mut o = Obj::new();
    o.num_omit("type", e.r#type);
    o.raw_opt("kv", e.kv.as_ref().map(j_kv));
    o.raw_opt("prev_kv", e.prev_kv.as_ref().map(j_kv));
    o.finish()
}

fn j_alarm_member(a: &AlarmMember) -> String {
    Obj::new()
        .num_omit("memberID", a.member_id)
        .num_omit("alarm", a.alarm)
        .finish()
}

fn j_alarm(r: &AlarmResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    if !r.alarms.is_empty() {
        o.raw("alarms", &json_array(r.alarms.iter().map(j_alarm_member)));
    }
    o.finish()
}

fn j_status(r: &StatusResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    o.str_omit("version", &r.version)
        .num_omit("dbSize", r.db_size)
        .num_omit("leader", r.leader)
        .num_omit("raftIndex", r.raft_index)
        .num_omit("raftTerm", r.raft_term)
        .num_omit("raftAppliedIndex", r.raft_applied_index)
        .strs_omit("errors", &r.errors)
        .num_omit("dbSizeInUse", r.db_size_in_use)
        .bool_omit("isLearner", r.is_learner);
    o.finish()
}

fn j_hashkv(r: &HashKvResponse) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(&r.header));
    o.num_omit("hash", r.hash)
        .num_omit("compact_revision", r.compact_revision);
    o.finish()
}

fn header_only<T: HasHeader>(r: &T) -> String {
    let mut o = Obj::new();
    o.raw_opt("header", j_header_opt(r.header()));
    o.finish()
}

pub trait HasHeader {
    fn header(&self) -> &Option<ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),*) => {$(
        impl HasHeader for $t {
            fn header(&self) -> &Option<ResponseHeader> { &self.header }
        }
    )*};
}
has_header!(
    LeaseRevokeResponse,
    MoveLeaderResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
    MemberPromoteResponse,
    MemberListResponse,
    MemberAddResponse
);

/// Go's `proto.CompactTextString` of a header ("cluster_id:1 ... ").
fn header_text(h: &Option<ResponseHeader>) -> String {
    let Some(h) = h else { return "<nil>".into() };
    let mut s = String::new();
    if h.cluster_id != 0 {
        s.push_str(&format!("cluster_id:{} ", h.cluster_id));
    }
    if h.member_id != 0 {
        s.push_str(&format!("member_id:{} ", h.member_id));
    }
    if h.revision != 0 {
        s.push_str(&format!("revision:{} ", h.revision));
    }
    if h.raft_term != 0 {
        s.push_str(&format!("raft_term:{} ", h.raft_term));
    }
    s
}

pub fn alarm_name(a: i32) -> String {
    match AlarmType::try_from(a) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => a.to_string(),
    }
}

fn event_type_name(t: i32) -> String {
    match t {
        0 => "PUT".into(),
        1 => "DELETE".into(),
        n => n.to_string(),
    }
}

impl Printer {
    pub fn new(format: Format, hex: bool) -> Printer {
        Printer {
            format,
            hex,
            value_only: false,
            out: Vec::new(),
        }
    }

    fn w(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn wb(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    fn line(&mut self, s: &str) {
        self.w(s);
        self.out.push(b'\n');
    }

    fn pb<M: Message>(&mut self, m: &M) {
        let b = m.encode_to_vec();
        self.wb(&b);
    }

    fn json(&mut self, s: &str) {
        self.line(s);
    }

    /// etcdctl's `printKV`.
    fn print_kv(&mut self, kv: &KeyValue) {
        if self.hex {
            let k = hex_prefixed(&kv.key);
            let v = hex_prefixed(&kv.value);
            if !self.value_only {
                self.line(&k);
            }
            self.line(&v);
        } else {
            if !self.value_only {
                let k = kv.key.clone();
                self.wb(&k);
                self.out.push(b'\n');
            }
            let v = kv.value.clone();
            self.wb(&v);
            self.out.push(b'\n');
        }
    }

    fn f_hdr(&mut self, h: &Option<ResponseHeader>) {
        let h = hdr_or_default(h);
        self.line(&format!("\"ClusterID\" : {}", h.cluster_id));
        self.line(&format!("\"MemberID\" : {}", h.member_id));
        self.line(&format!("\"Revision\" : {}", h.revision));
        self.line(&format!("\"RaftTerm\" : {}", h.raft_term));
    }

    fn f_kv(&mut self, pfx: &str, kv: &KeyValue) {
        self.line(&format!("\"{pfx}Key\" : {}", quote(&kv.key)));
        self.line(&format!("\"{pfx}CreateRevision\" : {}", kv.create_revision));
        self.line(&format!("\"{pfx}ModRevision\" : {}", kv.mod_revision));
        self.line(&format!("\"{pfx}Version\" : {}", kv.version));
        self.line(&format!("\"{pfx}Value\" : {}", quote(&kv.value)));
        self.line(&format!("\"{pfx}Lease\" : {}", kv.lease));
    }

    // -------------------------------------------------------------- KV

    pub fn get(&mut self, r: &RangeResponse) -> R {
        match self.format {
            Format::Simple => {
                for kv in &r.kvs {
                    self.print_kv(kv);
                }
            }
            Format::Json => self.json(&j_range(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                self.f_hdr(&r.header);
                for kv in &r.kvs {
                    self.f_kv("", kv);
                }
                self.line(&format!("\"More\" : {}", r.more));
                self.line(&format!("\"Count\" : {}", r.count));
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn put(&mut self, r: &PutResponse) -> R {
        match self.format {
            Format::Simple => {
                self.line("OK");
                if let Some(kv) = &r.prev_kv {
                    self.print_kv(kv);
                }
            }
            Format::Json => self.json(&j_put(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                self.f_hdr(&r.header);
                if let Some(kv) = &r.prev_kv {
                    self.f_kv("Prev", kv);
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn del(&mut self, r: &DeleteRangeResponse) -> R {
        match self.format {
            Format::Simple => {
                self.line(&r.deleted.to_string());
                for kv in &r.prev_kvs {
                    self.print_kv(kv);
                }
            }
            Format::Json => self.json(&j_del(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                self.f_hdr(&r.header);
                self.line(&format!("\"Deleted\" : {}", r.deleted));
                for kv in &r.prev_kvs {
                    self.f_kv("Prev", kv);
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn txn(&mut self, r: &TxnResponse) -> R {
        match self.format {
            Format::Simple => {
                self.line(if r.succeeded { "SUCCESS" } else { "FAILURE" });
                for op in &r.responses {
                    self.line("");
                    match &op.response {
                        Some(response_op::Response::ResponseDeleteRange(x)) => self.del(x)?,
                        Some(response_op::Response::ResponsePut(x)) => self.put(x)?,
                        Some(response_op::Response::ResponseRange(x)) => self.get(x)?,
                        _ => self.line("unexpected response"),
                    }
                }
            }
            Format::Json => self.json(&j_txn(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                self.f_hdr(&r.header);
                self.line(&format!("\"Succeeded\" : {}", r.succeeded));
                for op in &r.responses {
                    match &op.response {
                        Some(response_op::Response::ResponseDeleteRange(x)) => self.del(x)?,
                        Some(response_op::Response::ResponsePut(x)) => self.put(x)?,
                        Some(response_op::Response::ResponseRange(x)) => self.get(x)?,
                        _ => self.line("\"Unknown\" : \"\""),
                    }
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    /// One watch response as the client hands it to etcdctl.
    pub fn watch(&mut self, r: &WatchResponse) -> R {
        match self.format {
            Format::Simple => {
                for e in &r.events {
                    self.line(&event_type_name(e.r#type));
                    if let Some(p) = &e.prev_kv {
                        self.print_kv(p);
                    }
                    let kv = e.kv.clone().unwrap_or_default();
                    self.print_kv(&kv);
                }
            }
            Format::Json => {
                let h = hdr_or_default(&r.header);
                // clientv3 hands a canceled watch's last response with an
                // empty (not nil) event list
                let events = if r.events.is_empty() && r.canceled {
                    "[]".to_string()
                } else if r.events.is_empty() {
                    "null".to_string()
                } else {
                    json_array(r.events.iter().map(j_event))
                };
                let s = Obj::new()
                    .raw("Header", &j_header(&h))
                    .raw("Events", &events)
                    .num("CompactRevision", r.compact_revision)
                    .bool("Canceled", r.canceled)
                    .bool("Created", r.created)
                    .finish();
                self.json(&s);
            }
            Format::Protobuf => {
                let wr = WatchResponse {
                    header: Some(hdr_or_default(&r.header)),
                    events: r.events.clone(),
                    compact_revision: r.compact_revision,
                    canceled: r.canceled,
                    created: r.created,
                    ..Default::default()
                };
                self.pb(&wr);
            }
            Format::Fields => {
                self.f_hdr(&r.header);
                for e in &r.events {
                    self.line(&format!("\"Type\" : {}", event_type_name(e.r#type)));
                    if let Some(p) = &e.prev_kv {
                        self.f_kv("Prev", p);
                    }
                    let kv = e.kv.clone().unwrap_or_default();
                    self.f_kv("", &kv);
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    // ----------------------------------------------------------- lease

    pub fn grant(&mut self, r: &LeaseGrantResponse) -> R {
        match self.format {
            Format::Simple => self.line(&format!(
                "lease {} granted with TTL({}s)",
                gofmt::hex016(r.id),
                r.ttl
            )),
            Format::Json => {
                let mut o = Obj::new();
                flat_header(&mut o, &r.header);
                o.num("ID", r.id).num("TTL", r.ttl).str("Error", &r.error);
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(&hdr_or_default(&r.header)),
            Format::Fields => {
                self.f_hdr(&r.header);
                self.line(&format!("\"ID\" : {}", r.id));
                self.line(&format!("\"TTL\" : {}", r.ttl));
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn revoke(&mut self, id: i64, r: &LeaseRevokeResponse) -> R {
        match self.format {
            Format::Simple => self.line(&format!("lease {} revoked", gofmt::hex016(id))),
            Format::Json => self.json(&header_only(r)),
            Format::Protobuf => {
                return Err(CtlError::new(
                    EXIT_BAD_FEATURE,
                    format!(
                    "marshal unsupported for type clientv3.LeaseRevokeResponse ({{{} {{}} [] 0}})",
                    header_text(&r.header)
                ),
                ))
            }
            Format::Fields => self.f_hdr(&r.header),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn keep_alive(&mut self, r: &LeaseKeepAliveResponse) -> R {
        match self.format {
            Format::Simple => self.line(&format!(
                "lease {} keepalived with TTL({})",
                gofmt::hex016(r.id),
                r.ttl
            )),
            Format::Json => {
                let mut o = Obj::new();
                flat_header(&mut o, &r.header);
                o.num("ID", r.id).num("TTL", r.ttl);
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(&hdr_or_default(&r.header)),
            Format::Fields => {
                self.f_hdr(&r.header);
                self.line(&format!("\"ID\" : {}", r.id));
                self.line(&format!("\"TTL\" : {}", r.ttl));
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn time_to_live(&mut self, r: &LeaseTimeToLiveResponse, keys: bool) -> R {
        match self.format {
            Format::Simple => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    self.line(&format!("lease {} already expired", gofmt::hex016(r.id)));
                    return Ok(());
                }
                let mut txt = format!(
                    "lease {} granted with TTL({}s), remaining({}s)",
                    gofmt::hex016(r.id),
                    r.granted_ttl,
                    r.ttl
                );
                let mut bytes = txt.clone().into_bytes();
                if keys {
                    txt = ", attached keys([".to_string();
                    bytes.extend_from_slice(txt.as_bytes());
                    for (i, k) in r.keys.iter().enumerate() {
                        if i > 0 {
                            bytes.push(b' ');
                        }
                        bytes.extend_from_slice(k);
                    }
                    bytes.extend_from_slice(b"])");
                }
                self.wb(&bytes);
                self.out.push(b'\n');
            }
            Format::Json => {
                let mut o = Obj::new();
                flat_header(&mut o, &r.header);
                o.num("id", r.id)
                    .num("ttl", r.ttl)
                    .num("granted-ttl", r.granted_ttl);
                if r.keys.is_empty() {
                    o.raw("keys", "null");
                } else {
                    o.raw(
                        "keys",
                        &json_array(r.keys.iter().map(|k| format!("\"{}\"", gofmt::base64(k)))),
                    );
                }
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(&hdr_or_default(&r.header)),
            Format::Fields => {
                self.f_hdr(&r.header);
                self.line(&format!("\"ID\" : {}", r.id));
                self.line(&format!("\"TTL\" : {}", r.ttl));
                self.line(&format!("\"GrantedTTL\" : {}", r.granted_ttl));
                for k in &r.keys {
                    self.line(&format!("\"Key\" : {}", quote(k)));
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn leases(&mut self, r: &LeaseLeasesResponse) -> R {
        match self.format {
            Format::Simple => {
                self.line(&format!("found {} leases", r.leases.len()));
                for l in &r.leases {
                    self.line(&gofmt::hex016(l.id));
                }
            }
            Format::Json => {
                let mut o = Obj::new();
                flat_header(&mut o, &r.header);
                o.raw(
                    "leases",
                    &json_array(r.leases.iter().map(|l| Obj::new().num("id", l.id).finish())),
                );
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(&hdr_or_default(&r.header)),
            Format::Fields => {
                self.f_hdr(&r.header);
                for l in &r.leases {
                    self.line(&format!("\"ID\" : {}", l.id));
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    // ---------------------------------------------------------- member

    pub fn member_add(&mut self, r: &MemberAddResponse) -> R {
        match self.format {
            Format::Simple => {
                let id = r.member.as_ref().map_or(0, |m| m.id);
                let cid = hdr_or_default(&r.header).cluster_id;
                self.line(&format!("Member {id:16x} added to cluster {cid:16x}"));
            }
            Format::Json => {
                let mut o = Obj::new();
                o.raw_opt("header", j_header_opt(&r.header));
                o.raw_opt("member", r.member.as_ref().map(j_member));
                j_members(&mut o, &r.members);
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn member_change<T: HasHeader + Message>(
        &mut self,
        verb: &str,
        id: u64,
        r: &T,
        members: &[Member],
    ) -> R {
        match self.format {
            Format::Simple => {
                let cid = hdr_or_default(r.header()).cluster_id;
                self.line(&format!("Member {id:16x} {verb} cluster {cid:16x}"));
            }
            Format::Json => {
                let mut o = Obj::new();
                o.raw_opt("header", j_header_opt(r.header()));
                j_members(&mut o, members);
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn member_remove(&mut self, id: u64, r: &MemberRemoveResponse) -> R {
        self.member_change("removed from", id, r, &r.members)
    }

    pub fn member_update(&mut self, id: u64, r: &MemberUpdateResponse) -> R {
        self.member_change("updated in", id, r, &r.members)
    }

    pub fn member_promote(&mut self, id: u64, r: &MemberPromoteResponse) -> R {
        self.member_change("promoted in", id, r, &r.members)
    }

    pub fn member_list(&mut self, r: &MemberListResponse) -> R {
        let (hdr, rows) = member_table(r);
        match self.format {
            Format::Simple => {
                for row in rows {
                    self.line(&row.join(", "));
                }
            }
            Format::Json if self.hex => self.json(&member_list_hex_json(r)),
            Format::Json => {
                let mut o = Obj::new();
                o.raw_opt("header", j_header_opt(&r.header));
                j_members(&mut o, &r.members);
                self.json(&o.finish());
            }
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                self.f_hdr(&r.header);
                for m in &r.members {
                    self.line(&format!("\"ID\" : {}", m.id));
                    self.line(&format!("\"Name\" : {}", gofmt::quote_str(&m.name)));
                    for u in &m.peer_ur_ls {
                        self.line(&format!("\"PeerURL\" : {}", gofmt::quote_str(u)));
                    }
                    for u in &m.client_ur_ls {
                        self.line(&format!("\"ClientURL\" : {}", gofmt::quote_str(u)));
                    }
                    self.line(&format!("\"IsLearner\" : {}", m.is_learner));
                    self.line("");
                }
            }
            Format::Table => {
                let t = table::render(&hdr, &rows);
                self.w(&t);
            }
        }
        Ok(())
    }

    // -------------------------------------------------------- endpoint

    pub fn endpoint_health(&mut self, hs: &[EpHealth], stderr: &mut Vec<u8>) -> R {
        match self.format {
            Format::Simple => {
                for h in hs {
                    if h.error.is_empty() {
                        self.line(&format!(
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.ep, h.took
                        ));
                    } else {
                        let l = format!(
                            "{} is unhealthy: failed to commit proposal: {}\n",
                            h.ep, h.error
                        );
                        stderr.extend_from_slice(l.as_bytes());
                    }
                }
            }
            Format::Json => {
                let s = json_array(hs.iter().map(|h| {
                    Obj::new()
                        .str("endpoint", &h.ep)
                        .bool("health", h.health)
                        .str("took", &h.took)
                        .str_omit("error", &h.error)
                        .finish()
                }));
                self.json(&s);
            }
            Format::Fields => {
                for h in hs {
                    self.line(&format!("\"Endpoint\" : {}", gofmt::quote_str(&h.ep)));
                    self.line(&format!("\"Health\" : {}", h.health));
                    self.line(&format!("\"Took\" : {}", h.took));
                    self.line(&format!("\"Error\" : {}", h.error));
                    self.line("");
                }
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = hs
                    .iter()
                    .map(|h| {
                        vec![
                            h.ep.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                let t = table::render(&["endpoint", "health", "took", "error"], &rows);
                self.w(&t);
            }
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn endpoint_status(&mut self, ss: &[EpStatus]) -> R {
        let hdr = [
            "endpoint",
            "ID",
            "version",
            "db size",
            "is leader",
            "is learner",
            "raft term",
            "raft index",
            "raft applied index",
            "errors",
        ];
        let rows: Vec<Vec<String>> = ss
            .iter()
            .map(|s| {
                let h = hdr_or_default(&s.resp.header);
                vec![
                    s.ep.clone(),
                    format!("{:x}", h.member_id),
                    s.resp.version.clone(),
                    gofmt::humanize_bytes(s.resp.db_size as u64),
                    (s.resp.leader == h.member_id).to_string(),
                    s.resp.is_learner.to_string(),
                    s.resp.raft_term.to_string(),
                    s.resp.raft_index.to_string(),
                    s.resp.raft_applied_index.to_string(),
                    s.resp.errors.join(", "),
                ]
            })
            .collect();
        match self.format {
            Format::Simple => {
                for r in rows {
                    self.line(&r.join(", "));
                }
            }
            Format::Json => {
                let s = json_array(ss.iter().map(|s| {
                    Obj::new()
                        .str("Endpoint", &s.ep)
                        .raw("Status", &j_status(&s.resp))
                        .finish()
                }));
                self.json(&s);
            }
            Format::Fields => {
                for s in ss {
                    self.f_hdr(&s.resp.header);
                    self.line(&format!(
                        "\"Version\" : {}",
                        gofmt::quote_str(&s.resp.version)
                    ));
                    self.line(&format!("\"DBSize\" : {}", s.resp.db_size));
                    self.line(&format!("\"Leader\" : {}", s.resp.leader));
                    self.line(&format!("\"IsLearner\" : {}", s.resp.is_learner));
                    self.line(&format!("\"RaftIndex\" : {}", s.resp.raft_index));
                    self.line(&format!("\"RaftTerm\" : {}", s.resp.raft_term));
                    self.line(&format!(
                        "\"RaftAppliedIndex\" : {}",
                        s.resp.raft_applied_index
                    ));
                    self.line(&format!("\"Errors\" : [{}]", s.resp.errors.join(" ")));
                    self.line(&format!("\"Endpoint\" : {}", gofmt::quote_str(&s.ep)));
                    self.line("");
                }
            }
            Format::Table => {
                let t = table::render(&hdr, &rows);
                self.w(&t);
            }
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn endpoint_hashkv(&mut self, hs: &[EpHashKv]) -> R {
        let rows: Vec<Vec<String>> = hs
            .iter()
            .map(|h| vec![h.ep.clone(), h.resp.hash.to_string()])
            .collect();
        match self.format {
            Format::Simple => {
                for r in rows {
                    self.line(&r.join(", "));
                }
            }
            Format::Json => {
                let s = json_array(hs.iter().map(|h| {
                    Obj::new()
                        .str("Endpoint", &h.ep)
                        .raw("HashKV", &j_hashkv(&h.resp))
                        .finish()
                }));
                self.json(&s);
            }
            Format::Fields => {
                for h in hs {
                    self.f_hdr(&h.resp.header);
                    self.line(&format!("\"Endpoint\" : {}", gofmt::quote_str(&h.ep)));
                    self.line(&format!("\"Hash\" : {}", h.resp.hash));
                    self.line("");
                }
            }
            Format::Table => {
                let t = table::render(&["endpoint", "hash"], &rows);
                self.w(&t);
            }
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub fn move_leader(&mut self, leader: u64, target: u64, r: &MoveLeaderResponse) -> R {
        match self.format {
            Format::Simple => self.line(&format!(
                "Leadership transferred from {leader:x} to {target:x}"
            )),
            Format::Json => self.json(&header_only(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    // ----------------------------------------------------------- alarm

    pub fn alarm(&mut self, r: &AlarmResponse) -> R {
        match self.format {
            Format::Simple => {
                for a in &r.alarms {
                    let mut s = String::new();
                    if a.member_id != 0 {
                        s.push_str(&format!("memberID:{} ", a.member_id));
                    }
                    if a.alarm != 0 {
                        s.push_str(&format!("alarm:{} ", alarm_name(a.alarm)));
                    }
                    self.line(&s);
                }
            }
            Format::Json => self.json(&j_alarm(r)),
            Format::Protobuf => self.pb(r),
            Format::Fields => {
                if r.header.is_none() {
                    // etcdctl 3.5.1 dereferences the missing header
                    return Err(CtlError::panic(
                        "runtime error: invalid memory address or nil pointer dereference",
                    ));
                }
                self.f_hdr(&r.header);
                for a in &r.alarms {
                    self.line(&format!("\"MemberID\" : {}", a.member_id));
                    self.line(&format!("\"AlarmType\" : {}", alarm_name(a.alarm)));
                    self.line("");
                }
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    /// `get --print-value-only` with another printer than simple.
    pub fn check_value_only(&mut self) -> R {
        if self.format != Format::Simple {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        self.value_only = true;
        Ok(())
    }
}

fn hex_prefixed(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 4);
    for x in b {
        s.push_str(&format!("\\x{x:02x}"));
    }
    s
}

fn member_table(r: &MemberListResponse) -> ([&'static str; 6], Vec<Vec<String>>) {
    let hdr = [
        "ID",
        "Status",
        "Name",
        "Peer Addrs",
        "Client Addrs",
        "Is Learner",
    ];
    let rows = r
        .members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    (hdr, rows)
}

/// etcdctl 3.5.1's hand-built `member list -w json --hex` (ids in hex, the
/// raft term too, no revision, "clientURLS").
fn member_list_hex_json(r: &MemberListResponse) -> String {
    let h = hdr_or_default(&r.header);
    let mut s = format!(
        "{{\"header\":{{\"cluster_id\":\"{:x}\",\"member_id\":\"{:x}\",\"raft_term\":{:x}}}",
        h.cluster_id, h.member_id, h.raft_term
    );
    let n = r.members.len();
    for (i, m) in r.members.iter().enumerate() {
        if i == 0 {
            s.push_str(",\"members\":[{\"ID\":\"");
        } else {
            s.push_str(",{\"ID\":\"");
        }
        s.push_str(&format!("{:x}", m.id));
        s.push_str(&format!("\",\"name\":\"{}\",\"peerURLs\":", m.name));
        s.push_str(&json_strs(&m.peer_ur_ls));
        s.push_str(",\"clientURLS\":");
        s.push_str(&json_strs(&m.client_ur_ls));
        s.push('}');
        if i == n - 1 {
            s.push(']');
        }
    }
    s.push('}');
    s
}

/// Go's JSON of a `[]string` (`null` when nil).
fn json_strs(v: &[String]) -> String {
    if v.is_empty() {
        "null".into()
    } else {
        json_array(v.iter().map(|s| json_string(s)))
    }
}
