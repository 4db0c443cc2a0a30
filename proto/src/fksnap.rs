//! ferrokeeper's own snapshot file (`<dataDir>/fk-snap/snapshot.<zxid>`, `docs/txlog-format.md`)
//! as pure data: the records in it. The server writes and restores it (`server/src/txlog/snapshot.rs`);
//! fkload reads it to start a run from a snapshot's tree.
//!
//! ```text
//! snapshot = header(32) body trailer(8)
//! header   = "FKSN" | version u32 | zxid i64 | reserved[12] | crc32c u32 (of bytes 0..28)
//! body     = session_count i32 | (session_id i64, timeout i32)*
//!            node_count i64   | (path ustring, data buffer, acl vector<ACL>, StatPersisted)*
//! trailer  = crc32c u32 (of body) | "FKSE"
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::jute::{Jute, Reader};
use crate::{Acl, StatPersisted};

pub const MAGIC: [u8; 4] = *b"FKSN";
pub const END: [u8; 4] = *b"FKSE";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 32;

/// One node record: path, data, ACL, stat.
pub type NodeRecord = (String, Option<Bytes>, Vec<Acl>, StatPersisted);

/// A decoded snapshot: its zxid, the session table (id → timeout ms) and the nodes in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub zxid: i64,
    pub sessions: BTreeMap<i64, i32>,
    pub nodes: Vec<NodeRecord>,
}

/// Parses a snapshot file's bytes (checksums checked) into its records.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_BYTES + 8 {
        return Err(format!("too short ({} bytes)", bytes.len()));
    }
    if bytes[0..4] != MAGIC {
        return Err("bad magic: not a ferrokeeper snapshot".into());
    }
    let header_crc = u32::from_be_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
    if header_crc != crc32c::crc32c(&bytes[0..28]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version != VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let mut zxid_bytes = [0u8; 8];
    zxid_bytes.copy_from_slice(&bytes[8..16]);
    let zxid = i64::from_be_bytes(zxid_bytes);
    let trailer = bytes.len() - 8;
    if bytes[trailer + 4..] != END {
        return Err("missing end marker (incomplete file)".into());
    }
    let body = &bytes[HEADER_BYTES..trailer];
    let body_crc =
        u32::from_be_bytes([bytes[trailer], bytes[trailer + 1], bytes[trailer + 2], bytes[trailer + 3]]);
    if body_crc != crc32c::crc32c(body) {
        return Err("body checksum mismatch".into());
    }
    let mut r = Reader::new(body);
    let fail = |e: crate::DecodeError| format!("undecodable body: {e}");
    let session_count = r.read_i32().map_err(fail)?;
    let mut sessions = BTreeMap::new();
    for _ in 0..session_count.max(0) {
        let id = r.read_i64().map_err(fail)?;
        let timeout = r.read_i32().map_err(fail)?;
        sessions.insert(id, timeout);
    }
    let node_count = r.read_i64().map_err(fail)?;
    let mut nodes = Vec::with_capacity(node_count.clamp(0, 1 << 20) as usize);
    for _ in 0..node_count.max(0) {
        let path = String::read(&mut r).map_err(fail)?;
        let data: Option<Bytes> = Jute::read(&mut r).map_err(fail)?;
        let acl: Vec<Acl> = Jute::read(&mut r).map_err(fail)?;
        let stat = StatPersisted::read(&mut r).map_err(fail)?;
        nodes.push((path, data, acl, stat));
    }
    if r.remaining() != 0 {
        return Err(format!("{} unexpected bytes after the nodes", r.remaining()));
    }
    Ok(Snapshot { zxid, sessions, nodes })
}
