//! Leader election: every candidate creates an ephemeral-sequential node; the lowest is the
//! leader, and each follower watches its predecessor to learn when it may have become leader.

use bytes::Bytes;

use crate::error::Result;
use crate::recipes::{child_path, name_of, sorted_children, wait_deleted};
use crate::{Acl, CreateMode, ZooKeeper};

const PREFIX: &str = "n_";

/// One candidate in an election held under a directory node.
#[derive(Debug)]
pub struct LeaderElection {
    zk: ZooKeeper,
    dir: String,
    node: Option<String>,
}

impl LeaderElection {
    pub fn new(zk: ZooKeeper, dir: &str) -> LeaderElection {
        LeaderElection { zk, dir: dir.to_owned(), node: None }
    }

    /// Enters the election with `data` (e.g. this candidate's address).
    pub async fn volunteer(&mut self, data: &[u8]) -> Result<String> {
        if let Some(node) = &self.node {
            return Ok(node.clone());
        }
        self.zk.ensure_path(&self.dir).await?;
        let prefix = child_path(&self.dir, PREFIX);
        let node =
            self.zk.create(&prefix, data, &Acl::open_unsafe(), CreateMode::EphemeralSequential, None).await?;
        self.node = Some(node.clone());
        Ok(node)
    }

    /// Whether this candidate currently leads.
    pub async fn is_leader(&self) -> Result<bool> {
        let Some(node) = &self.node else { return Ok(false) };
        let kids = sorted_children(&self.zk, &self.dir, PREFIX).await?;
        Ok(kids.first().map(String::as_str) == Some(name_of(node)))
    }

    /// Waits until this candidate is the leader (call [`LeaderElection::volunteer`] first).
    pub async fn wait_for_leadership(&self) -> Result<()> {
        let Some(node) = &self.node else {
            return Err(crate::Error::BadArguments("volunteer before waiting for leadership".into()));
        };
        loop {
            let kids = sorted_children(&self.zk, &self.dir, PREFIX).await?;
            let me = name_of(node);
            let Some(pos) = kids.iter().position(|k| k == me) else {
                return Err(crate::Error::keeper(crate::Code::NoNode, Some(node)));
            };
            if pos == 0 {
                return Ok(());
            }
            wait_deleted(&self.zk, &child_path(&self.dir, &kids[pos - 1])).await?;
        }
    }

    /// The current leader's node path and data, if anyone volunteered.
    pub async fn leader(&self) -> Result<Option<(String, Bytes)>> {
        loop {
            let kids = sorted_children(&self.zk, &self.dir, PREFIX).await?;
            let Some(first) = kids.first() else { return Ok(None) };
            let path = child_path(&self.dir, first);
            match self.zk.get_data(&path).await {
                Ok((data, _)) => return Ok(Some((path, data))),
                Err(e) if e.code() == crate::Code::NoNode => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Leaves the election (giving up leadership if held).
    pub async fn resign(&mut self) -> Result<()> {
        if let Some(node) = self.node.take() {
            match self.zk.delete(&node, -1).await {
                Ok(()) => {}
                Err(e) if e.code() == crate::Code::NoNode => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
