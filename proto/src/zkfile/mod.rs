//! Apache ZooKeeper's on-disk files (3.5-3.9) as pure data: `version-2/snapshot.*`
//! (`FileSnap`) and `version-2/log.*` (`FileTxnLog`) bytes ⇄ records. No I/O: callers read the
//! files. Used by the server's import/export (`server/src/zkformat/`) and by fkload, which
//! replays ZooKeeper logs and starts runs from a snapshot's tree.
//!
//! - [`snap`]: a ZooKeeper snapshot's bytes ⇄ [`ZkState`].
//! - [`log`]: a ZooKeeper log file's bytes → txns, with ZooKeeper's end-of-data rules.
//!
//! Nothing here panics on corrupt input: every read is bounds-checked and a failure names the
//! byte offset where the bytes stopped making sense.

pub mod log;
pub mod snap;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::{Acl, StatPersisted};

/// `ZooDefs.Perms.ALL`.
pub const PERMS_ALL: i32 = 31;
/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER` (Long.MIN_VALUE).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// `EphemeralType.EXTENDED_MASK`: an owner with these bits all set is a TTL node's.
pub const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;

/// One znode as ZooKeeper's `DataNode` holds it (ACL resolved from the ACL cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkNode {
    pub data: Option<Bytes>,
    pub acl: Vec<Acl>,
    pub stat: StatPersisted,
    /// Child names (not paths).
    pub children: BTreeSet<String>,
}

/// A ZooKeeper database: the tree keyed by path ("/" is the root) and the session table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZkState {
    /// `lastProcessedZxid`.
    pub zxid: i64,
    /// Session id → timeout in ms.
    pub sessions: BTreeMap<i64, i32>,
    pub nodes: BTreeMap<String, ZkNode>,
}

impl ZkState {
    /// The nodes reachable from the root, parents before children (what ZooKeeper would
    /// serialize; a node orphaned by a replayed delete of its parent is not reachable).
    pub fn reachable(&self) -> Vec<(&str, &ZkNode)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<String> = vec!["/".to_owned()];
        while let Some(path) = stack.pop() {
            let Some((key, node)) = self.nodes.get_key_value(path.as_str()) else { continue };
            out.push((key.as_str(), node));
            for child in node.children.iter().rev() {
                stack.push(child_path(key, child));
            }
        }
        out
    }
}

/// `parent` + "/" + `name`, with the root's children as "/name".
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

/// ZooKeeper's split of a path at its last '/': (parent, child name); the root's children
/// have the parent "/" (ZooKeeper's "" alias of the root). None for a path without '/'.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// `world:anyone` with every permission: the ACL ZooKeeper's cache keeps as id -1.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl::new(PERMS_ALL, "world", "anyone")]
}

/// Adler-32 (`java.util.zip.Adler32`), which ZooKeeper uses for log records and snapshots.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 is the most bytes that can be summed before b may overflow a u32.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Parses the hex zxid of a ZooKeeper file name `<prefix>.<hex>[.<ext>]` (`Util.getZxidFromName`).
pub fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    u64::from_str_radix(parts.next()?, 16).ok().map(|v| v as i64)
}

#[cfg(test)]
mod basics {
    use super::*;

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let long = vec![0xffu8; 100_000];
        // Reference computed with zlib.adler32(b'\xff' * 100000).
        assert_eq!(adler32(&long), 0x149a_302c_u32);
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(zxid_from_name("snapshot.1a", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("snapshot.1a.gz", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("log.1a", "snapshot"), None);
        assert_eq!(zxid_from_name("snapshot.xyz", "snapshot"), None);
        assert_eq!(split_path("/a"), Some(("/", "a")));
        assert_eq!(split_path("/a/b"), Some(("/a", "b")));
        assert_eq!(split_path("a"), None);
    }
}
