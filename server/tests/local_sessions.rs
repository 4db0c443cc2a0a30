//! Local sessions (`localSessionsEnabled`) against Apache ZooKeeper 3.8, each as a 3-node
//! ensemble, with and without `localSessionsUpgradingEnabled`. A session made on a follower
//! is local there: it writes persistent nodes, its mntr counts it in `zk_local_sessions`, it
//! may reconnect to that server but is unknown (expired) on another; an ephemeral create fails
//! with EphemeralOnLocalSession (-120), or, when upgrading, makes it global first (the node
//! is then seen everywhere with the session as owner, the session may move, and closing it
//! removes the node). Both servers must give the same sequence of outcomes.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;
use support::{ConnectOptions, Ensemble, ServerKind, TestClient, four_letter};

const BUDGET: Duration = Duration::from_secs(30);

fn create(client: &mut TestClient, path: &str, flags: i32) -> i32 {
    let request = Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"x")),
        acl: Acl::open_unsafe(),
        flags,
    });
    client.call(&request).map_or(i32::MIN, |(header, _)| header.err)
}

/// The node's ephemeral owner as seen on `port` after a sync, or the error code.
fn owner_on(port: u16, path: &str) -> Result<i64, i32> {
    let mut client = TestClient::connect_within(port, BUDGET);
    assert_eq!(client.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap().0.err, 0);
    match client.call(&Request::Exists(ExistsRequest { path: path.into(), watch: false })).unwrap() {
        (_, Ok(Response::Exists(r))) => Ok(r.stat.ephemeral_owner),
        (header, _) => Err(header.err),
    }
}

fn mntr(port: u16, key: &str) -> String {
    let text = four_letter(port, "mntr").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}\t")).map(str::to_owned)).unwrap_or_default()
}

/// Reconnects the session on `port`: whether the server took it.
fn reconnect(client: &TestClient, port: u16) -> bool {
    let options = ConnectOptions {
        session_id: client.session_id,
        passwd: client.passwd.clone(),
        last_zxid_seen: client.last_zxid,
        ..ConnectOptions::default()
    };
    let deadline = Instant::now() + BUDGET;
    loop {
        match TestClient::connect_with(port, &options) {
            Ok(_) => return true,
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => return false,
            // Not caught up with the client's zxid yet: it closes the socket; try again.
            Err(error) => assert!(Instant::now() < deadline, "reconnect: {error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(kind: ServerKind, upgrading: bool) -> Vec<String> {
    let flag = if upgrading { "true" } else { "false" };
    let extra = [("localSessionsEnabled", "true"), ("localSessionsUpgradingEnabled", flag)];
    let mut ensemble = Ensemble::build(kind, &extra, false);
    for i in 0..3 {
        ensemble.start(i);
    }
    let leader = ensemble.wait_stable(BUDGET);
    let (f, g) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut seen = Vec::new();
    let mut client = TestClient::connect_within(ensemble.port(f), BUDGET);
    seen.push(format!("local sessions on f: {}", mntr(ensemble.port(f), "zk_local_sessions")));
    seen.push(format!("persistent create: {}", create(&mut client, "/ls-p", 0)));
    seen.push(format!("ephemeral create: {}", create(&mut client, "/ls-e", 1)));
    let owner = owner_on(ensemble.port(g), "/ls-e");
    seen.push(format!(
        "ephemeral seen on g, owned by the session: {:?}",
        owner.map(|o| o == client.session_id)
    ));
    seen.push(format!("local sessions on f: {}", mntr(ensemble.port(f), "zk_local_sessions")));
    seen.push(format!("session taken on g: {}", reconnect(&client, ensemble.port(g))));
    let mut again = TestClient::connect_with(
        ensemble.port(f),
        &ConnectOptions {
            session_id: client.session_id,
            passwd: client.passwd.clone(),
            last_zxid_seen: client.last_zxid,
            ..ConnectOptions::default()
        },
    );
    seen.push(format!("session taken again on f: {}", again.is_ok()));
    if let Ok(c) = again.as_mut() {
        seen.push(format!("close: {}", c.close_session().map_or(i32::MIN, |h| h.err)));
    }
    seen.push(format!(
        "ephemeral after the close: {:?}",
        owner_on(ensemble.port(leader), "/ls-e").map(|_| "present")
    ));
    seen
}

#[test]
fn local_sessions_match_zookeeper() {
    let with_oracle = support::oracle_available();
    for upgrading in [false, true] {
        let (ours, oracle) = std::thread::scope(|s| {
            let ours = s.spawn(|| scenario(ServerKind::Ferrokeeper, upgrading));
            let oracle = with_oracle.then(|| s.spawn(|| scenario(ServerKind::ZooKeeper, upgrading)));
            (ours.join().unwrap(), oracle.map(|o| o.join().unwrap()))
        });
        println!("upgrading={upgrading}\n  ferrokeeper: {ours:?}\n  zookeeper:   {oracle:?}");
        let ephemeral = if upgrading { "0" } else { "-120" };
        assert!(ours.contains(&format!("ephemeral create: {ephemeral}")), "{ours:?}");
        if let Some(oracle) = oracle {
            assert_eq!(ours, oracle, "upgrading={upgrading}: ferrokeeper (left) vs ZooKeeper 3.8 (right)");
        }
    }
}
