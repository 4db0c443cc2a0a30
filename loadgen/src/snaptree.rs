//! A run or a replay that starts from a snapshot's tree (`--tree-from FILE`) instead of the
//! synthetic `/fkload/d*/k*` tree: an Apache ZooKeeper snapshot (`version-2/snapshot.*`) or a
//! ferrokeeper one (`fk-snap/snapshot.*`), read with the parsers the server uses
//! (`ferrokeeper_proto::zkfile::snap`, `ferrokeeper_proto::fksnap`).
//!
//! The snapshot's nodes are created on the target with their data, parents first; left out are
//! the root, `/zookeeper` and its subtree (the server's own) and ephemeral nodes (their sessions
//! are gone). Containers and TTL nodes are created as persistent nodes (a container without
//! children would be reaped at once). ACLs are not copied: everything is `world:anyone`, so the
//! load generator can use every node. A `fkload run` then uses the snapshot's leaves as its keys
//! and its inner nodes as the directories `children` lists.

use std::path::Path;

use bytes::Bytes;
use ferrokeeper_client::{Acl, CreateMode, ZooKeeper};
use ferrokeeper_proto::{fksnap, zkfile};
use tokio::task::JoinSet;

use crate::run::Tree;

/// One node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapNode {
    pub path: String,
    pub data: Bytes,
    pub has_children: bool,
}

/// Which format a snapshot file is in and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub format: &'static str,
    pub zxid: i64,
    /// Nodes to create, parents before children.
    pub nodes: Vec<SnapNode>,
    /// Nodes of the snapshot not created (root, `/zookeeper`, ephemerals).
    pub left_out: usize,
}

/// Reads a ZooKeeper or ferrokeeper snapshot (told apart by their magic).
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    // (path, data, ephemeralOwner) in the snapshot's order.
    let (format, zxid, raw): (&'static str, i64, Vec<RawNode>) = if bytes.starts_with(&fksnap::MAGIC) {
        let snap = fksnap::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let raw = snap.nodes.into_iter().map(|(p, d, _, stat)| (p, d, stat.ephemeral_owner)).collect();
        ("ferrokeeper", snap.zxid, raw)
    } else if bytes.starts_with(&zkfile::snap::MAGIC.to_be_bytes()) {
        let zxid = zkfile::zxid_from_name(name, "snapshot").unwrap_or(0);
        let state = zkfile::snap::decode(&bytes, zxid)
            .map_err(|(offset, why)| anyhow::anyhow!("{}: at offset {offset}: {why}", path.display()))?;
        let raw = state
            .reachable()
            .into_iter()
            .map(|(p, n)| (p.to_owned(), n.data.clone(), n.stat.ephemeral_owner))
            .collect();
        ("zookeeper", zxid, raw)
    } else {
        anyhow::bail!("{}: neither a ZooKeeper (ZKSN) nor a ferrokeeper (FKSN) snapshot", path.display());
    };
    Ok(select(format, zxid, raw))
}

/// A snapshot's node as far as a run needs it: path, data, ephemeralOwner.
type RawNode = (String, Option<Bytes>, i64);

fn select(format: &'static str, zxid: i64, raw: Vec<RawNode>) -> Loaded {
    let total = raw.len();
    let kept: Vec<(String, Bytes)> = raw
        .into_iter()
        .filter(|(path, _, owner)| {
            let server_own = path == "/" || path == "/zookeeper" || path.starts_with("/zookeeper/");
            // Session-owned: a positive-bit owner that is neither a container's nor a TTL's.
            let ephemeral = *owner != 0
                && *owner != zkfile::CONTAINER_OWNER
                && (*owner & zkfile::EXTENDED_MASK) != zkfile::EXTENDED_MASK;
            !server_own && !ephemeral
        })
        .map(|(path, data, _)| (path, data.unwrap_or_default()))
        .collect();
    let mut nodes: Vec<SnapNode> =
        kept.into_iter().map(|(path, data)| SnapNode { path, data, has_children: false }).collect();
    // Parents first (by depth, then path), so creating level by level always finds the parent.
    nodes.sort_by(|a, b| depth(&a.path).cmp(&depth(&b.path)).then_with(|| a.path.cmp(&b.path)));
    let parents: std::collections::HashSet<&str> =
        nodes.iter().filter_map(|n| n.path.rfind('/').filter(|&i| i > 0).map(|i| &n.path[..i])).collect();
    let has: Vec<bool> = nodes.iter().map(|n| parents.contains(n.path.as_str())).collect();
    for (node, has) in nodes.iter_mut().zip(has) {
        node.has_children = has;
    }
    let left_out = total - nodes.len();
    Loaded { format, zxid, nodes, left_out }
}

fn depth(path: &str) -> usize {
    path.bytes().filter(|&b| b == b'/').count()
}

/// The keys (leaves) and directories (inner nodes) a run uses.
pub fn run_tree(loaded: &Loaded) -> anyhow::Result<Tree> {
    let keys: Vec<String> = loaded.nodes.iter().filter(|n| !n.has_children).map(|n| n.path.clone()).collect();
    let mut dirs: Vec<String> =
        loaded.nodes.iter().filter(|n| n.has_children).map(|n| n.path.clone()).collect();
    anyhow::ensure!(
        !keys.is_empty(),
        "the snapshot holds no node a run could use (only /zookeeper, ephemerals?)"
    );
    if dirs.is_empty() {
        dirs.push("/".to_owned());
    }
    Ok(Tree { keys, dirs, missing: Vec::new() })
}

/// Creates the nodes on the target, one depth level at a time, up to 512 creates in flight;
/// nodes that exist already are left as they are. Returns the creates sent.
pub async fn create(zk: &ZooKeeper, loaded: &Loaded) -> anyhow::Result<u64> {
    let mut sent = 0u64;
    let mut start = 0;
    while start < loaded.nodes.len() {
        let level = depth(&loaded.nodes[start].path);
        let end = loaded.nodes[start..]
            .iter()
            .position(|n| depth(&n.path) != level)
            .map_or(loaded.nodes.len(), |k| start + k);
        for chunk in loaded.nodes[start..end].chunks(512) {
            let mut set = JoinSet::new();
            for node in chunk {
                let zk = zk.clone();
                let node = node.clone();
                set.spawn(async move {
                    match zk
                        .create(&node.path, &node.data, &Acl::open_unsafe(), CreateMode::Persistent, None)
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) if e.code() == ferrokeeper_client::Code::NodeExists => Ok(()),
                        Err(e) => Err(anyhow::anyhow!("creating {}: {e}", node.path)),
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r??;
            }
            sent += chunk.len() as u64;
        }
        start = end;
    }
    Ok(sent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selects_parents_first_without_server_nodes_or_ephemerals() {
        let raw = vec![
            ("/".to_owned(), None, 0),
            ("/zookeeper".to_owned(), None, 0),
            ("/zookeeper/quota".to_owned(), None, 0),
            ("/app/b/c".to_owned(), Some(Bytes::from_static(b"x")), 0),
            ("/app".to_owned(), None, 0),
            ("/app/b".to_owned(), None, 0),
            ("/app/eph".to_owned(), None, 0x1234),
            ("/app/cont".to_owned(), None, zkfile::CONTAINER_OWNER),
            ("/app/ttl".to_owned(), None, zkfile::EXTENDED_MASK | 1000),
        ];
        let l = select("test", 5, raw);
        let paths: Vec<&str> = l.nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["/app", "/app/b", "/app/cont", "/app/ttl", "/app/b/c"]);
        assert_eq!(l.left_out, 4);
        let t = run_tree(&l).unwrap();
        assert_eq!(t.keys, ["/app/cont", "/app/ttl", "/app/b/c"]);
        assert_eq!(t.dirs, ["/app", "/app/b"]);
    }
}
