//! SessionMoved (-118) against Apache ZooKeeper 3.8, each as a 3-node ensemble: a session
//! made on one follower is taken over by a second connection on the other follower (same id
//! and password) while the first connection stays open. A write on the old connection is
//! refused with SessionMoved, which both close the connection over without a reply
//! (ZOOKEEPER-710); writes on the new one succeed, and a write before the move succeeded.
//! The same once more with the session moving to the leader, its old follower connection
//! writing. That the write was refused and not applied: it is absent everywhere.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::*;
use support::{ConnectOptions, Ensemble, ServerKind, TestClient};

const BUDGET: Duration = Duration::from_secs(30);

/// What a call got: its error code, or `CLOSED` when the server closed the connection.
const CLOSED: i32 = i32::MIN;

fn create(client: &mut TestClient, path: &str) -> i32 {
    let request = Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"x")),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    client.call(&request).map_or(CLOSED, |(header, _)| header.err)
}

fn read(client: &mut TestClient, path: &str) -> i32 {
    client
        .call(&Request::GetData(GetDataRequest { path: path.into(), watch: false }))
        .map_or(CLOSED, |(header, _)| header.err)
}

fn take_over(session: &TestClient, port: u16) -> TestClient {
    let options = ConnectOptions {
        session_id: session.session_id,
        passwd: session.passwd.clone(),
        last_zxid_seen: session.last_zxid,
        ..ConnectOptions::default()
    };
    // The server refuses a client that has seen a newer zxid than it applied (it closes the
    // socket): a moment later it has caught up.
    let deadline = std::time::Instant::now() + BUDGET;
    loop {
        match TestClient::connect_with(port, &options) {
            Ok(client) => return client,
            Err(error) => assert!(std::time::Instant::now() < deadline, "no take-over: {error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Error codes, in order: (old write, old read, new write, the old write's node) for a move
/// between followers, then for a move to the leader.
fn scenario(kind: ServerKind) -> Vec<i32> {
    let mut ensemble = Ensemble::build(kind, &[], false);
    for i in 0..3 {
        ensemble.start(i);
    }
    let leader = ensemble.wait_stable(BUDGET);
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut codes = Vec::new();
    for (round, (from, to)) in [(a, b), (a, leader)].into_iter().enumerate() {
        let mut old = TestClient::connect_within(ensemble.port(from), BUDGET);
        assert_eq!(create(&mut old, &format!("/sm{round}-before")), 0, "{}", kind.name());
        let mut new = take_over(&old, ensemble.port(to));
        assert_eq!(new.session_id, old.session_id);
        codes.push(create(&mut old, &format!("/sm{round}-old")));
        codes.push(read(&mut old, &format!("/sm{round}-before")));
        codes.push(create(&mut new, &format!("/sm{round}-new")));
        // The refused write left nothing behind (the new connection syncs first).
        assert_eq!(new.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap().0.err, 0);
        codes.push(read(&mut new, &format!("/sm{round}-old")));
    }
    codes
}

#[test]
fn session_moved_matches_zookeeper() {
    let with_oracle = support::oracle_available();
    let (ours, oracle) = std::thread::scope(|s| {
        let ours = s.spawn(|| scenario(ServerKind::Ferrokeeper));
        let oracle = with_oracle.then(|| s.spawn(|| scenario(ServerKind::ZooKeeper)));
        (ours.join().unwrap(), oracle.map(|o| o.join().unwrap()))
    });
    let no_node = Code::NoNode.as_i32();
    assert_eq!(ours, [CLOSED, CLOSED, 0, no_node, CLOSED, CLOSED, 0, no_node]);
    if let Some(oracle) = oracle {
        assert_eq!(ours, oracle, "ferrokeeper (left) and Apache ZooKeeper 3.8 (right) differ");
    }
}
