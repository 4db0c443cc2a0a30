//! The Rust `zookeeper-client` crate (kezhuw/zookeeper-client-rust, an independent client written
//! against Apache ZooKeeper) unmodified against ferrokeeper: standalone and a 3-node ensemble.
//! Node CRUD with versions and errors, sequential and ephemeral nodes, one-shot and persistent
//! recursive watches, multi writes (atomic failure) and multi reads, chroot, the crate's
//! Curator-compatible lock under contention, and session close ending ephemerals.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{ServerKind, ServerProcess};
use zookeeper_client as zk;

/// Every await of this test is bounded: a hang fails instead of blocking CI.
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within 20 s"),
    }
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn exercise(cluster: &str) {
    let client = bounded("connect", zk::Client::connect(cluster)).await.unwrap();
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

    // CRUD, versions, errors.
    let (_, created_watch) =
        bounded("check_and_watch_stat", client.check_and_watch_stat("/zkc")).await.unwrap();
    let (stat, _) = bounded("create", client.create("/zkc", b"v0", &persistent())).await.unwrap();
    assert_eq!(stat.version, 0);
    let event = bounded("created event", created_watch.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeCreated, "/zkc"));
    assert_eq!(
        bounded("create twice", client.create("/zkc", b"", &persistent())).await.unwrap_err(),
        zk::Error::NodeExists
    );
    assert_eq!(bounded("get", client.get_data("/zkc")).await.unwrap(), (b"v0".to_vec(), stat));
    let stat = bounded("set", client.set_data("/zkc", b"v1", Some(0))).await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        bounded("set stale", client.set_data("/zkc", b"v2", Some(0))).await.unwrap_err(),
        zk::Error::BadVersion
    );
    assert_eq!(bounded("get missing", client.get_data("/zkc/none")).await.unwrap_err(), zk::Error::NoNode);

    // Children, sequential nodes, a one-shot child watch.
    let (_, _, children_watch) =
        bounded("get_and_watch_children", client.get_and_watch_children("/zkc")).await.unwrap();
    let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, first) = bounded("create seq", client.create("/zkc/item-", b"", &sequential)).await.unwrap();
    let (_, second) = bounded("create seq", client.create("/zkc/item-", b"", &sequential)).await.unwrap();
    assert!(second.into_i64() > first.into_i64());
    let event = bounded("children event", children_watch.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeChildrenChanged, "/zkc"));
    let mut children = bounded("list", client.list_children("/zkc")).await.unwrap();
    children.sort();
    assert_eq!(children, [format!("item-{first}"), format!("item-{second}")]);
    assert_eq!(
        bounded("delete non-empty", client.delete("/zkc", None)).await.unwrap_err(),
        zk::Error::NotEmpty
    );

    // A persistent recursive watch sees changes below it, and keeps watching.
    let mut recursive =
        bounded("watch", client.watch("/zkc", zk::AddWatchMode::PersistentRecursive)).await.unwrap();
    bounded("create child", client.create("/zkc/deep", b"", &persistent())).await.unwrap();
    bounded("set child", client.set_data("/zkc/deep", b"x", None)).await.unwrap();
    let events = [
        bounded("recursive 1", recursive.changed()).await,
        bounded("recursive 2", recursive.changed()).await,
    ];
    let seen: Vec<(zk::EventType, &str)> = events.iter().map(|e| (e.event_type, e.path.as_str())).collect();
    assert_eq!(
        seen,
        [(zk::EventType::NodeCreated, "/zkc/deep"), (zk::EventType::NodeDataChanged, "/zkc/deep")]
    );
    drop(recursive);

    // Multi: all or nothing; multi read.
    let mut writer = client.new_multi_writer();
    writer.add_create("/zkc/m1", b"1", &persistent()).unwrap();
    writer.add_set_data("/zkc", b"multi", Some(1)).unwrap();
    let results = bounded("multi", writer.commit()).await.unwrap();
    assert_eq!(results.len(), 2);
    let mut failing = client.new_multi_writer();
    failing.add_create("/zkc/m2", b"2", &persistent()).unwrap();
    failing.add_check_version("/zkc", 99).unwrap();
    match bounded("failing multi", failing.commit()).await {
        Err(zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::BadVersion }) => {}
        other => panic!("expected BadVersion at index 1, got {other:?}"),
    }
    assert_eq!(bounded("rolled back", client.check_stat("/zkc/m2")).await.unwrap(), None);
    let mut reader = client.new_multi_reader();
    reader.add_get_data("/zkc/m1").unwrap();
    reader.add_get_data("/zkc/none").unwrap();
    let read = bounded("multi read", reader.commit()).await.unwrap();
    assert!(matches!(&read[0], zk::MultiReadResult::Data { data, .. } if data == b"1"), "{read:?}");
    assert!(matches!(&read[1], zk::MultiReadResult::Error { err: zk::Error::NoNode }), "{read:?}");

    // Chroot shares the session.
    let rooted = client.clone().chroot("/zkc").unwrap();
    assert_eq!(bounded("chroot get", rooted.get_data("/m1")).await.unwrap().0, b"1");

    // The crate's Curator-compatible lock: a second contender waits for the first.
    let other = bounded("connect 2", zk::Client::connect(cluster)).await.unwrap();
    let options =
        || zk::LockOptions::new(zk::Acls::anyone_all()).with_ancestor_options(persistent()).unwrap();
    let held = bounded(
        "lock 1",
        client.lock(zk::LockPrefix::new_curator("/zkc/lock", "lock-").unwrap(), b"", options()),
    )
    .await
    .unwrap();
    let contender = {
        let other = other.clone();
        tokio::spawn(async move {
            let prefix = zk::LockPrefix::new_curator("/zkc/lock", "lock-").unwrap();
            let lock = other.lock(prefix, b"", options()).await.unwrap();
            lock.lock_path().to_owned()
        })
    };
    // The contender parks on a watch of the held lock's node (4lw wchp on whichever server its
    // session is on); only then does "it has not got the lock" say something about the lock.
    let first_path = held.lock_path().to_owned();
    tokio::task::block_in_place(|| wait_watched(cluster, &first_path));
    assert!(!contender.is_finished(), "the second contender got the lock while it was held");
    drop(held);
    let second_path = bounded("lock 2", contender).await.unwrap();
    assert_ne!(first_path, second_path);

    // Ephemerals end with their session.
    bounded("ephemeral", other.create("/zkc/owned", b"", &ephemeral)).await.unwrap();
    // `client` may be on another server: sync first (ZooKeeper orders sessions only by sync).
    bounded("sync", client.sync("/zkc/owned")).await.unwrap();
    let (_, _, gone) = bounded("watch ephemeral", client.get_and_watch_data("/zkc/owned")).await.unwrap();
    drop(other);
    let event = bounded("ephemeral deleted", gone.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeDeleted, "/zkc/owned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone() {
    let server = ServerProcess::start(ServerKind::Ferrokeeper, &[("4lw.commands.whitelist", "*")]);
    exercise(&format!("127.0.0.1:{}", server.port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble() {
    let mut cluster = support::Ensemble::new();
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    tokio::task::block_in_place(|| cluster.wait_stable(Duration::from_secs(30)));
    let hosts: Vec<String> =
        (0..support::ENSEMBLE_SIZE).map(|i| format!("127.0.0.1:{}", cluster.port(i))).collect();
    exercise(&hosts.join(",")).await;
}

/// Waits (≤ 10 s) until one of the servers of `connect` holds a watch on `path` (4lw `wchp`).
fn wait_watched(connect: &str, path: &str) {
    let ports: Vec<u16> = connect.split(',').filter_map(|h| h.rsplit(':').next()?.parse().ok()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listings: Vec<String> =
            ports.iter().map(|p| support::four_letter(*p, "wchp").unwrap_or_default()).collect();
        if listings.iter().any(|text| text.lines().any(|line| line == path)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no watch on {path} after 10 s: {listings:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
