//! Each recipe against a real server.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrokeeper_client::recipes::config::ConfigWatcher;
use ferrokeeper_client::recipes::discovery::ServiceRegistry;
use ferrokeeper_client::recipes::election::LeaderElection;
use ferrokeeper_client::recipes::lock::DistributedLock;
use ferrokeeper_client::*;
use support::{shared, unique, within};

const T: Duration = Duration::from_secs(20);

/// The sequence number a sequential node's name ends with.
fn sequence(name: &str) -> u64 {
    name[name.len().saturating_sub(10)..].parse().unwrap_or(u64::MAX)
}

/// Waits (≤ 10 s) until the server holds a watch on `path` (4lw `wchp`).
async fn wait_watched(path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = shared().unwrap().port;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut text = String::new();
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = stream.write_all(b"wchp").await;
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut text)).await;
        }
        if text.lines().any(|line| line == path) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no watch on {path} after 10 s; wchp:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn session() -> Option<ZooKeeper> {
    let server = shared()?;
    Some(ZooKeeper::connect(&server.addr(), Duration::from_secs(10)).await.unwrap().0)
}

#[tokio::test]
async fn lock_gives_mutual_exclusion_and_fifo_handoff() {
    let Some(zk) = session().await else { return };
    let dir = unique("lock");
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (zk_i, _) = ZooKeeper::connect(&shared().unwrap().addr(), Duration::from_secs(10)).await.unwrap();
        let (dir, inside, max_inside, order) =
            (dir.clone(), inside.clone(), max_inside.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let mut lock = DistributedLock::new(zk_i.clone(), &dir);
            lock.acquire().await.unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            max_inside.fetch_max(now, Ordering::SeqCst);
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(30)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            lock.release().await.unwrap();
            zk_i.close().await.unwrap();
        }));
    }
    for t in tasks {
        within(T, t).await.unwrap();
    }
    assert_eq!(max_inside.load(Ordering::SeqCst), 1);
    assert_eq!(order.lock().unwrap().len(), 5);
    // try_acquire fails while held, and a dying holder's session frees the lock.
    let (holder_zk, _) = ZooKeeper::connect(&shared().unwrap().addr(), T).await.unwrap();
    let mut holder = DistributedLock::new(holder_zk.clone(), &dir);
    assert!(holder.try_acquire().await.unwrap());
    let mut other = DistributedLock::new(zk.clone(), &dir);
    assert!(!other.try_acquire().await.unwrap());
    let waiter = tokio::spawn(async move {
        other.acquire().await.unwrap();
        other
    });
    // The waiter has checked the queue and parks on a watch of the holder's node: only then is
    // "it has not taken the lock" a statement about the recipe rather than about timing.
    let children = zk.get_children(&dir).await.unwrap();
    let holder_node = children.iter().min_by_key(|c| sequence(c)).unwrap();
    wait_watched(&format!("{dir}/{holder_node}")).await;
    assert!(!waiter.is_finished());
    holder_zk.close().await.unwrap();
    let mut other = within(T, waiter).await.unwrap();
    other.release().await.unwrap();
    assert!(zk.get_children(&dir).await.unwrap().is_empty());
}

#[tokio::test]
async fn leader_election_fails_over_in_order() {
    let Some(zk) = session().await else { return };
    let dir = unique("elect");
    let mut candidates = Vec::new();
    for i in 0..3 {
        let (zk_i, _) = ZooKeeper::connect(&shared().unwrap().addr(), T).await.unwrap();
        let mut e = LeaderElection::new(zk_i.clone(), &dir);
        e.volunteer(format!("node{i}").as_bytes()).await.unwrap();
        candidates.push((zk_i, e));
    }
    let observer = LeaderElection::new(zk.clone(), &dir);
    assert_eq!(&observer.leader().await.unwrap().unwrap().1[..], b"node0");
    assert!(candidates[0].1.is_leader().await.unwrap());
    assert!(!candidates[1].1.is_leader().await.unwrap());
    let (zk1, e1) = candidates.remove(1);
    let follower = tokio::spawn(async move {
        e1.wait_for_leadership().await.unwrap();
        (zk1, e1)
    });
    // node1 parks on a watch of node0's candidate node before we check it is not leading.
    let children = zk.get_children(&dir).await.unwrap();
    let first = children.iter().min_by_key(|c| sequence(c)).unwrap();
    wait_watched(&format!("{dir}/{first}")).await;
    assert!(!follower.is_finished());
    // The leader's session dies: node1 takes over.
    candidates[0].0.close().await.unwrap();
    let (zk1, mut e1) = within(T, follower).await.unwrap();
    assert!(e1.is_leader().await.unwrap());
    assert_eq!(&observer.leader().await.unwrap().unwrap().1[..], b"node1");
    e1.resign().await.unwrap();
    assert_eq!(&observer.leader().await.unwrap().unwrap().1[..], b"node2");
    zk1.close().await.unwrap();
    candidates[1].0.close().await.unwrap();
    assert!(observer.leader().await.unwrap().is_none());
}

#[tokio::test]
async fn service_registration_and_discovery() {
    let Some(zk) = session().await else { return };
    let base = unique("svc");
    let registry = ServiceRegistry::new(zk.clone(), &base);
    assert!(registry.discover("api").await.unwrap().is_empty());
    let (inst_zk, _) = ZooKeeper::connect(&shared().unwrap().addr(), T).await.unwrap();
    let inst_registry = ServiceRegistry::new(inst_zk.clone(), &base);
    inst_registry.register("api", "a", b"10.0.0.1:80").await.unwrap();
    let (found, watch) = registry.discover_w("api").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(&found[0].data[..], b"10.0.0.1:80");
    inst_registry.register("api", "b", b"10.0.0.2:80").await.unwrap();
    assert_eq!(within(T, watch.changed()).await.unwrap().event_type, EventType::NodeChildrenChanged);
    let now = registry.discover("api").await.unwrap();
    assert_eq!(now.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    // The instance's session ends: discovery sees both registrations vanish.
    let waiter = {
        let registry = registry.clone();
        let now = now.clone();
        tokio::spawn(async move { registry.wait_for_change("api", &now).await.unwrap() })
    };
    inst_zk.close().await.unwrap();
    let mut after = within(T, waiter).await.unwrap();
    while !after.is_empty() {
        after = within(T, registry.wait_for_change("api", &after)).await.unwrap();
    }
    zk.delete_all(&base).await.unwrap();
}

#[tokio::test]
async fn config_watch_follows_changes() {
    let Some(zk) = session().await else { return };
    let path = unique("cfg");
    let (watcher_zk, _) = ZooKeeper::connect(&shared().unwrap().addr(), T).await.unwrap();
    let mut watcher = ConfigWatcher::new(watcher_zk, &path);
    assert_eq!(watcher.get().await.unwrap(), None);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..3 {
            let v = watcher.changed().await.unwrap().map(|b| String::from_utf8_lossy(&b).into_owned());
            tx.send(v).unwrap();
        }
    });
    let mut seen = Vec::new();
    zk.create(&path, b"v1", &Acl::open_unsafe(), CreateMode::Persistent, None).await.unwrap();
    seen.push(within(T, rx.recv()).await.unwrap());
    zk.set_data(&path, b"v2", -1).await.unwrap();
    seen.push(within(T, rx.recv()).await.unwrap());
    zk.delete(&path, -1).await.unwrap();
    seen.push(within(T, rx.recv()).await.unwrap());
    assert_eq!(seen, vec![Some("v1".to_owned()), Some("v2".to_owned()), None]);
}
