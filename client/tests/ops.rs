//! Every client operation against a real server (Apache ZooKeeper, or ferrokeeper with
//! `FK_SERVER_BIN`).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrokeeper_client::*;
use support::{shared, unique, within};

const T: Duration = Duration::from_secs(10);

async fn client() -> Option<(ZooKeeper, Events)> {
    let server = shared()?;
    Some(ZooKeeper::connect(&server.addr(), Duration::from_secs(10)).await.unwrap())
}

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

#[tokio::test]
async fn create_get_set_delete() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("crud");
    assert_eq!(zk.create(&p, b"spring", &open(), CreateMode::Persistent, None).await.unwrap(), p);
    let (data, stat) = zk.get_data(&p).await.unwrap();
    assert_eq!(&data[..], b"spring");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 6);
    let err = zk.create(&p, b"x", &open(), CreateMode::Persistent, None).await.unwrap_err();
    assert_eq!(err.code(), Code::NodeExists);
    assert_eq!(err.to_string(), format!("Node already exists: {p}"));
    let stat = zk.set_data(&p, b"springmvc", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    let err = zk.set_data(&p, b"x", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::BadVersion);
    assert_eq!(zk.exists(&p).await.unwrap().unwrap().version, 1);
    let err = zk.delete(&p, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::BadVersion);
    zk.delete(&p, 1).await.unwrap();
    assert_eq!(zk.exists(&p).await.unwrap(), None);
    let err = zk.get_data(&p).await.unwrap_err();
    assert_eq!(err.code(), Code::NoNode);
    assert_eq!(err.to_string(), format!("Node does not exist: {p}"));
    let err = zk.get_data("bad").await.unwrap_err();
    assert!(matches!(err, Error::InvalidPath(_)), "{err:?}");
    zk.close().await.unwrap();
    assert_eq!(zk.state(), SessionState::Closed);
    assert!(zk.exists("/").await.is_err());
}

#[tokio::test]
async fn create_modes_pick_the_right_opcodes() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("modes");
    let created = zk.create2(&p, b"", &open(), CreateMode::Persistent, None).await.unwrap();
    assert_eq!(created.path, p);
    let stat = created.stat.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    let e = zk.create2(&format!("{p}/e"), b"", &open(), CreateMode::Ephemeral, None).await.unwrap();
    assert_eq!(e.stat.unwrap().ephemeral_owner, zk.session_id());
    let s1 =
        zk.create(&format!("{p}/s-"), b"", &open(), CreateMode::PersistentSequential, None).await.unwrap();
    let s2 =
        zk.create(&format!("{p}/s-"), b"", &open(), CreateMode::EphemeralSequential, None).await.unwrap();
    assert_eq!(s1, format!("{p}/s-0000000001"));
    assert_eq!(s2, format!("{p}/s-0000000002"));
    let c = zk.create2(&format!("{p}/c"), b"", &open(), CreateMode::Container, None).await.unwrap();
    assert_eq!(c.path, format!("{p}/c"));
    assert_eq!(c.stat.unwrap().ephemeral_owner, 0);
    assert_eq!(zk.exists(&format!("{p}/c")).await.unwrap().unwrap().ephemeral_owner, 0);
    let t = zk
        .create2(&format!("{p}/t"), b"", &open(), CreateMode::PersistentWithTtl, Some(60_000))
        .await
        .unwrap();
    let tstat = zk.exists(&format!("{p}/t")).await.unwrap().unwrap();
    // Clients see ephemeralOwner 0 for TTL and container nodes (DataTree.getClientEphemeralOwner).
    assert_eq!(t.stat.unwrap().ephemeral_owner, 0);
    assert_eq!(tstat.ephemeral_owner, 0);
    assert_eq!(tstat.ctime, tstat.mtime);
    let ts_path = format!("{p}/ts-");
    let ts = zk.create(&ts_path, b"", &open(), CreateMode::PersistentSequentialWithTtl, Some(5000)).await;
    assert!(ts.unwrap().starts_with(&ts_path));
    assert!(zk.create(&format!("{p}/x"), b"", &open(), CreateMode::PersistentWithTtl, None).await.is_err());
    let err =
        zk.create(&format!("{p}/e/child"), b"", &open(), CreateMode::Persistent, None).await.unwrap_err();
    assert_eq!(err.code(), Code::NoChildrenForEphemerals);
    let err =
        zk.create(&format!("{p}/none/child"), b"", &open(), CreateMode::Persistent, None).await.unwrap_err();
    assert_eq!(err.code(), Code::NoNode);
    let mut eph = zk.get_ephemerals(&p).await.unwrap();
    eph.sort();
    assert_eq!(eph, vec![format!("{p}/e"), s2.clone()]);
    assert_eq!(zk.get_all_children_number(&p).await.unwrap(), 6);
    zk.delete_all(&p).await.unwrap();
    assert_eq!(zk.exists(&p).await.unwrap(), None);
}

#[tokio::test]
async fn children_acl_sync_whoami() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("kids");
    zk.ensure_path(&format!("{p}/a/b")).await.unwrap();
    zk.create(&format!("{p}/c"), b"", &open(), CreateMode::Persistent, None).await.unwrap();
    let mut kids = zk.get_children(&p).await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["a", "c"]);
    let (kids2, stat) = zk.get_children2(&p).await.unwrap();
    assert_eq!(kids2.len(), 2);
    assert_eq!(stat.num_children, 2);
    let (acl, _) = zk.get_acl(&p).await.unwrap();
    assert_eq!(acl, open());
    let read_admin = vec![Acl::new(proto::op::perms::READ | proto::op::perms::ADMIN, "world", "anyone")];
    let stat = zk.set_acl(&p, &read_admin, 0).await.unwrap();
    assert_eq!(stat.aversion, 1);
    let err = zk.set_data(&p, b"x", -1).await.unwrap_err();
    assert_eq!(err.code(), Code::NoAuth);
    assert_eq!(zk.set_acl(&p, &open(), 0).await.unwrap_err().code(), Code::BadVersion);
    zk.set_acl(&p, &open(), 1).await.unwrap();
    assert_eq!(zk.sync(&p).await.unwrap(), p);
    let who = zk.who_am_i().await.unwrap();
    assert!(who.iter().any(|c| c.auth_scheme == "ip"), "{who:?}");
    zk.delete_all(&p).await.unwrap();
}

#[tokio::test]
async fn auth_digest() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("auth");
    zk.add_auth("digest", b"alice:secret").await.unwrap();
    let who = zk.who_am_i().await.unwrap();
    assert!(who.iter().any(|c| c.auth_scheme == "digest" && c.user == "alice"), "{who:?}");
    zk.create(&p, b"mine", &Acl::creator_all(), CreateMode::Persistent, None).await.unwrap();
    let (acl, _) = zk.get_acl(&p).await.unwrap();
    assert_eq!(acl[0].id.scheme, "digest");
    let (other, _ev2) = client().await.unwrap();
    assert_eq!(other.get_data(&p).await.unwrap_err().code(), Code::NoAuth);
    other.add_auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(&other.get_data(&p).await.unwrap().0[..], b"mine");
    zk.delete(&p, -1).await.unwrap();
}

#[tokio::test]
async fn multi_and_multi_read() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("multi");
    zk.create(&p, b"", &open(), CreateMode::Persistent, None).await.unwrap();
    let ops = Multi::new()
        .create(&format!("{p}/a"), b"1", &open(), CreateMode::Persistent, None)
        .set_data(&format!("{p}/a"), b"2", 0)
        .check(&format!("{p}/a"), 1)
        .create(&format!("{p}/b"), b"", &open(), CreateMode::Persistent, None);
    let results = zk.multi(ops).await.unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], OpResult::Create { path: format!("{p}/a") });
    assert!(matches!(results[1], OpResult::SetData { .. }));
    assert_eq!(results[2], OpResult::Check);
    // A failing multi changes nothing and reports the failing op.
    let ops = Multi::new().delete(&format!("{p}/b"), -1).check(&format!("{p}/a"), 7).create(
        &format!("{p}/c"),
        b"",
        &open(),
        CreateMode::Persistent,
        None,
    );
    let err = zk.multi(ops).await.unwrap_err();
    assert_eq!(err.code(), Code::BadVersion);
    assert_eq!(err.to_string(), format!("version No is not valid : {p}/a"));
    assert!(zk.exists(&format!("{p}/b")).await.unwrap().is_some());
    let reads = Multi::new().get_data(&format!("{p}/a")).get_children(&p).get_data(&format!("{p}/zz"));
    let reads = zk.multi_read(reads).await.unwrap();
    assert!(matches!(&reads[0], OpResult::GetData { data: Some(d), .. } if &d[..] == b"2"));
    assert!(matches!(&reads[1], OpResult::GetChildren { children } if children.len() == 2));
    assert_eq!(reads[2], OpResult::Error { err: Code::NoNode.as_i32() });
    zk.delete_all(&p).await.unwrap();
}

#[tokio::test]
async fn one_shot_watches_and_event_stream() {
    let Some((zk, mut ev)) = client().await else { return };
    assert_eq!(
        within(T, ev.recv()).await.unwrap(),
        WatchedEvent { event_type: EventType::None, state: KeeperState::SyncConnected, path: None }
    );
    let p = unique("watch");
    let (stat, created) = zk.exists_w(&p).await.unwrap();
    assert!(stat.is_none());
    zk.create(&p, b"a", &open(), CreateMode::Persistent, None).await.unwrap();
    let e = within(T, created.changed()).await.unwrap();
    assert_eq!((e.event_type, e.path.as_deref()), (EventType::NodeCreated, Some(p.as_str())));
    let (_, _, data_w) = zk.get_data_w(&p).await.unwrap();
    let (_, child_w) = zk.get_children_w(&p).await.unwrap();
    zk.set_data(&p, b"b", -1).await.unwrap();
    let e = within(T, data_w.changed()).await.unwrap();
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    zk.create(&format!("{p}/k"), b"", &open(), CreateMode::Persistent, None).await.unwrap();
    let e = within(T, child_w.changed()).await.unwrap();
    assert_eq!(e.event_type, EventType::NodeChildrenChanged);
    // The session stream saw the same events, in order.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(within(T, ev.recv()).await.unwrap().event_type);
    }
    assert_eq!(
        seen,
        vec![EventType::NodeCreated, EventType::NodeDataChanged, EventType::NodeChildrenChanged]
    );
    // Watch removal.
    zk.get_data_watch(&p).await.unwrap();
    zk.check_watches(&p, WatcherType::Data).await.unwrap();
    zk.remove_watches(&p, WatcherType::Data).await.unwrap();
    assert_eq!(within(T, ev.recv()).await.unwrap().event_type, EventType::DataWatchRemoved);
    assert_eq!(zk.check_watches(&p, WatcherType::Data).await.unwrap_err().code(), Code::NoWatcher);
    zk.delete_all(&p).await.unwrap();
}

#[tokio::test]
async fn persistent_and_recursive_watches() {
    let Some((zk, mut ev)) = client().await else { return };
    within(T, ev.recv()).await.unwrap();
    let p = unique("pw");
    zk.create(&p, b"", &open(), CreateMode::Persistent, None).await.unwrap();
    zk.add_watch(&p, AddWatchMode::PersistentRecursive).await.unwrap();
    zk.create(&format!("{p}/a"), b"", &open(), CreateMode::Persistent, None).await.unwrap();
    zk.set_data(&format!("{p}/a"), b"x", -1).await.unwrap();
    zk.set_data(&format!("{p}/a"), b"y", -1).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = within(T, ev.recv()).await.unwrap();
        got.push((e.event_type, e.path.unwrap()));
    }
    let a = format!("{p}/a");
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, a.clone()),
            (EventType::NodeDataChanged, a.clone()),
            (EventType::NodeDataChanged, a.clone())
        ]
    );
    zk.remove_watches(&p, WatcherType::PersistentRecursive).await.ok();
    zk.delete_all(&p).await.unwrap();
}

#[tokio::test]
async fn chroot_is_applied_and_stripped() {
    let Some(server) = shared() else { return };
    let root = unique("chroot");
    let (zk, _) = ZooKeeper::connect(&server.addr(), T).await.unwrap();
    zk.ensure_path(&root).await.unwrap();
    let (cz, mut cev) = ZooKeeper::connect(&format!("{}{root}", server.addr()), T).await.unwrap();
    within(T, cev.recv()).await.unwrap();
    assert_eq!(cz.create("/x", b"1", &open(), CreateMode::Persistent, None).await.unwrap(), "/x");
    assert_eq!(&zk.get_data(&format!("{root}/x")).await.unwrap().0[..], b"1");
    let (_, _, w) = cz.get_data_w("/x").await.unwrap();
    zk.set_data(&format!("{root}/x"), b"2", -1).await.unwrap();
    assert_eq!(within(T, w.changed()).await.unwrap().path.as_deref(), Some("/x"));
    assert_eq!(within(T, cev.recv()).await.unwrap().path.as_deref(), Some("/x"));
    let s = cz.create("/s-", b"", &open(), CreateMode::EphemeralSequential, None).await.unwrap();
    assert_eq!(s, "/s-0000000001");
    assert_eq!(cz.get_ephemerals("/").await.unwrap(), vec![s]);
    assert_eq!(cz.get_children("/").await.unwrap().len(), 2);
    cz.close().await.unwrap();
    zk.delete_all(&root).await.unwrap();
}

#[tokio::test]
async fn pipelining_many_requests() {
    let Some((zk, _ev)) = client().await else { return };
    let p = unique("pipe");
    zk.create(&p, b"", &open(), CreateMode::Persistent, None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let zk = zk.clone();
        let path = format!("{p}/n{i}");
        tasks.push(tokio::spawn(async move {
            zk.create(&path, format!("{i}").as_bytes(), &Acl::open_unsafe(), CreateMode::Persistent, None)
                .await?;
            zk.get_data(&path).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (data, _) = t.await.unwrap().unwrap();
        assert_eq!(data, format!("{i}").as_bytes());
    }
    assert_eq!(zk.get_all_children_number(&p).await.unwrap(), 200);
    zk.delete_all(&p).await.unwrap();
}
