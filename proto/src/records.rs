//! Records of `zookeeper.jute` used on the client port: handshake, headers, data records,
//! requests and responses. Field order is the wire order.

use bytes::{BufMut, Bytes};

use crate::jute::{DecodeError, Jute, Reader};
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

record! { pub struct Id { pub scheme: String, pub id: String } }
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
record! { pub struct SetDataRequest { pub path: String, pub data: Buffer, pub version: i32 } }
record! { pub struct GetAclRequest { pub path: String } }
record! { pub struct SetAclRequest { pub path: String, pub acl: Vec<Acl>, pub version: i32 } }
record! { pub struct GetChildrenRequest { pub path: String, pub watch: bool } }
record! { pub struct GetChildren2Request { pub path: String, pub watch: bool } }
record! { pub struct SyncRequest { pub path: String } }
record! { pub struct CheckVersionRequest { pub path: String, pub version: i32 } }
record! { pub struct CheckWatchesRequest { pub path: String, pub watcher_type: i32 } }
record! { pub struct RemoveWatchesRequest { pub path: String, pub watcher_type: i32 } }
record! { pub struct DeleteContainerRequest { pub path: String } }
record! { pub struct AuthPacket { pub auth_type: i32, pub scheme: String, pub auth: Buffer } }
record! {
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}
record! {
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}
record! { pub struct GetEphemeralsRequest { pub prefix_path: String } }
record! { pub struct GetAllChildrenNumberRequest { pub path: String } }
record! { pub struct AddWatchRequest { pub path: String, pub mode: i32 } }
record! {
    pub struct ReconfigRequest {
        pub joining_servers: String,
        pub leaving_servers: String,
        pub new_members: String,
        pub cur_config_id: i64,
    }
}
record! { pub struct GetSaslRequest { pub token: Buffer } }

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
