//! Config watch: follow one node's data, being told of every change (including the node
//! being created or deleted).

use bytes::Bytes;

use crate::error::Result;
use crate::{EventType, KeeperState, Stat, ZooKeeper};

/// Watches one configuration node.
#[derive(Debug)]
pub struct ConfigWatcher {
    zk: ZooKeeper,
    path: String,
    last: Option<(Bytes, i64)>,
}

impl ConfigWatcher {
    pub fn new(zk: ZooKeeper, path: &str) -> ConfigWatcher {
        ConfigWatcher { zk, path: path.to_owned(), last: None }
    }

    /// The current value (`None` when the node does not exist).
    pub async fn get(&mut self) -> Result<Option<Bytes>> {
        let value = self.read().await?;
        self.last = value.as_ref().map(|(d, s)| (d.clone(), s.mzxid));
        Ok(value.map(|(d, _)| d))
    }

    async fn read(&self) -> Result<Option<(Bytes, Stat)>> {
        match self.zk.get_data(&self.path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == crate::Code::NoNode => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the next change after the value last returned and returns the new value.
    pub async fn changed(&mut self) -> Result<Option<Bytes>> {
        loop {
            // exists_w watches creation, deletion and data changes alike.
            let (stat, watch) = self.zk.exists_w(&self.path).await?;
            let current = match stat {
                Some(_) => self.read().await?,
                None => None,
            };
            let marker = current.as_ref().map(|(d, s)| (d.clone(), s.mzxid));
            if marker != self.last {
                self.last = marker;
                return Ok(current.map(|(d, _)| d));
            }
            let event = watch.changed().await?;
            if event.event_type == EventType::None && event.state != KeeperState::SyncConnected {
                return Err(crate::Error::keeper(crate::Code::SessionExpired, Some(&self.path)));
            }
        }
    }
}
