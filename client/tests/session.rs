//! Session behaviour: reconnect through a proxy that cuts connections (session and watches
//! survive), in-flight requests failing with ConnectionLoss, failover across hosts, expiry.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrokeeper_client::*;
use support::{Proxy, free_port, shared, unique, within};

const T: Duration = Duration::from_secs(15);

async fn next_event(ev: &mut Events, pred: impl Fn(&WatchedEvent) -> bool) -> WatchedEvent {
    loop {
        let e = within(T, ev.recv()).await.unwrap();
        if pred(&e) {
            return e;
        }
    }
}

#[tokio::test]
async fn reconnect_keeps_session_and_watches() {
    let Some(server) = shared() else { return };
    let proxy = Proxy::start(server.addr()).await;
    let (zk, mut ev) = ZooKeeper::connect(&proxy.addr(), Duration::from_secs(10)).await.unwrap();
    let (other, _) = ZooKeeper::connect(&server.addr(), T).await.unwrap();
    let p = unique("recon");
    zk.create(&p, b"v0", &Acl::open_unsafe(), CreateMode::Persistent, None).await.unwrap();
    let eph =
        zk.create(&format!("{p}-eph"), b"", &Acl::open_unsafe(), CreateMode::Ephemeral, None).await.unwrap();
    let session = zk.session_id();
    let (_, _, data_w) = zk.get_data_w(&p).await.unwrap();
    let (_, child_w) = zk.get_children_w(&p).await.unwrap();
    let (_, created_w) = zk.exists_w(&format!("{p}/later")).await.unwrap();
    zk.add_watch(&p, AddWatchMode::Persistent).await.unwrap();

    proxy.cut();
    next_event(&mut ev, |e| e.state == KeeperState::Disconnected).await;
    next_event(&mut ev, |e| e.state == KeeperState::SyncConnected && e.event_type == EventType::None).await;
    assert_eq!(zk.session_id(), session);
    assert!(other.exists(&eph).await.unwrap().is_some(), "ephemeral survived the reconnect");

    // Changes made by another client after the reconnect fire the re-registered watches.
    other.set_data(&p, b"v1", -1).await.unwrap();
    assert_eq!(within(T, data_w.changed()).await.unwrap().event_type, EventType::NodeDataChanged);
    other
        .create(&format!("{p}/later"), b"", &Acl::open_unsafe(), CreateMode::Persistent, None)
        .await
        .unwrap();
    assert_eq!(within(T, created_w.changed()).await.unwrap().event_type, EventType::NodeCreated);
    assert_eq!(within(T, child_w.changed()).await.unwrap().event_type, EventType::NodeChildrenChanged);
    // The persistent watch survived too and keeps firing.
    other.set_data(&p, b"v2", -1).await.unwrap();
    next_event(&mut ev, |e| e.event_type == EventType::NodeDataChanged && e.path.as_deref() == Some(&p))
        .await;

    // A change made while disconnected is reported on reconnect (relativeZxid = last zxid).
    let (_, _, w) = zk.get_data_w(&p).await.unwrap();
    proxy.set_enabled(false);
    proxy.cut();
    next_event(&mut ev, |e| e.state == KeeperState::Disconnected).await;
    other.set_data(&p, b"v3", -1).await.unwrap();
    proxy.set_enabled(true);
    assert_eq!(within(T, w.changed()).await.unwrap().event_type, EventType::NodeDataChanged);
    assert_eq!(&zk.get_data(&p).await.unwrap().0[..], b"v3");
    zk.delete_all(&p).await.unwrap();
    zk.close().await.unwrap();
    assert!(other.exists(&eph).await.unwrap().is_none(), "close removed the ephemeral");
}

#[tokio::test]
async fn in_flight_requests_fail_with_connection_loss() {
    let Some(server) = shared() else { return };
    let proxy = Proxy::start(server.addr()).await;
    let (zk, _ev) = ZooKeeper::connect(&proxy.addr(), Duration::from_secs(10)).await.unwrap();
    let p = unique("loss");
    zk.create(&p, b"", &Acl::open_unsafe(), CreateMode::Persistent, None).await.unwrap();
    // Fire many requests and cut the connection underneath them.
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let zk = zk.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move { zk.get_data(&p).await }));
    }
    proxy.cut();
    let mut lost = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), Code::ConnectionLoss, "{e:?}");
                lost += 1;
            }
        }
    }
    eprintln!("{lost} of 500 requests lost with the connection");
    // The session keeps working afterwards.
    within(T, async {
        loop {
            if zk.exists(&p).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    zk.delete(&p, -1).await.unwrap();
}

#[tokio::test]
async fn fails_over_to_the_next_host() {
    let Some(server) = shared() else { return };
    let dead = format!("127.0.0.1:{}", free_port());
    let proxy = Proxy::start(server.addr()).await;
    let cs = format!("{dead},{}", proxy.addr());
    let (zk, mut ev) = ZooKeeper::connect(&cs, Duration::from_secs(10)).await.unwrap();
    assert_eq!(zk.connected_host(), Some(proxy.addr()));
    next_event(&mut ev, |e| e.state == KeeperState::SyncConnected).await;
    let proxy2 = Proxy::start(server.addr()).await;
    drop(zk);
    // Two live hosts: cutting one moves the session to the other.
    let cs = format!("{},{}", proxy.addr(), proxy2.addr());
    let (zk, mut ev) = ZooKeeper::connect(&cs, Duration::from_secs(10)).await.unwrap();
    next_event(&mut ev, |e| e.state == KeeperState::SyncConnected).await;
    let first = zk.connected_host().unwrap();
    let sid = zk.session_id();
    if first == proxy.addr() {
        proxy.set_enabled(false);
        proxy.cut();
    } else {
        proxy2.set_enabled(false);
        proxy2.cut();
    }
    next_event(&mut ev, |e| e.state == KeeperState::SyncConnected).await;
    assert_ne!(zk.connected_host().unwrap(), first);
    assert_eq!(zk.session_id(), sid);
    assert!(zk.exists("/").await.unwrap().is_some());
}

#[tokio::test]
async fn expiry_is_reported_and_final() {
    let Some(server) = shared() else { return };
    let proxy = Proxy::start(server.addr()).await;
    // 4 s is the server's minimum (2 × tickTime).
    let (zk, mut ev) = ZooKeeper::connect(&proxy.addr(), Duration::from_secs(4)).await.unwrap();
    assert_eq!(zk.session_timeout_ms(), 4000);
    let p = unique("exp");
    let (_, _, w) = {
        zk.create(&p, b"", &Acl::open_unsafe(), CreateMode::Ephemeral, None).await.unwrap();
        zk.get_data_w(&p).await.unwrap()
    };
    // Idle for longer than the timeout: pings keep the session alive.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(zk.exists(&p).await.unwrap().is_some());
    proxy.set_enabled(false);
    proxy.cut();
    next_event(&mut ev, |e| e.state == KeeperState::Disconnected).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.set_enabled(true);
    next_event(&mut ev, |e| e.state == KeeperState::Expired).await;
    assert_eq!(zk.state(), SessionState::Expired);
    assert_eq!(within(T, w.changed()).await.unwrap().state, KeeperState::Expired);
    let err = zk.exists("/").await.unwrap_err();
    assert_eq!(err.code(), Code::SessionExpired);
    assert_eq!(err.to_string(), "KeeperErrorCode = Session expired for /");
    let (other, _) = ZooKeeper::connect(&server.addr(), T).await.unwrap();
    assert!(other.exists(&p).await.unwrap().is_none(), "ephemeral went with the session");
}

#[tokio::test]
async fn connect_fails_cleanly_when_nothing_listens() {
    let cs = format!("127.0.0.1:{}", free_port());
    let err =
        ZooKeeper::builder(&cs).connect_timeout(Duration::from_millis(800)).connect().await.unwrap_err();
    assert!(matches!(err, Error::ConnectFailed(_)), "{err:?}");
    assert!(ZooKeeper::connect("bad:port", T).await.is_err());
}

#[tokio::test]
async fn two_servers_sessions_are_independent() {
    let Some(server) = shared() else { return };
    let (a, _) = ZooKeeper::connect(&server.addr(), T).await.unwrap();
    let (b, _) = ZooKeeper::connect(&server.addr(), T).await.unwrap();
    assert_ne!(a.session_id(), b.session_id());
    let p = unique("ind");
    a.create(&p, b"", &Acl::open_unsafe(), CreateMode::Ephemeral, None).await.unwrap();
    assert_eq!(b.get_ephemerals("/").await.unwrap(), Vec::<String>::new());
    a.close().await.unwrap();
    assert!(b.exists(&p).await.unwrap().is_none());
}

/// A scripted fake server: answers the handshake, then replies to the first request with a
/// wrong xid. The client must drop the connection (as Java's "Xid out of order") and fail the
/// request with ConnectionLoss.
#[tokio::test]
async fn out_of_order_xid_drops_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let mut accepted = 0;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            accepted += 1;
            let len = s.read_i32().await.unwrap();
            let mut req = vec![0u8; len as usize];
            s.read_exact(&mut req).await.unwrap();
            // ConnectResponse: protocol 0, timeout 10000, session 0x42, 16-byte password.
            let mut resp = Vec::new();
            resp.extend_from_slice(&0i32.to_be_bytes());
            resp.extend_from_slice(&10_000i32.to_be_bytes());
            resp.extend_from_slice(&0x42i64.to_be_bytes());
            resp.extend_from_slice(&16i32.to_be_bytes());
            resp.extend_from_slice(&[7u8; 16]);
            s.write_i32(resp.len() as i32).await.unwrap();
            s.write_all(&resp).await.unwrap();
            if accepted == 1 {
                let len = s.read_i32().await.unwrap();
                let mut req = vec![0u8; len as usize];
                s.read_exact(&mut req).await.unwrap();
                let xid = i32::from_be_bytes([req[0], req[1], req[2], req[3]]);
                // ReplyHeader with xid + 5, zxid 1, err 0.
                s.write_i32(16).await.unwrap();
                s.write_i32(xid + 5).await.unwrap();
                s.write_i64(1).await.unwrap();
                s.write_i32(0).await.unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            } else {
                // Second connection: same session id and password must come back.
                let sid = i64::from_be_bytes(req[16..24].try_into().unwrap());
                let pw = &req[28..44];
                return (sid, pw.to_vec());
            }
        }
    });
    let (zk, mut ev) = ZooKeeper::connect(&addr, Duration::from_secs(10)).await.unwrap();
    assert_eq!(zk.session_id(), 0x42);
    let err = within(T, zk.exists("/x")).await.unwrap_err();
    assert_eq!(err.code(), Code::ConnectionLoss);
    next_event(&mut ev, |e| e.state == KeeperState::Disconnected).await;
    let (sid, pw) = within(T, server).await.unwrap();
    assert_eq!(sid, 0x42);
    assert_eq!(pw, vec![7u8; 16]);
}

/// A server that closes the socket without a ConnectResponse (what ZooKeeper does when the
/// client's lastZxidSeen is ahead of it) makes the client try the next host.
#[tokio::test]
async fn host_that_refuses_the_handshake_is_skipped() {
    let Some(server) = shared() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refuser = listener.local_addr().unwrap().to_string();
    let refusals = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refusals.clone();
    let task = tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let proxy = Proxy::start(server.addr()).await;
    let (zk, _ev) = ZooKeeper::builder(&format!("{refuser},{}", proxy.addr()))
        .session_timeout(T)
        .shuffle_hosts(false)
        .connect()
        .await
        .unwrap();
    assert_eq!(zk.connected_host(), Some(proxy.addr()));
    assert!(refusals.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(zk.exists("/").await.unwrap().is_some());
    task.abort();
}
