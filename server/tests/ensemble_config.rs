//! `/zookeeper/config` in an ensemble, against Apache ZooKeeper 3.8: a 3-node ferrokeeper
//! ensemble and a 3-node ZooKeeper ensemble with the same zoo.cfg shape
//! (`server.N=host:quorumPort:electionPort;clientHost:clientPort`) serve the same
//! membership text (`server.N=...:participant;...` lines, `version=0`) with the same stat
//! (mtime aside) on every member, list it in `conf`, keep a data watch on it (`wchs`), and
//! zkCli.sh's `config`, `config -s` and `config -c` print the same, and so does its
//! `reconfig -add` (ReconfigDisabled: dynamic reconfiguration is off). Ports are normalised,
//! since the two ensembles run on different ones. A ferrokeeper ensemble whose server lines
//! carry no client address (only `clientPort=`) serves the lines without `;...`, as
//! ZooKeeper does (checked by hand against 3.8: `server.1=127.0.0.1:22281:22381:participant`).
//!
//! `FK_SKIP_ORACLE=1` skips the ZooKeeper half when it is not installed.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;
use support::{Ensemble, Layout, ServerKind, TestClient, ZKCLI, four_letter};

const BUDGET: Duration = Duration::from_secs(60);

fn start(kind: ServerKind, layout: &Layout) -> Ensemble {
    let mut ensemble = Ensemble::build_layout(kind, &[], false, layout);
    for i in 0..ensemble.size() {
        ensemble.start(i);
    }
    ensemble.wait_stable(BUDGET);
    ensemble
}

/// Every number of four digits or more right after a `:` or `Port=` becomes `<port>` (the
/// two ensembles run on other ports).
fn ports_out(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        out.push(c);
        if c == ':' || (c == '=' && out.ends_with("Port=")) {
            let digits = rest.find(|d: char| !d.is_ascii_digit()).unwrap_or(rest.len());
            if digits >= 4 {
                out.push_str("<port>");
                rest = &rest[digits..];
            }
        }
    }
    out
}

fn get_config(client: &mut TestClient, watch: bool) -> (String, Stat) {
    let request = Request::GetData(GetDataRequest { path: "/zookeeper/config".into(), watch });
    match client.call(&request).unwrap() {
        (header, Ok(Response::GetData(reply))) => {
            assert_eq!(header.err, 0);
            (String::from_utf8(reply.data.unwrap_or_default().to_vec()).unwrap(), reply.stat)
        }
        (header, other) => panic!("getData /zookeeper/config: err {} {other:?}", header.err),
    }
}

/// zkCli.sh running `command` against `port`: the lines after the connection chatter.
fn zkcli(port: u16, command: &str) -> Vec<String> {
    let mut cmd = std::process::Command::new(ZKCLI);
    cmd.arg("-server")
        .arg(format!("127.0.0.1:{port}"))
        .args(command.split(' '))
        .env("CLIENT_JVMFLAGS", "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC");
    let (_, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    let text = format!("{stdout}{stderr}");
    let lines: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("WatchedEvent state:SyncConnected"))
        .skip(1)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("SLF4J:") && !l.contains(" INFO ") && !l.contains(" WARN ")
        })
        .map(|l| match l {
            _ if l.starts_with("mtime = ") => "mtime = <time>".to_owned(),
            // Its length depends on how many digits the ports have.
            _ if l.starts_with("dataLength = ") => "dataLength = <length>".to_owned(),
            _ => ports_out(l),
        })
        .collect();
    assert!(!lines.is_empty(), "zkCli {command} printed nothing useful:\n{text}");
    lines
}

/// What one ensemble shows of its configuration, ports normalised.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    data: String,
    /// The stat without mtime (each member sets it when it starts).
    stat: Stat,
    conf_tail: String,
    wchs: String,
    zkcli_config_s: Vec<String>,
    zkcli_config_c: Vec<String>,
    /// zkCli's `reconfig -add` (reconfigEnabled=false: ReconfigDisabled on both).
    zkcli_reconfig: Vec<String>,
}

fn observe(ensemble: &Ensemble) -> Seen {
    let mut per_member = Vec::new();
    for i in 0..ensemble.size() {
        let mut client = TestClient::connect_within(ensemble.port(i), BUDGET);
        let (data, mut stat) = get_config(&mut client, false);
        assert!(stat.mtime > 0, "member {i}: mtime is when it started");
        assert_eq!(stat.data_length as usize, data.len());
        assert!(
            data.contains(&format!("server.{}=127.0.0.1:", i + 1))
                && data.contains(&format!(";127.0.0.1:{}", ensemble.port(i))),
            "member {i} lists itself with its client port: {data}"
        );
        stat.mtime = 0;
        stat.data_length = 0;
        per_member.push((ports_out(&data), stat));
    }
    assert!(per_member.windows(2).all(|w| w[0] == w[1]), "members differ: {per_member:?}");
    let (data, stat) = per_member.remove(0);
    let conf = four_letter(ensemble.port(0), "conf").unwrap();
    let conf_tail = ports_out(&conf[conf.find("initLimit=").expect("conf has quorum keys")..]);
    // A data watch on the config node is an ordinary one.
    let mut watcher = TestClient::connect_within(ensemble.port(1), BUDGET);
    get_config(&mut watcher, true);
    let wchs = four_letter(ensemble.port(1), "wchs").unwrap();
    let mut zkcli_config_c = zkcli(ensemble.port(2), "config -c");
    // Java lists the client addresses in hash order.
    for line in &mut zkcli_config_c {
        if let Some((version, list)) = line.split_once(' ') {
            let mut items: Vec<&str> = list.split(',').collect();
            items.sort_unstable();
            *line = format!("{version} {}", items.join(","));
        }
    }
    Seen {
        data,
        stat,
        conf_tail,
        wchs,
        zkcli_config_s: zkcli(ensemble.port(2), "config -s"),
        zkcli_config_c,
        zkcli_reconfig: zkcli(ensemble.port(0), "reconfig -add server.9=127.0.0.1:1:2;3"),
    }
}

#[test]
fn config_node_matches_zookeeper() {
    let layout = Layout { client_in_server_lines: true, ..Layout::default() };
    let with_oracle = support::oracle_available();
    let (ours, oracle) = std::thread::scope(|s| {
        let ours = s.spawn(|| observe(&start(ServerKind::Ferrokeeper, &layout)));
        let oracle = with_oracle.then(|| s.spawn(|| observe(&start(ServerKind::ZooKeeper, &layout))));
        (ours.join().unwrap(), oracle.map(|o| o.join().unwrap()))
    });
    let expected_lines: Vec<String> = (1..=3)
        .map(|i| format!("server.{i}=127.0.0.1:<port>:<port>:participant;127.0.0.1:<port>"))
        .chain(["version=0".to_owned()])
        .collect();
    assert_eq!(ours.data, expected_lines.join("\n"));
    assert_eq!((ours.stat.mzxid, ours.stat.version, ours.stat.aversion), (0, -1, -1));
    assert!(ours.conf_tail.ends_with(&format!("membership: \n{}", ours.data)), "{}", ours.conf_tail);
    assert!(
        ours.zkcli_reconfig.iter().any(|l| l.contains("Reconfig is disabled")),
        "{:?}",
        ours.zkcli_reconfig
    );
    if let Some(oracle) = oracle {
        assert_eq!(ours, oracle, "ferrokeeper (left) and Apache ZooKeeper 3.8 (right) differ");
    }
}

#[test]
fn static_client_port_lists_no_client_address() {
    let ensemble = start(ServerKind::Ferrokeeper, &Layout::default());
    let mut client = TestClient::connect_within(ensemble.port(0), BUDGET);
    let (data, _) = get_config(&mut client, false);
    let expected: Vec<String> = (1..=3)
        .map(|i| format!("server.{i}=127.0.0.1:<port>:<port>:participant"))
        .chain(["version=0".to_owned()])
        .collect();
    assert_eq!(ports_out(&data), expected.join("\n"));
}
