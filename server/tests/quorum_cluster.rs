//! A 3-node ensemble of real `ferrokeeper` processes on 127.0.0.1: leader election, writes
//! through a follower, global sessions (ephemerals vanish everywhere on close), leader SIGKILL
//! under write load (failover times printed; no acknowledged write lost; all nodes converge),
//! follower SIGKILL + restart (catch-up) and SIGSTOP / SIGCONT (partition and heal).
//! Rounds of leader kills: `FK_QUORUM_ROUNDS` (default 3). Every process is killed by pid on
//! drop.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;
use support::TestClient;

const N: usize = support::ENSEMBLE_SIZE;

type Cluster = support::Ensemble;

fn create(client: &mut TestClient, path: &str, data: &[u8], flags: i32) -> i32 {
    let request = Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: Acl::open_unsafe(),
        flags,
    });
    client.call(&request).unwrap().0.err
}

fn sync(client: &mut TestClient) {
    let (header, _) = client.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap();
    assert_eq!(header.err, 0);
}

fn get(client: &mut TestClient, path: &str) -> Option<Vec<u8>> {
    match client.call(&Request::GetData(GetDataRequest { path: path.into(), watch: false })).unwrap() {
        (_, Ok(Response::GetData(r))) => Some(r.data.map(|d| d.to_vec()).unwrap_or_default()),
        (header, _) => {
            assert_eq!(header.err, Code::NoNode.as_i32());
            None
        }
    }
}

fn connect(port: u16, budget: Duration) -> TestClient {
    TestClient::connect_within(port, budget)
}

/// Writes unique keys through whichever node answers, recording each acknowledged one.
/// Each acknowledged write: (path, when it was sent, when it was acknowledged).
type Acked = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

fn writer(ports: Vec<u16>, prefix: String, stop: Arc<AtomicBool>, acked: Acked) {
    let mut k = 0u64;
    let mut next = 0usize;
    let mut client: Option<TestClient> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_mut() else {
            next += 1;
            client = TestClient::connect(ports[next % ports.len()]).ok();
            if client.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        let _ = c.set_read_timeout(Duration::from_secs(3));
        let path = format!("{prefix}-{k:06}");
        let request = Request::Create(CreateRequest {
            path: path.clone(),
            data: Some(Bytes::from(path.clone().into_bytes())),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        let sent = Instant::now();
        match c.call(&request) {
            Ok((header, _)) if header.err == 0 => {
                acked.lock().unwrap().push((path, sent, Instant::now()));
                k += 1;
            }
            Ok((header, _)) => panic!("unexpected error {} creating {path}", header.err),
            Err(_) => {
                // Outcome unknown: never counted; the next key is a new one.
                k += 1;
                client = None;
            }
        }
    }
}

#[test]
fn three_node_ensemble() {
    let started = Instant::now();
    let mut cluster = Cluster::new();
    for i in 0..N {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(30));
    println!("leader elected: node {} after {:?}", leader + 1, started.elapsed());
    let follower = (leader + 1) % N;

    // Writes through a follower are visible on every node (sync first).
    let mut writer_client = connect(cluster.port(follower), Duration::from_secs(5));
    assert_eq!(create(&mut writer_client, "/via-follower", b"hello", 0), 0);
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(5));
        sync(&mut reader);
        assert_eq!(get(&mut reader, "/via-follower").as_deref(), Some(&b"hello"[..]), "node {}", i + 1);
    }
    // Reads behind the same connection's writes see them.
    for n in 0..20 {
        let path = format!("/order-{n}");
        assert_eq!(create(&mut writer_client, &path, b"x", 0), 0);
        assert_eq!(get(&mut writer_client, &path).as_deref(), Some(&b"x"[..]));
    }

    // Ephemerals of a closed session vanish on every node.
    let mut owner = connect(cluster.port(follower), Duration::from_secs(5));
    assert_eq!(create(&mut owner, "/eph", b"e", 1), 0);
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(5));
        sync(&mut reader);
        assert!(get(&mut reader, "/eph").is_some(), "ephemeral missing on node {}", i + 1);
    }
    owner.close_session().unwrap();
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(5));
        sync(&mut reader);
        assert!(get(&mut reader, "/eph").is_none(), "ephemeral survived on node {}", i + 1);
    }
    drop(writer_client);

    // Session liveness is global: a follower's client that pings stays alive at the leader
    // (the follower reports touches); once silent, the leader expires it everywhere.
    let options = support::ConnectOptions { timeout_ms: 1000, ..Default::default() };
    let mut short = TestClient::connect_with(cluster.port(follower), &options).unwrap();
    assert_eq!(short.negotiated_timeout, 1000);
    assert_eq!(create(&mut short, "/short-lived", b"e", 1), 0);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(short.ping().unwrap().err, 0);
    }
    let mut reader = connect(cluster.port(leader), Duration::from_secs(5));
    assert!(get(&mut reader, "/short-lived").is_some(), "a pinging session expired");
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(5));
        while get(&mut reader, "/short-lived").is_some() {
            assert!(Instant::now() < deadline, "a silent session did not expire on node {}", i + 1);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(short);

    // SIGKILL the leader under write load, several rounds.
    let rounds: usize = std::env::var("FK_QUORUM_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let ports: Vec<u16> = (0..N).map(|i| cluster.port(i)).collect();
    let mut all_acked = Vec::new();
    let mut failovers = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_stable(Duration::from_secs(30));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (ports, stop, acked) = (ports.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || writer(ports, format!("/r{round}"), stop, acked))
        };
        std::thread::sleep(Duration::from_millis(400));
        let before = acked.lock().unwrap().len();
        let killed_at = Instant::now();
        cluster.kill(leader);
        // A new leader serves: the first write sent after the kill is acknowledged.
        let deadline = killed_at + Duration::from_secs(20);
        let served_at = loop {
            if let Some((_, _, at)) = acked.lock().unwrap().iter().find(|(_, sent, _)| *sent > killed_at) {
                break *at;
            }
            assert!(
                Instant::now() < deadline,
                "no write served after killing the leader\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let failover = served_at.duration_since(killed_at);
        let new_leader = cluster.wait_stable(Duration::from_secs(20));
        println!(
            "round {round}: killed leader node {}; node {} leads; writes served again after {failover:?} \
             ({before} writes acked before the kill)",
            leader + 1,
            new_leader + 1
        );
        failovers.push(failover);
        cluster.start(leader);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap();
        all_acked.extend(acked.lock().unwrap().iter().map(|(p, _, _)| p.clone()));
    }
    println!("failover times: {failovers:?}");
    cluster.wait_stable(Duration::from_secs(30));
    let hash = cluster.wait_converged(Duration::from_secs(20));
    println!("converged after the leader kills: {}", hash.trim());
    // No acknowledged write is lost, on any node.
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(10));
        sync(&mut reader);
        for path in &all_acked {
            assert_eq!(
                get(&mut reader, path).as_deref(),
                Some(path.as_bytes()),
                "node {} lost {path}",
                i + 1
            );
        }
    }
    println!("{} acknowledged writes present on all nodes", all_acked.len());

    // SIGKILL a follower, write more than the leader keeps for a DIFF (commitLogCount 500),
    // restart it: it catches up from a snapshot.
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let victim = (leader + 1) % N;
    cluster.kill(victim);
    let mut client = connect(cluster.port(leader), Duration::from_secs(5));
    let mut expected = BTreeMap::new();
    for n in 0..600 {
        let path = format!("/while-down-{n}");
        assert_eq!(create(&mut client, &path, path.as_bytes(), 0), 0);
        expected.insert(path.clone(), path);
    }
    cluster.start(victim);
    cluster.wait_stable(Duration::from_secs(30));
    cluster.wait_converged(Duration::from_secs(20));
    let mut reader = connect(cluster.port(victim), Duration::from_secs(10));
    for (path, data) in &expected {
        assert_eq!(get(&mut reader, path).as_deref(), Some(data.as_bytes()));
    }
    let victim_log = std::fs::read_to_string(cluster.log_path(victim)).unwrap_or_default();
    println!(
        "restarted follower node {} caught up (snapshot installed: {}; any log truncated: {})",
        victim + 1,
        victim_log.contains("installing the leader's snapshot"),
        (0..N).any(|i| std::fs::read_to_string(cluster.log_path(i))
            .unwrap_or_default()
            .contains("truncating the log"))
    );

    // SIGSTOP a follower (partition), keep writing, SIGCONT (heal): it catches up.
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let victim = (leader + 2) % N;
    wait_synced_followers(cluster.port(leader), 2, "before stopping a follower");
    cluster.signal(victim, "-STOP");
    let mut client = connect(cluster.port(leader), Duration::from_secs(5));
    for n in 0..30 {
        assert_eq!(create(&mut client, &format!("/while-stopped-{n}"), b"s", 0), 0);
    }
    // Past syncLimit (5 ticks of 100 ms) the leader gives the silent follower up: its mntr
    // counts one synced follower where it counted two (bounded wait, asserted).
    wait_synced_followers(cluster.port(leader), 1, &format!("node {} stopped", victim + 1));
    for n in 30..40 {
        assert_eq!(create(&mut client, &format!("/while-stopped-{n}"), b"s", 0), 0);
    }
    cluster.signal(victim, "-CONT");
    cluster.wait_stable(Duration::from_secs(30));
    cluster.wait_converged(Duration::from_secs(20));
    let mut reader = connect(cluster.port(victim), Duration::from_secs(10));
    sync(&mut reader);
    assert_eq!(get(&mut reader, "/while-stopped-39").as_deref(), Some(&b"s"[..]));
    println!("stopped follower node {} healed", victim + 1);

    // A leader alone with proposals no follower acknowledged: both followers stopped, writes
    // sent to the leader (they cannot commit), the leader killed, the followers resumed, the
    // old leader restarted. Its extra log entries are truncated (or, if a follower still read
    // them from its socket buffer, committed by the new leader); either way all nodes agree.
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let followers: Vec<usize> = (0..N).filter(|&i| i != leader).collect();
    let mut client = connect(cluster.port(leader), Duration::from_secs(5));
    client.set_read_timeout(Duration::from_millis(200)).unwrap();
    for &f in &followers {
        cluster.signal(f, "-STOP");
    }
    for n in 0..5 {
        let request = Request::Create(CreateRequest {
            path: format!("/uncommitted-{n}"),
            data: Some(Bytes::from_static(b"u")),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        assert!(client.call(&request).is_err(), "a write committed without a quorum");
    }
    cluster.kill(leader);
    for &f in &followers {
        cluster.signal(f, "-CONT");
    }
    cluster.wait_stable(Duration::from_secs(30));
    cluster.start(leader);
    cluster.wait_stable(Duration::from_secs(30));
    let hash = cluster.wait_converged(Duration::from_secs(20));
    let mut present = Vec::new();
    for i in 0..N {
        let mut reader = connect(cluster.port(i), Duration::from_secs(10));
        sync(&mut reader);
        present.push(
            (0..5).map(|n| get(&mut reader, &format!("/uncommitted-{n}")).is_some()).collect::<Vec<_>>(),
        );
    }
    assert!(present.iter().all(|p| *p == present[0]), "nodes disagree on unacknowledged writes: {present:?}");
    let old_leader_log = std::fs::read_to_string(cluster.log_path(leader)).unwrap_or_default();
    println!(
        "old leader node {} rejoined: truncated {}; unacknowledged writes kept: {:?}; {}",
        leader + 1,
        old_leader_log.contains("truncating the log"),
        present[0],
        hash.trim()
    );
    println!("total {:?}", started.elapsed());
}

/// Waits (≤ 10 s) until the leader's `mntr` reports `expected` synced followers; fails saying
/// what it reported.
fn wait_synced_followers(port: u16, expected: usize, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mntr = support::four_letter(port, "mntr").unwrap_or_default();
        let synced = mntr
            .lines()
            .find_map(|l| l.strip_prefix("zk_synced_followers\t"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if synced == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: the leader reports {synced:?} synced followers, not {expected}, after 10 s:\n{mntr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
