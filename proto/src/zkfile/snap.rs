//! ZooKeeper snapshot files (`FileSnap`, `SerializeUtils.deserializeSnapshot`,
//! `DataTree.deserialize`, `SnapStream`):
//!
//! ```text
//! FileHeader{magic "ZKSN", version int, dbid long}
//! sessions   count int, (id long, timeout int)*
//! ACL cache  count int, (id long, vector<ACL>)*
//! nodes      (path ustring, DataNode{data buffer, acl long, StatPersisted})*, root's path "",
//!            pre-order, ended by the path "/"
//! seal       Adler32 long of every byte before it, then the ustring "/"
//! optional   ZxidDigest{zxid long, version int, digest long} + seal      (3.6+, digest on)
//! optional   lastProcessedZxid long + seal                                (3.9+, when enabled)
//! ```
//!
//! A node's ACL is an id in the cache; -1 is `world:anyone` ALL (`OPEN_ACL_UNSAFE`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::jute::{Jute, Reader};
use crate::{Acl, StatPersisted};
use bytes::BufMut;

use super::{ZkNode, ZkState, adler32, open_acl_unsafe, split_path};

pub const MAGIC: i32 = 0x5A4B_534E; // "ZKSN"
pub const VERSION: i32 = 2;

/// Why a snapshot's bytes were refused, and at which offset.
pub type Failure = (u64, String);

fn at(r: &Reader<'_>, reason: impl Into<String>) -> Failure {
    (r.position() as u64, reason.into())
}

/// ZooKeeper's quick validity test before it tries a snapshot (`isValidCheckedStream`): at
/// least 10 bytes, ending with the ustring "/" of the seal.
pub fn looks_whole(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[bytes.len() - 5..] == [0, 0, 0, 1, b'/']
}

/// Parses an uncompressed snapshot; `zxid` is the one from its file name (ZooKeeper takes the
/// snapshot's zxid from the name, not from the content).
pub fn decode(bytes: &[u8], zxid: i64) -> Result<ZkState, Failure> {
    let mut r = Reader::new(bytes);
    let magic = r.read_i32().map_err(|e| at(&r, format!("file header: {e}")))?;
    if magic != MAGIC {
        return Err((0, format!("not a ZooKeeper snapshot (magic {magic:#010x}, expected ZKSN)")));
    }
    let _version = r.read_i32().map_err(|e| at(&r, format!("file header: {e}")))?;
    let _dbid = r.read_i64().map_err(|e| at(&r, format!("file header: {e}")))?;
    let mut state = ZkState { zxid, ..ZkState::default() };
    let count = r.read_i32().map_err(|e| at(&r, format!("session count: {e}")))?;
    for _ in 0..count.max(0) {
        let id = r.read_i64().map_err(|e| at(&r, format!("session: {e}")))?;
        let timeout = r.read_i32().map_err(|e| at(&r, format!("session: {e}")))?;
        state.sessions.insert(id, timeout);
    }
    let acls = read_acl_cache(&mut r)?;
    read_nodes(&mut r, &acls, &mut state)?;
    check_seal(bytes, &mut r)?;
    // ZxidDigest (20 bytes) and its seal (13), when the writer had digests on.
    if r.remaining() >= 20 + 13 {
        r.read_i64()
            .and_then(|_| r.read_i32())
            .and_then(|_| r.read_i64())
            .map_err(|e| at(&r, e.to_string()))?;
        check_seal(bytes, &mut r)?;
        // lastProcessedZxid (8 bytes) and its seal (3.9 with serializeLastProcessedZxid).
        if r.remaining() >= 8 + 13 {
            r.read_i64().map_err(|e| at(&r, e.to_string()))?;
            check_seal(bytes, &mut r)?;
        }
    }
    Ok(state)
}

fn read_acl_cache(r: &mut Reader<'_>) -> Result<BTreeMap<i64, Vec<Acl>>, Failure> {
    let mut acls = BTreeMap::new();
    let count = r.read_i32().map_err(|e| at(r, format!("ACL cache count: {e}")))?;
    for _ in 0..count.max(0) {
        let id = r.read_i64().map_err(|e| at(r, format!("ACL cache: {e}")))?;
        let offset = r.position();
        let list = r.read_vec::<Acl>().map_err(|e| at(r, format!("ACL cache: {e}")))?;
        let Some(list) = list else {
            return Err((offset as u64, format!("ACL cache entry {id} has no ACL vector")));
        };
        acls.insert(id, list);
    }
    Ok(acls)
}

fn read_nodes(
    r: &mut Reader<'_>,
    acls: &BTreeMap<i64, Vec<Acl>>,
    state: &mut ZkState,
) -> Result<(), Failure> {
    loop {
        let offset = r.position() as u64;
        let path = r.read_ustring().map_err(|e| at(r, format!("node path: {e}")))?;
        let Some(path) = path else { return Err((offset, "null node path".into())) };
        if path == "/" {
            break;
        }
        let data = r.read_buffer().map_err(|e| at(r, format!("node {path:?} data: {e}")))?;
        let acl_id = r.read_i64().map_err(|e| at(r, format!("node {path:?} ACL: {e}")))?;
        let stat = StatPersisted::read(r).map_err(|e| at(r, format!("node {path:?} stat: {e}")))?;
        let acl = if acl_id == -1 {
            open_acl_unsafe()
        } else {
            match acls.get(&acl_id) {
                Some(acl) => acl.clone(),
                None => return Err((offset, format!("node {path:?} refers to unknown ACL id {acl_id}"))),
            }
        };
        let node = ZkNode { data, acl, stat, children: BTreeSet::new() };
        if path.is_empty() {
            // The root keeps the children already attached to "/" (none: it comes first).
            let children = state.nodes.remove("/").map(|n| n.children).unwrap_or_default();
            state.nodes.insert("/".to_owned(), ZkNode { children, ..node });
            continue;
        }
        let Some((parent, name)) = split_path(&path) else {
            return Err((offset, format!("node path {path:?} has no '/'")));
        };
        let name = name.to_owned();
        let Some(parent_node) = state.nodes.get_mut(parent) else {
            return Err((offset, format!("node {path:?} comes before its parent {parent:?}")));
        };
        parent_node.children.insert(name);
        state.nodes.insert(path, node);
    }
    if !state.nodes.contains_key("/") {
        return Err((r.position() as u64, "no root node".into()));
    }
    Ok(())
}

/// `SnapStream.checkSealIntegrity`: the Adler32 of every byte before the seal, then "/".
fn check_seal(bytes: &[u8], r: &mut Reader<'_>) -> Result<(), Failure> {
    let offset = r.position();
    let expected = adler32(bytes.get(..offset).unwrap_or_default());
    let value = r.read_i64().map_err(|e| at(r, format!("checksum: {e}")))?;
    let _slash = r.read_ustring().map_err(|e| at(r, format!("checksum: {e}")))?;
    if value != i64::from(expected) {
        return Err((
            offset as u64,
            format!("checksum mismatch (stored {value:#x}, computed {expected:#x} over bytes 0..{offset})"),
        ));
    }
    Ok(())
}

/// Writes `state` as ZooKeeper 3.8 writes a snapshot with digests off: header, sessions, ACL
/// cache, nodes in pre-order, seal. ZooKeeper reads it back (the digest part is optional).
pub fn encode(state: &ZkState) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * 1024);
    out.put_i32(MAGIC);
    out.put_i32(VERSION);
    out.put_i64(-1);
    out.put_i32(state.sessions.len() as i32);
    for (id, timeout) in &state.sessions {
        out.put_i64(*id);
        out.put_i32(*timeout);
    }
    let nodes = state.reachable();
    // The ACL cache: each distinct ACL list once, keyed by its encoding (ids from 1).
    let mut ids: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut cache: Vec<Vec<u8>> = Vec::new();
    let mut acl_ids = Vec::with_capacity(nodes.len());
    for (_, node) in &nodes {
        let mut encoded = Vec::new();
        node.acl.write(&mut encoded);
        let next = cache.len() as i64 + 1;
        let id = *ids.entry(encoded.clone()).or_insert_with(|| {
            cache.push(encoded);
            next
        });
        acl_ids.push(id);
    }
    out.put_i32(cache.len() as i32);
    for (index, encoded) in cache.iter().enumerate() {
        out.put_i64(index as i64 + 1);
        out.extend_from_slice(encoded);
    }
    for ((path, node), acl_id) in nodes.iter().zip(acl_ids) {
        let path = if *path == "/" { "" } else { path };
        path.to_owned().write(&mut out);
        node.data.write(&mut out);
        out.put_i64(acl_id);
        node.stat.write(&mut out);
    }
    "/".to_owned().write(&mut out);
    let sum = adler32(&out);
    out.put_i64(i64::from(sum));
    "/".to_owned().write(&mut out);
    out
}
