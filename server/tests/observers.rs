//! Observers, with real processes: 3 voters + 2 observers (`server.N=...:observer`,
//! `peerType=observer`). Observers say `Mode: observer` (`srvr`), `observing - broadcast` and
//! their leader's id (`mntr`), `ferrokeeper_role{role="observer"}` (`/metrics`); the leader
//! counts them apart (`zk_synced_observers`); `/zookeeper/config` lists them as `:observer`;
//! roles and config as Apache ZooKeeper 3.8 shows them in the same layout. Writes through an
//! observer are acknowledged and read back from the other observer; the leader is SIGKILLed
//! under writes through the observers and a new leader takes over; every member (observers
//! included) is restarted in turn; no acknowledged write is lost on any member. Observers do
//! not vote: with two of the three voters down, the last voter and the two observers elect no
//! leader and serve nothing; one voter back, they serve again.
//!
//! `FK_SKIP_ORACLE=1` skips the ZooKeeper half when it is not installed.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;
use support::{Ensemble, Layout, ServerKind, TestClient, four_letter};

const BUDGET: Duration = Duration::from_secs(30);
const VOTERS: usize = 3;
const OBSERVERS: [usize; 2] = [3, 4];

fn layout() -> Layout {
    Layout { voters: VOTERS, observers: OBSERVERS.len(), client_in_server_lines: false, metrics: true }
}

fn start(kind: ServerKind) -> (Ensemble, usize) {
    let mut ensemble = Ensemble::build_layout(kind, &[], false, &layout());
    for i in 0..ensemble.size() {
        ensemble.start(i);
    }
    let leader = ensemble.wait_stable(BUDGET);
    (ensemble, leader)
}

fn mntr(port: u16, key: &str) -> Option<String> {
    let text = four_letter(port, "mntr").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}\t")).map(str::to_owned))
}

/// What an ensemble shows of its observers: per member (mode, peer state, observer master),
/// and the leader's synced followers / observers. Waits until both observers are synced.
/// Per member: (srvr mode, mntr peer state, observer master).
type MemberRole = (String, Option<String>, Option<String>);

fn roles(ensemble: &Ensemble, leader: usize) -> (Vec<MemberRole>, Vec<String>) {
    let deadline = Instant::now() + BUDGET;
    let port = ensemble.port(leader);
    while mntr(port, "zk_synced_observers").as_deref() != Some("2") {
        assert!(Instant::now() < deadline, "observers not synced: {:?}", four_letter(port, "mntr"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let members = (0..ensemble.size())
        .map(|i| {
            let port = ensemble.port(i);
            let master = mntr(port, "zk_observer_master_id").map(|id| {
                assert_eq!(id, (leader + 1).to_string(), "node {}: observer master", i + 1);
                "<leader>".to_owned()
            });
            (ensemble.mode(i), mntr(port, "zk_peer_state"), master)
        })
        .collect();
    let leader_keys = ["zk_synced_followers", "zk_synced_observers"]
        .iter()
        .map(|key| format!("{key}={}", mntr(port, key).unwrap_or_default()))
        .collect();
    (members, leader_keys)
}

/// Every run of digits right after a `:` becomes `<port>` (the ensembles use other ports).
fn ports_out(text: &str) -> String {
    let mut out = String::new();
    let mut digits = false;
    for c in text.chars() {
        match (c.is_ascii_digit(), digits) {
            (true, true) => {}
            (true, false) if out.ends_with(':') => {
                out.push_str("<port>");
                digits = true;
            }
            _ => {
                out.push(c);
                digits = false;
            }
        }
    }
    out
}

fn create(client: &mut TestClient, path: &str, data: &[u8]) -> i32 {
    let request = Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    client.call(&request).unwrap().0.err
}

fn get(client: &mut TestClient, path: &str) -> Option<Vec<u8>> {
    let (_, reply) = client.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap();
    assert!(reply.is_ok());
    match client.call(&Request::GetData(GetDataRequest { path: path.into(), watch: false })).unwrap() {
        (_, Ok(Response::GetData(r))) => Some(r.data.map(|d| d.to_vec()).unwrap_or_default()),
        _ => None,
    }
}

#[test]
fn observers_match_zookeeper_roles() {
    let with_oracle = support::oracle_available();
    let (ours, oracle) = std::thread::scope(|s| {
        let ours = s.spawn(|| {
            let (ensemble, leader) = start(ServerKind::Ferrokeeper);
            let mut client = TestClient::connect_within(ensemble.port(OBSERVERS[0]), BUDGET);
            let config = get(&mut client, "/zookeeper/config").unwrap();
            for i in 0..ensemble.size() {
                let role = if OBSERVERS.contains(&i) {
                    "observer"
                } else if i == leader {
                    "leader"
                } else {
                    "follower"
                };
                let sample = format!("ferrokeeper_role{{role=\"{role}\"}} 1");
                assert!(ensemble.metrics(i).contains(&sample), "node {}: no {sample} in /metrics", i + 1);
            }
            (roles(&ensemble, leader), String::from_utf8(config).unwrap())
        });
        let oracle = with_oracle.then(|| {
            s.spawn(|| {
                let (ensemble, leader) = start(ServerKind::ZooKeeper);
                let mut client = TestClient::connect_within(ensemble.port(OBSERVERS[0]), BUDGET);
                let config = get(&mut client, "/zookeeper/config").unwrap();
                (roles(&ensemble, leader), String::from_utf8(config).unwrap())
            })
        });
        (ours.join().unwrap(), oracle.map(|o| o.join().unwrap()))
    });
    let ((members, leader_keys), config) = ours;
    for i in OBSERVERS {
        assert_eq!(members[i].0, "observer", "node {}", i + 1);
        assert_eq!(members[i].1.as_deref(), Some("observing - broadcast"));
        assert_eq!(members[i].2.as_deref(), Some("<leader>"));
    }
    assert_eq!(leader_keys, ["zk_synced_followers=2", "zk_synced_observers=2"]);
    let roles_listed: Vec<&str> = config.lines().filter_map(|l| l.split(':').nth(3)).collect();
    assert_eq!(
        roles_listed,
        ["participant", "participant", "participant", "observer", "observer"],
        "{config}"
    );
    if let Some(((oracle_members, oracle_leader_keys), oracle_config)) = oracle {
        assert_eq!(ports_out(&config), ports_out(&oracle_config), "/zookeeper/config with observers");
        // Which voter leads differs between runs; compare the multiset of member roles.
        let sorted = |mut v: Vec<MemberRole>| {
            v.sort();
            v
        };
        assert_eq!(sorted(members), sorted(oracle_members), "ferrokeeper (left) vs ZooKeeper (right)");
        // ZooKeeper counts a follower that is still syncing later; ours are all synced here.
        assert_eq!(leader_keys[1], oracle_leader_keys[1]);
    }
}

#[test]
fn observers_serve_survive_a_leader_kill_and_never_vote() {
    let (mut ensemble, leader) = start(ServerKind::Ferrokeeper);
    // Writes through an observer, read from the other one.
    let mut via_observer = TestClient::connect_within(ensemble.port(OBSERVERS[0]), BUDGET);
    assert_eq!(create(&mut via_observer, "/through-observer", b"o1"), 0);
    let mut other = TestClient::connect_within(ensemble.port(OBSERVERS[1]), BUDGET);
    assert_eq!(get(&mut other, "/through-observer").as_deref(), Some(&b"o1"[..]));
    assert_eq!(get(&mut via_observer, "/through-observer").as_deref(), Some(&b"o1"[..]));
    drop((via_observer, other));

    // Leader SIGKILL under writes through both observers: a new voter leads, nothing
    // acknowledged is lost anywhere.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: support::Acked = Arc::new(Mutex::new(Vec::new()));
    let ports: Vec<u16> = OBSERVERS.iter().map(|i| ensemble.port(*i)).collect();
    let load = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || support::write_load(ports, "/load".into(), stop, acked))
    };
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    ensemble.kill(leader);
    let deadline = killed_at + BUDGET;
    while !acked.lock().unwrap().iter().any(|(_, sent, _)| *sent > killed_at) {
        assert!(Instant::now() < deadline, "no write served after the leader kill\n{}", ensemble.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("writes through the observers served again {:?} after the leader kill", killed_at.elapsed());
    let new_leader = ensemble.wait_stable(BUDGET);
    assert!(new_leader < VOTERS, "a voter leads");
    ensemble.start(leader);
    ensemble.wait_stable(BUDGET);
    // Rolling restart of every member, observers included, the writes going on.
    for i in 0..ensemble.size() {
        let restarted_at = Instant::now();
        ensemble.kill(i);
        ensemble.start(i);
        ensemble.wait_stable(BUDGET);
        let deadline = restarted_at + BUDGET;
        while !acked.lock().unwrap().iter().any(|(_, sent, _)| *sent > restarted_at) {
            assert!(Instant::now() < deadline, "no write served after restarting node {}", i + 1);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    ensemble.wait_converged(BUDGET);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "too few writes: {}", acked.len());
    for i in 0..ensemble.size() {
        support::assert_all_present(ensemble.port(i), &acked, &format!("node {}", i + 1));
    }

    // Observers never vote: one voter and two observers are not a quorum.
    let leader = ensemble.wait_stable(BUDGET);
    let others: Vec<usize> = (0..VOTERS).filter(|i| *i != leader).collect();
    ensemble.kill(leader);
    ensemble.kill(others[0]);
    // Grace for a leader the two voters may have elected between the kills to step down.
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for i in [others[1], OBSERVERS[0], OBSERVERS[1]] {
            let mode = ensemble.mode(i);
            assert!(!matches!(mode.as_str(), "leader" | "follower" | "observer"), "node {} is {mode}", i + 1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ensemble.start(leader);
    let back = ensemble.wait_stable(BUDGET);
    assert!(back < VOTERS);
    let mut client = TestClient::connect_within(ensemble.port(OBSERVERS[1]), BUDGET);
    assert_eq!(create(&mut client, "/after-quorum-returned", b"q"), 0);
}
