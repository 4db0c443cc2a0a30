//! Service registration and discovery: each instance is an ephemeral node
//! `<base>/<service>/<instance>` holding its address; clients list and watch the children.

use bytes::Bytes;

use crate::error::Result;
use crate::recipes::child_path;
use crate::watch::Watch;
use crate::{Acl, CreateMode, ZooKeeper};

/// A registry rooted at a base path (e.g. `/services`).
#[derive(Debug, Clone)]
pub struct ServiceRegistry {
    zk: ZooKeeper,
    base: String,
}

/// One discovered instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub data: Bytes,
}

impl ServiceRegistry {
    pub fn new(zk: ZooKeeper, base: &str) -> ServiceRegistry {
        ServiceRegistry { zk, base: base.to_owned() }
    }

    fn service_path(&self, service: &str) -> String {
        child_path(&self.base, service)
    }

    /// Registers `id` of `service` with `data`; the registration lives as long as the session.
    pub async fn register(&self, service: &str, id: &str, data: &[u8]) -> Result<String> {
        let dir = self.service_path(service);
        self.zk.ensure_path(&dir).await?;
        self.zk.create(&child_path(&dir, id), data, &Acl::open_unsafe(), CreateMode::Ephemeral, None).await
    }

    /// Removes a registration.
    pub async fn unregister(&self, service: &str, id: &str) -> Result<()> {
        self.zk.delete(&child_path(&self.service_path(service), id), -1).await
    }

    async fn read(&self, dir: &str, mut ids: Vec<String>) -> Result<Vec<Instance>> {
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.zk.get_data(&child_path(dir, &id)).await {
                Ok((data, _)) => out.push(Instance { id, data }),
                Err(e) if e.code() == crate::Code::NoNode => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The live instances of `service`, sorted by id.
    pub async fn discover(&self, service: &str) -> Result<Vec<Instance>> {
        let dir = self.service_path(service);
        match self.zk.get_children(&dir).await {
            Ok(ids) => self.read(&dir, ids).await,
            Err(e) if e.code() == crate::Code::NoNode => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The live instances plus a watch that fires when the set changes.
    pub async fn discover_w(&self, service: &str) -> Result<(Vec<Instance>, Watch)> {
        let dir = self.service_path(service);
        self.zk.ensure_path(&dir).await?;
        let (ids, watch) = self.zk.get_children_w(&dir).await?;
        Ok((self.read(&dir, ids).await?, watch))
    }

    /// Waits until the instance set of `service` differs from `known`, and returns the new set.
    pub async fn wait_for_change(&self, service: &str, known: &[Instance]) -> Result<Vec<Instance>> {
        loop {
            let (now, watch) = self.discover_w(service).await?;
            if now != known {
                return Ok(now);
            }
            watch.changed().await?;
        }
    }
}
