//! Failover inside a real 3-node ensemble: a session connected to one server keeps its id,
//! its ephemeral node and its watches when that server is killed, and reconnects to another
//! server of the connect string. Runs against Apache ZooKeeper by default and against
//! ferrokeeper with `FK_SERVER_BIN`; the ensemble is started and stopped (by pid) with
//! `scripts/cluster-zk.sh`.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ferrokeeper_client::*;
use support::{ZK_JAR, free_port, temp_dir, within};

const T: Duration = Duration::from_secs(30);

struct Ensemble {
    dir: PathBuf,
    envs: Vec<(String, String)>,
}

impl Ensemble {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-zk.sh")
    }

    fn run(&self, args: &[&str]) -> String {
        let out =
            Command::new("bash").arg(Self::script()).args(args).envs(self.envs.clone()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cluster-zk.sh {args:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn kill_node(&self, i: u16) {
        let pid = std::fs::read_to_string(self.dir.join(format!("node{i}/pid"))).unwrap();
        let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
        assert!(killed.success());
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(Self::script()).args(["stop", "3"]).envs(self.envs.clone()).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_and_watches_survive_losing_the_connected_server() {
    let bin = std::env::var("FK_SERVER_BIN").ok().filter(|s| !s.is_empty());
    if bin.is_none() && !std::path::Path::new(ZK_JAR).exists() {
        assert_eq!(
            std::env::var("FK_SKIP_ORACLE").as_deref(),
            Ok("1"),
            "Apache ZooKeeper not found at {ZK_JAR}: run scripts/install-test-deps.sh"
        );
        return;
    }
    let dir = temp_dir("ensemble");
    // Three consecutive ports per role, from a free one (node i uses base + i).
    let base = |_: &str| (free_port() / 10 * 10).saturating_sub(10).to_string();
    let client_base: u16 = base("client").parse().unwrap();
    let mut envs = vec![
        ("FK_CLUSTER_DIR".to_owned(), dir.to_string_lossy().into_owned()),
        ("FK_CLIENT_PORT_BASE".to_owned(), client_base.to_string()),
        ("FK_PEER_PORT_BASE".to_owned(), base("peer")),
        ("FK_ELECTION_PORT_BASE".to_owned(), base("election")),
    ];
    match &bin {
        Some(bin) => {
            envs.push(("FK_IMPL".to_owned(), "ferrokeeper".to_owned()));
            envs.push(("FK_BIN".to_owned(), bin.clone()));
        }
        None => envs.push(("FK_IMPL".to_owned(), "zookeeper".to_owned())),
    }
    let ensemble = Ensemble { dir, envs };
    ensemble.run(&["start", "3"]);
    let connect = ensemble.run(&["connect", "3"]).trim().to_owned();

    let (zk, mut events) = within(T, ZooKeeper::connect(&connect, Duration::from_secs(10))).await.unwrap();
    check_config(&zk, client_base, &connect).await;
    let session = zk.session_id();
    let eph =
        within(T, zk.create("/fo-eph", b"", &Acl::open_unsafe(), CreateMode::Ephemeral, None)).await.unwrap();
    within(T, zk.create("/fo-data", b"v0", &Acl::open_unsafe(), CreateMode::Persistent, None)).await.unwrap();
    let (_, _, watch) = within(T, zk.get_data_w("/fo-data")).await.unwrap();

    let host = zk.connected_host().unwrap();
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    ensemble.kill_node(port - client_base);

    // The session moves to another server of the ensemble.
    assert!(zk.wait_for_state(T, |s| s == SessionState::Connected).await);
    let deadline = std::time::Instant::now() + T;
    while zk.connected_host().as_deref() == Some(host.as_str()) || zk.state() != SessionState::Connected {
        assert!(std::time::Instant::now() < deadline, "never reconnected to another server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(zk.session_id(), session, "the session survives the server");
    assert_ne!(zk.connected_host().unwrap(), host);
    // The server it moved to may itself drop clients while the survivors elect a leader; the
    // session then moves on again. Retry connection losses until the ensemble serves.
    let deadline = std::time::Instant::now() + 2 * T;
    let eph_stat = loop {
        match within(T, zk.exists(&eph)).await {
            Ok(stat) => break stat,
            Err(error) if error.is_connection_loss() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("exists after the failover: {error}"),
        }
    };
    assert!(eph_stat.is_some(), "the ephemeral node survives");
    assert_eq!(zk.session_id(), session, "still the same session");

    // The watch set before the failover fires for a change made through another session.
    let others: Vec<&str> = connect.split(',').filter(|h| *h != host).collect();
    // The survivors may still be electing a new leader (ZooKeeper and ferrokeeper refuse
    // clients meanwhile, and noticing a dead leader takes up to syncLimit ticks): retry.
    let deadline = std::time::Instant::now() + 2 * T;
    let other = loop {
        match ZooKeeper::connect(&others.join(","), Duration::from_secs(10)).await {
            Ok((other, _)) => break other,
            Err(error) => assert!(std::time::Instant::now() < deadline, "no survivor serves: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    within(T, other.set_data("/fo-data", b"v1", -1)).await.unwrap();
    let fired = within(T, watch.changed()).await.unwrap();
    assert_eq!(fired.event_type, EventType::NodeDataChanged);
    assert_eq!(fired.path.as_deref(), Some("/fo-data"));
    // And the session-wide stream saw the disconnect and the reconnect.
    let mut saw_disconnect = false;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        saw_disconnect |= e.state == KeeperState::Disconnected;
    }
    assert!(saw_disconnect, "a Disconnected event was delivered");
    within(T, zk.close()).await.unwrap();
    within(T, other.close()).await.unwrap();
}

/// `getConfig` lists the three members with their client ports and `version=0`, as
/// `/zookeeper/config` holds it; `fkcli config -c` prints the version and client addresses.
async fn check_config(zk: &ZooKeeper, client_base: u16, connect: &str) {
    let (data, stat) = within(T, zk.get_config(true)).await.unwrap();
    let text = String::from_utf8(data.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (j, line) in lines[..3].iter().enumerate() {
        let client_port = client_base + j as u16 + 1;
        assert!(line.starts_with(&format!("server.{}=127.0.0.1:", j + 1)), "{text}");
        assert!(line.contains(":participant;") && line.ends_with(&format!(":{client_port}")), "{text}");
    }
    assert_eq!(lines[3], "version=0");
    assert_eq!((stat.mzxid, stat.version, stat.data_length as usize), (0, -1, text.len()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fkcli"))
        .args(["-server", connect, "config", "-c"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (version, clients) =
        printed.split_once(' ').unwrap_or_else(|| panic!("fkcli config -c: {printed:?}"));
    assert_eq!(version, "0");
    let ports: Vec<String> = clients.split(',').map(|c| c.rsplit(':').next().unwrap().to_owned()).collect();
    let expected: Vec<String> = (1..=3).map(|j| (client_base + j).to_string()).collect();
    assert_eq!(ports, expected, "{printed}");
}
