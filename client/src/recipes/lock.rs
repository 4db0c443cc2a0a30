//! A distributed lock: each contender creates an ephemeral-sequential node under the lock
//! directory; the lowest sequence holds the lock, every other contender watches only its
//! immediate predecessor (no herd effect).

use crate::error::Result;
use crate::recipes::{child_path, name_of, sorted_children, wait_deleted};
use crate::{Acl, CreateMode, ZooKeeper};

const PREFIX: &str = "lock-";

/// A lock on a directory node. Holding it is tied to the session: if the session ends, the
/// node disappears and the next contender gets the lock.
#[derive(Debug)]
pub struct DistributedLock {
    zk: ZooKeeper,
    dir: String,
    node: Option<String>,
}

impl DistributedLock {
    /// A lock rooted at `dir` (created, with parents, on first use).
    pub fn new(zk: ZooKeeper, dir: &str) -> DistributedLock {
        DistributedLock { zk, dir: dir.to_owned(), node: None }
    }

    /// Our lock node's path while we hold or wait for the lock.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    async fn enqueue(&mut self) -> Result<String> {
        if let Some(node) = &self.node {
            return Ok(node.clone());
        }
        self.zk.ensure_path(&self.dir).await?;
        let prefix = child_path(&self.dir, PREFIX);
        let node =
            self.zk.create(&prefix, &[], &Acl::open_unsafe(), CreateMode::EphemeralSequential, None).await?;
        self.node = Some(node.clone());
        Ok(node)
    }

    /// The contender just ahead of us, or `None` if we are first.
    async fn predecessor(&self, node: &str) -> Result<Option<String>> {
        let kids = sorted_children(&self.zk, &self.dir, PREFIX).await?;
        let me = name_of(node);
        let Some(pos) = kids.iter().position(|k| k == me) else {
            return Err(crate::Error::keeper(crate::Code::NoNode, Some(node)));
        };
        Ok(if pos == 0 { None } else { Some(child_path(&self.dir, &kids[pos - 1])) })
    }

    /// Waits until the lock is ours.
    pub async fn acquire(&mut self) -> Result<()> {
        let node = self.enqueue().await?;
        while let Some(pred) = self.predecessor(&node).await? {
            wait_deleted(&self.zk, &pred).await?;
        }
        Ok(())
    }

    /// Takes the lock only if nobody holds it; returns whether we got it.
    pub async fn try_acquire(&mut self) -> Result<bool> {
        let node = self.enqueue().await?;
        if self.predecessor(&node).await?.is_none() {
            return Ok(true);
        }
        self.release().await?;
        Ok(false)
    }

    /// Releases the lock (or leaves the queue).
    pub async fn release(&mut self) -> Result<()> {
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
