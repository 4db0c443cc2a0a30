//! Records of `zookeeper.jute` used on the client port: handshake, headers, data records,
//! requests and responses. Field order is the wire order.
//!
//! # Null strings and buffers
//!
//! Jute strings, buffers and vectors may be null (length -1), and clients send them: kazoo
//! writes every empty string as null (its `CREATOR_ALL_ACL` id among them), the Java client
//! sends null data and null reconfig member lists. What ZooKeeper 3.8 does with a null in each
//! request field, and how it is read here so the answer is the same:
//!
//! | Field | ZooKeeper | Read as |
//! |---|---|---|
//! | ACL `Id.id` of scheme `auth` | never read (`fixupACL` expands `auth` to the caller's ids) | `""` |
//! | ACL `Id.id` of another scheme | `world`, `digest`, `ip`, `x509` dereference it: MarshallingError | decode error (MarshallingError) |
//! | ACL `Id.scheme` | InvalidACL | `""` (no such scheme: InvalidACL) |
//! | ACL vector (count -1) | treated as empty: InvalidACL | empty |
//! | `data` of create, setData | kept: getData answers null data, `dataLength` 0 | `None` |
//! | `path` of create\*, delete, exists, getData, getACL, getChildren(2), getAllChildrenNumber | dereferenced: MarshallingError | decode error (MarshallingError) |
//! | `path` of setData, setACL, check (also in a multi) | `PathUtils.validatePath`: BadArguments | `""` (BadArguments) |
//! | `path` of sync | echoed in the reply | `""` (echoed as `""`) |
//! | `prefixPath` of getEphemerals | null, empty and `/` all mean every ephemeral | `""` |
//! | `path` of addWatch, checkWatches, removeWatches | a key in a HashMap: no watch there (NoWatcher) | `""` (no watch there) |
//! | `joiningServers`, `leavingServers`, `newMembers` of reconfig | null means "not given" | `""` |
//! | a path in setWatches(2), or a path list (count -1) | iterated, dereferenced: MarshallingError | decode error (MarshallingError) |
//! | `scheme` of auth | no provider for it: AuthFailed, connection closed | `""` (same) |
//! | `auth` of auth | `digest` dereferences it: AuthFailed, connection closed; `ip` ignores it | `None` |
//! | `passwd` of ConnectRequest | ignored for a new session, a wrong password on reconnect | `None` |
//!
//! Known differences, each an error code for a request no client sends: a null id of a
//! scheme without a provider (`super`, unknown) is InvalidACL in ZooKeeper and
//! MarshallingError here; two identical `auth` entries with null ids make ZooKeeper's
//! `ACL.equals` throw (MarshallingError), here they are one entry; ZooKeeper answers sync with
//! a null path, here with `""`.

use bytes::{BufMut, Bytes};

use crate::jute::{DecodeError, Jute, Reader, read_non_null_vec, read_null_as_empty};
use crate::record;

/// A jute `buffer`: `None` is null.
pub type Buffer = Option<Bytes>;

/// The first frame a client sends. `read_only` is an optional trailing byte that old
/// clients omit; `None` records that it was absent so the reply can omit it too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Buffer,
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    const MIN_ENCODED_LEN: usize = 28;
    fn write<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.write(out);
        self.last_zxid_seen.write(out);
        self.timeout.write(out);
        self.session_id.write(out);
        self.passwd.write(out);
        if let Some(read_only) = self.read_only {
            read_only.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?;
        let read_only = if r.remaining() > 0 { Some(r.read_bool()?) } else { None };
        Ok(ConnectRequest { protocol_version, last_zxid_seen, timeout, session_id, passwd, read_only })
    }
}

/// The server's handshake reply; `read_only` is written only when the request carried it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Buffer,
    pub read_only: Option<bool>,
}

impl Jute for ConnectResponse {
    const MIN_ENCODED_LEN: usize = 20;
    fn write<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.write(out);
        self.timeout.write(out);
        self.session_id.write(out);
        self.passwd.write(out);
        if let Some(read_only) = self.read_only {
            read_only.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = r.read_i32()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?;
        let read_only = if r.remaining() > 0 { Some(r.read_bool()?) } else { None };
        Ok(ConnectResponse { protocol_version, timeout, session_id, passwd, read_only })
    }
}

record! { pub struct RequestHeader { pub xid: i32, pub op: i32 } }
record! { pub struct ReplyHeader { pub xid: i32, pub zxid: i64, pub err: i32 } }
record! { pub struct MultiHeader { pub op: i32, pub done: bool, pub err: i32 } }

record! {
    /// Node metadata as clients see it (68 bytes).
    pub struct Stat {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub data_length: i32,
        pub num_children: i32,
        pub pzxid: i64,
    }
}

record! {
    /// Node metadata as stored (Stat without the derived dataLength/numChildren).
    pub struct StatPersisted {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub pzxid: i64,
    }
}

/// An ACL or authentication identity. Decoding follows the null rules in the module table:
/// a null scheme reads as `""` (InvalidACL, as in ZooKeeper) and a null id is accepted, as
/// `""`, only where ZooKeeper never reads it (scheme `auth`, or a null scheme).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Jute for Id {
    const MIN_ENCODED_LEN: usize = 8;
    fn write<B: BufMut>(&self, out: &mut B) {
        self.scheme.write(out);
        self.id.write(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let scheme = r.read_ustring()?;
        let offset = r.position();
        let id = match (r.read_ustring()?, scheme.as_deref()) {
            (Some(id), _) => id,
            (None, None | Some("auth")) => String::new(),
            (None, Some(scheme)) => {
                return Err(DecodeError::Invalid(format!("null id of scheme {scheme} at offset {offset}")));
            }
        };
        Ok(Id { scheme: scheme.unwrap_or_default(), id })
    }
}
record! { pub struct Acl { pub perms: i32, pub id: Id } }
record! { pub struct ClientInfo { pub auth_scheme: String, pub user: String } }
record! { pub struct WatcherEvent { pub event_type: i32, pub state: i32, pub path: String } }
record! { pub struct ErrorResponse { pub err: i32 } }

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.to_owned(), id: id.to_owned() }
    }
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, id: Id::new(scheme, id) }
    }

    /// `OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::op::perms::ALL, "world", "anyone")]
    }

    /// `READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::op::perms::READ, "world", "anyone")]
    }

    /// `CREATOR_ALL_ACL`.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(crate::op::perms::ALL, "auth", "")]
    }
}

// Requests.
record! { pub struct CreateRequest { pub path: String, pub data: Buffer, pub acl: Vec<Acl>, pub flags: i32 } }
record! {
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        pub flags: i32,
        pub ttl: i64,
    }
}
record! { pub struct DeleteRequest { pub path: String, pub version: i32 } }
record! { pub struct ExistsRequest { pub path: String, pub watch: bool } }
record! { pub struct GetDataRequest { pub path: String, pub watch: bool } }
record! {
    pub struct SetDataRequest { pub path: String => read_null_as_empty, pub data: Buffer, pub version: i32 }
}
record! { pub struct GetAclRequest { pub path: String } }
record! {
    pub struct SetAclRequest { pub path: String => read_null_as_empty, pub acl: Vec<Acl>, pub version: i32 }
}
record! { pub struct GetChildrenRequest { pub path: String, pub watch: bool } }
record! { pub struct GetChildren2Request { pub path: String, pub watch: bool } }
record! { pub struct SyncRequest { pub path: String => read_null_as_empty } }
record! { pub struct CheckVersionRequest { pub path: String => read_null_as_empty, pub version: i32 } }
record! { pub struct CheckWatchesRequest { pub path: String => read_null_as_empty, pub watcher_type: i32 } }
record! { pub struct RemoveWatchesRequest { pub path: String => read_null_as_empty, pub watcher_type: i32 } }
record! { pub struct DeleteContainerRequest { pub path: String } }
record! { pub struct AuthPacket { pub auth_type: i32, pub scheme: String => read_null_as_empty, pub auth: Buffer } }
record! {
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String> => read_non_null_vec,
        pub exist_watches: Vec<String> => read_non_null_vec,
        pub child_watches: Vec<String> => read_non_null_vec,
    }
}
record! {
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String> => read_non_null_vec,
        pub exist_watches: Vec<String> => read_non_null_vec,
        pub child_watches: Vec<String> => read_non_null_vec,
        pub persistent_watches: Vec<String> => read_non_null_vec,
        pub persistent_recursive_watches: Vec<String> => read_non_null_vec,
    }
}
record! { pub struct GetEphemeralsRequest { pub prefix_path: String => read_null_as_empty } }
record! { pub struct GetAllChildrenNumberRequest { pub path: String } }
record! { pub struct AddWatchRequest { pub path: String => read_null_as_empty, pub mode: i32 } }
record! {
    pub struct ReconfigRequest {
        pub joining_servers: String => read_null_as_empty,
        pub leaving_servers: String => read_null_as_empty,
        pub new_members: String => read_null_as_empty,
        pub cur_config_id: i64,
    }
}
record! { pub struct GetSaslRequest { pub token: Buffer } }
record! { pub struct SetSaslResponse { pub token: Buffer } }

// Responses.
record! { pub struct CreateResponse { pub path: String } }
record! { pub struct Create2Response { pub path: String, pub stat: Stat } }
record! { pub struct ExistsResponse { pub stat: Stat } }
record! { pub struct GetDataResponse { pub data: Buffer, pub stat: Stat } }
record! { pub struct SetDataResponse { pub stat: Stat } }
record! { pub struct GetAclResponse { pub acl: Vec<Acl>, pub stat: Stat } }
record! { pub struct SetAclResponse { pub stat: Stat } }
record! { pub struct GetChildrenResponse { pub children: Vec<String> } }
record! { pub struct GetChildren2Response { pub children: Vec<String>, pub stat: Stat } }
record! { pub struct SyncResponse { pub path: String } }
record! { pub struct GetEphemeralsResponse { pub ephemerals: Vec<String> } }
record! { pub struct GetAllChildrenNumberResponse { pub total_number: i32 } }
record! { pub struct WhoAmIResponse { pub client_info: Vec<ClientInfo> } }

#[cfg(test)]
mod null_tests {
    use super::*;
    use crate::request::{Request, RequestError};
    use crate::{op, op::perms};

    /// `int32 length | bytes`, or -1 for `None`.
    fn ustring(s: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        crate::jute::write_ustring(&mut out, s);
        out
    }

    fn acl(scheme: Option<&str>, id: Option<&str>) -> Vec<u8> {
        let mut out = perms::ALL.to_be_bytes().to_vec();
        out.extend(ustring(scheme));
        out.extend(ustring(id));
        out
    }

    /// A create body: path, data, ACL vector, flags.
    fn create_body(path: Option<&str>, data_len: i32, acls: &[Vec<u8>]) -> Vec<u8> {
        let mut out = ustring(path);
        out.extend(data_len.to_be_bytes());
        out.extend((acls.len() as i32).to_be_bytes());
        for a in acls {
            out.extend(a);
        }
        out.extend(0i32.to_be_bytes());
        out
    }

    fn malformed(op_code: i32, body: &[u8]) -> bool {
        matches!(Request::decode(op_code, body), Err(RequestError::Malformed { .. }))
    }

    #[test]
    fn creator_all_acl_with_a_null_id_is_accepted() {
        // kazoo's CREATOR_ALL_ACL: Id("auth", "") written as scheme "auth", id length -1.
        let body = create_body(Some("/n"), -1, &[acl(Some("auth"), None)]);
        let Ok(Request::Create(create)) = Request::decode(op::CREATE, &body) else {
            panic!("create with a null auth id did not decode")
        };
        assert_eq!(create.acl, Acl::creator_all());
        assert_eq!(create.data, None, "a null data buffer stays null");
        // The same in setACL and inside a multi.
        let mut set_acl = ustring(Some("/n"));
        set_acl.extend(1i32.to_be_bytes());
        set_acl.extend(acl(Some("auth"), None));
        set_acl.extend((-1i32).to_be_bytes());
        let Ok(Request::SetAcl(set)) = Request::decode(op::SET_ACL, &set_acl) else { panic!("setACL") };
        assert_eq!(set.acl, Acl::creator_all());
        let mut multi = MultiHeader { op: op::CREATE, done: false, err: -1 }.encode_to_vec();
        multi.extend(&body);
        multi.extend(MultiHeader { op: -1, done: true, err: -1 }.encode_to_vec());
        let Ok(Request::Multi(m)) = Request::decode(op::MULTI, &multi) else { panic!("multi") };
        assert_eq!(m.ops.len(), 1);
    }

    #[test]
    fn a_null_id_is_refused_where_zookeeper_reads_it() {
        for scheme in ["world", "digest", "ip", "x509"] {
            let body = create_body(Some("/n"), 0, &[acl(Some(scheme), None)]);
            assert!(malformed(op::CREATE, &body), "null id of scheme {scheme} must be malformed");
        }
        // A null scheme reads as "" (no such scheme: the tree answers InvalidACL).
        let body = create_body(Some("/n"), 0, &[acl(None, None)]);
        let Ok(Request::Create(create)) = Request::decode(op::CREATE, &body) else { panic!("null scheme") };
        assert_eq!(create.acl, vec![Acl::new(perms::ALL, "", "")]);
        // A null ACL vector is empty (InvalidACL in the tree, as ZooKeeper's removeDuplicates).
        let mut body = ustring(Some("/n"));
        body.extend(0i32.to_be_bytes());
        body.extend((-1i32).to_be_bytes());
        body.extend(0i32.to_be_bytes());
        let Ok(Request::Create(create)) = Request::decode(op::CREATE, &body) else { panic!("null acl") };
        assert!(create.acl.is_empty());
    }

    #[test]
    fn null_paths_follow_zookeeper_per_request() {
        let with_i32 = |path: Option<&str>, n: i32| {
            let mut out = ustring(path);
            out.extend(n.to_be_bytes());
            out
        };
        let with_bool = |path: Option<&str>| {
            let mut out = ustring(path);
            out.push(0);
            out
        };
        // Dereferenced by ZooKeeper: MarshallingError.
        assert!(malformed(op::CREATE, &create_body(None, 0, &[acl(Some("world"), Some("anyone"))])));
        assert!(malformed(op::DELETE, &with_i32(None, -1)));
        for read in [op::EXISTS, op::GET_DATA, op::GET_CHILDREN, op::GET_CHILDREN2] {
            assert!(malformed(read, &with_bool(None)), "op {read}");
        }
        assert!(malformed(op::GET_ACL, &ustring(None)));
        assert!(malformed(op::GET_ALL_CHILDREN_NUMBER, &ustring(None)));
        // Validated, looked up or echoed by ZooKeeper: the empty path.
        let mut set_data = ustring(None);
        set_data.extend((-1i32).to_be_bytes());
        set_data.extend((-1i32).to_be_bytes());
        let Ok(Request::SetData(r)) = Request::decode(op::SET_DATA, &set_data) else { panic!("setData") };
        assert_eq!((r.path.as_str(), r.data), ("", None));
        let Ok(Request::Check(r)) = Request::decode(op::CHECK, &with_i32(None, 1)) else { panic!("check") };
        assert_eq!(r.path, "");
        let Ok(Request::Sync(r)) = Request::decode(op::SYNC, &ustring(None)) else { panic!("sync") };
        assert_eq!(r.path, "");
        let Ok(Request::GetEphemerals(r)) = Request::decode(op::GET_EPHEMERALS, &ustring(None)) else {
            panic!("getEphemerals")
        };
        assert_eq!(r.prefix_path, "");
        for (op_code, _) in [(op::ADD_WATCH, 0), (op::CHECK_WATCHES, 1), (op::REMOVE_WATCHES, 2)] {
            assert!(Request::decode(op_code, &with_i32(None, 1)).is_ok(), "op {op_code}");
        }
    }

    #[test]
    fn null_reconfig_lists_and_auth_fields_decode() {
        // The Java client's incremental reconfig: newMembers null.
        let mut body = ustring(Some("server.4=127.0.0.1:2888:3888"));
        body.extend(ustring(None));
        body.extend(ustring(None));
        body.extend((-1i64).to_be_bytes());
        let Ok(Request::Reconfig(r)) = Request::decode(op::RECONFIG, &body) else { panic!("reconfig") };
        assert_eq!((r.leaving_servers.as_str(), r.new_members.as_str()), ("", ""));
        // kazoo's add_auth("digest", "") sends a null auth; a null scheme reads as "".
        let mut auth = 0i32.to_be_bytes().to_vec();
        auth.extend(ustring(None));
        auth.extend((-1i32).to_be_bytes());
        let Ok(Request::Auth(p)) = Request::decode(op::AUTH, &auth) else { panic!("auth") };
        assert_eq!((p.scheme.as_str(), p.auth), ("", None));
    }

    #[test]
    fn set_watches_refuses_null_paths_and_null_lists() {
        let lists = |counts: [i32; 3], element: Option<&str>| {
            let mut out = 7i64.to_be_bytes().to_vec();
            for count in counts {
                out.extend(count.to_be_bytes());
                for _ in 0..count.max(0) {
                    out.extend(ustring(element));
                }
            }
            out
        };
        assert!(Request::decode(op::SET_WATCHES, &lists([1, 0, 0], Some("/a"))).is_ok());
        assert!(malformed(op::SET_WATCHES, &lists([1, 0, 0], None)));
        assert!(malformed(op::SET_WATCHES, &lists([0, -1, 0], None)));
    }

    #[test]
    fn null_buffers_stay_null_through_a_round_trip() {
        let connect = ConnectRequest { passwd: None, ..Default::default() };
        assert_eq!(ConnectRequest::decode(&connect.encode_to_vec()), Ok(connect));
        let response = GetDataResponse { data: None, stat: Stat::default() };
        let bytes = response.encode_to_vec();
        assert_eq!(&bytes[..4], &(-1i32).to_be_bytes());
        assert_eq!(GetDataResponse::decode(&bytes), Ok(response));
    }
}
