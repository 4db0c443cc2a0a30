//! Classic ZooKeeper recipes built on [`crate::ZooKeeper`]:
//! - [`lock::DistributedLock`]: ephemeral-sequential lock, each waiter watching its predecessor.
//! - [`election::LeaderElection`]: the same ordering used to elect one leader.
//! - [`discovery::ServiceRegistry`]: ephemeral instance nodes and child-watch discovery.
//! - [`config::ConfigWatcher`]: follow one node's data as it changes.

pub mod config;
pub mod discovery;
pub mod election;
pub mod lock;

use crate::ZooKeeper;
use crate::error::Result;

/// The sequence number ZooKeeper appended to a sequential node's name (`lock-0000000007` → 7).
pub fn sequence_of(name: &str) -> Option<i64> {
    let digits = name.len().checked_sub(10)?;
    name.get(digits..)?.parse().ok()
}

/// Children of `dir` whose names start with `prefix`, ordered by sequence number.
pub(crate) async fn sorted_children(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<Vec<String>> {
    let mut kids: Vec<String> =
        zk.get_children(dir).await?.into_iter().filter(|c| c.starts_with(prefix)).collect();
    kids.sort_by_key(|c| sequence_of(c).unwrap_or(i64::MAX));
    Ok(kids)
}

pub(crate) fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") }
}

pub(crate) fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Waits until `path` is gone (returns at once if it does not exist).
pub(crate) async fn wait_deleted(zk: &ZooKeeper, path: &str) -> Result<()> {
    loop {
        let (stat, watch) = zk.exists_w(path).await?;
        if stat.is_none() {
            return Ok(());
        }
        let event = watch.changed().await?;
        if event.event_type == crate::EventType::NodeDeleted {
            return Ok(());
        }
        if event.event_type == crate::EventType::None
            && !matches!(event.state, crate::KeeperState::SyncConnected)
        {
            return Err(crate::Error::keeper(crate::Code::SessionExpired, Some(path)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sequence_suffixes() {
        assert_eq!(sequence_of("lock-0000000007"), Some(7));
        assert_eq!(sequence_of("0000000012"), Some(12));
        assert_eq!(sequence_of("short"), None);
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/x", "a"), "/x/a");
        assert_eq!(name_of("/x/a"), "a");
    }
}
