//! Read-only mode (`readonlymode.enabled`), ferrokeeper and Apache ZooKeeper 3.8 side by
//! side (ZooKeeper with `-Dreadonlymode.enabled=true`, the system property it reads): a
//! 3-node ensemble loses two members; the survivor, without a quorum, says `Mode: read-only`
//! (`srvr`) and `ro` (`isro`), refuses a client that did not ask for read-only, and lets a
//! read-only one in with `readOnly=true` in its ConnectResponse: it reads, a write gets
//! NotReadOnly (-119), `sync` too. kazoo (`read_only=True`, `tests/kazoo/read_only.py`) sees
//! CONNECTED_RO, reads, gets NotReadOnlyCallError on a create; once the two members are back,
//! it moves to a read-write server on its own and its create succeeds.
//!
//! `FK_SKIP_ORACLE=1` skips the ZooKeeper half (and kazoo when missing).
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::*;
use support::{ConnectOptions, Ensemble, ServerKind, TestClient, four_letter};

const BUDGET: Duration = Duration::from_secs(30);

fn kazoo_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_eq!(
            std::env::var("FK_SKIP_ORACLE").as_deref(),
            Ok("1"),
            "python3 cannot import kazoo: run scripts/install-test-deps.sh (or set FK_SKIP_ORACLE=1)"
        );
    }
    ok
}

/// What the survivor showed, to compare across implementations.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    mode: String,
    isro: String,
    plain_client_refused: bool,
    read_only_flag: Option<bool>,
    read: Vec<u8>,
    write_err: i32,
    sync_err: i32,
}

fn scenario(kind: ServerKind, kazoo: bool) -> Seen {
    // ZooKeeper 3.8 answers a new session on a read-only server with a NotReadOnly reply
    // header where the ConnectResponse belongs (its ReadOnlyRequestProcessor refuses
    // createSession unless the session is local), so it needs local sessions for this;
    // ferrokeeper makes read-only sessions local by itself.
    let extra: &[(&str, &str)] = match kind {
        ServerKind::ZooKeeper => &[("readonlymode.enabled", "true"), ("localSessionsEnabled", "true")],
        ServerKind::Ferrokeeper => &[("readonlymode.enabled", "true")],
    };
    let mut ensemble = Ensemble::build(kind, extra, false);
    ensemble.jvm_flags.push("-Dreadonlymode.enabled=true".into());
    for i in 0..3 {
        ensemble.start(i);
    }
    let leader = ensemble.wait_stable(BUDGET);
    let mut writer = TestClient::connect_within(ensemble.port(leader), BUDGET);
    let create = Request::Create(CreateRequest {
        path: "/ro-data".into(),
        data: Some(Bytes::from_static(b"v1")),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    assert_eq!(writer.call(&create).unwrap().0.err, 0);
    drop(writer);
    let survivor = (leader + 1) % 3;
    // Let the survivor apply the create before the quorum goes.
    let mut reader = TestClient::connect_within(ensemble.port(survivor), BUDGET);
    assert_eq!(reader.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap().0.err, 0);
    drop(reader);
    let down: Vec<usize> = (0..3).filter(|i| *i != survivor).collect();
    for i in &down {
        ensemble.kill(*i);
    }
    let port = ensemble.port(survivor);
    let deadline = Instant::now() + BUDGET;
    while ensemble.mode(survivor) != "read-only" {
        assert!(Instant::now() < deadline, "{} never read-only: {}", kind.name(), ensemble.mode(survivor));
        std::thread::sleep(Duration::from_millis(50));
    }
    let isro = four_letter(port, "isro").unwrap();
    let plain = ConnectOptions::default();
    let plain_client_refused = TestClient::handshake(port, &plain).is_err();
    let options = ConnectOptions { read_only: Some(true), ..ConnectOptions::default() };
    let mut client = TestClient::connect_with(port, &options)
        .unwrap_or_else(|e| panic!("{}: read-only connect: {e}", kind.name()));
    let read_only_flag = client.connect_response.read_only;
    let read = match client.call(&Request::GetData(GetDataRequest { path: "/ro-data".into(), watch: false }))
    {
        Ok((_, Ok(ferrokeeper_proto::response::Response::GetData(r)))) => r.data.unwrap().to_vec(),
        other => panic!("{}: read in read-only mode: {other:?}", kind.name()),
    };
    let write_err = client.call(&create).unwrap_or_else(|e| panic!("{}: create: {e}", kind.name())).0.err;
    let sync_err = client
        .call(&Request::Sync(SyncRequest { path: "/".into() }))
        .unwrap_or_else(|e| panic!("{}: sync: {e}", kind.name()))
        .0
        .err;
    let seen = Seen {
        mode: ensemble.mode(survivor),
        isro,
        plain_client_refused,
        read_only_flag,
        read,
        write_err,
        sync_err,
    };
    drop(client);
    if kazoo {
        let hosts: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", ensemble.port(i))).collect();
        let script = format!("{}/tests/kazoo/read_only.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(hosts.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        if first != "phase1 OK" {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{}: kazoo phase 1: {first}\n{}\n{}",
                kind.name(),
                String::from_utf8_lossy(&output.stderr),
                ensemble.logs()
            );
        }
        for i in &down {
            ensemble.start(*i);
        }
        writeln!(child.stdin.take().unwrap(), "go").unwrap();
        let second = lines.next().and_then(Result::ok).unwrap_or_default();
        let status = child.wait().unwrap();
        assert!(
            status.success() && second == "kazoo read-only: OK",
            "{}: kazoo phase 2: {second}\n{}",
            kind.name(),
            ensemble.logs()
        );
    }
    seen
}

#[test]
fn read_only_mode_matches_zookeeper() {
    let kazoo = kazoo_available();
    let with_oracle = support::oracle_available();
    let (ours, oracle) = std::thread::scope(|s| {
        let ours = s.spawn(|| scenario(ServerKind::Ferrokeeper, kazoo));
        let oracle = with_oracle.then(|| s.spawn(|| scenario(ServerKind::ZooKeeper, kazoo)));
        (ours.join().unwrap(), oracle.map(|o| o.join().unwrap()))
    });
    assert_eq!(ours.mode, "read-only");
    assert_eq!(ours.isro, "ro");
    assert!(ours.plain_client_refused);
    assert_eq!(ours.read_only_flag, Some(true));
    assert_eq!(ours.read, b"v1");
    assert_eq!(ours.write_err, Code::NotReadOnly.as_i32());
    if let Some(oracle) = oracle {
        assert_eq!(ours, oracle, "ferrokeeper (left) and Apache ZooKeeper 3.8 (right) differ");
    }
}
