//! Structured logs: with `FK_LOG_FORMAT=json` every line ferrokeeper writes is a JSON object with
//! the event's fields and its span context; an unknown format is refused at start.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{ServerKind, ServerProcess, TestClient};

#[test]
fn json_logs_carry_fields_and_spans() {
    let server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[("snapCount", "2")],
        &[("FK_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
    );
    // snapCount=2: a few writes trigger a snapshot, logged inside its span.
    let mut client = TestClient::connect(server.port).unwrap();
    for i in 0..6 {
        let path = format!("/n{i}");
        let request = ferrokeeper_proto::request::Request::Create(ferrokeeper_proto::CreateRequest {
            path,
            data: None,
            acl: ferrokeeper_proto::Acl::open_unsafe(),
            flags: 0,
        });
        assert_eq!(client.call(&request).unwrap().0.err, 0);
    }
    let _ = client.close_session();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log_tail().contains("snapshot written") {
        assert!(std::time::Instant::now() < deadline, "no snapshot log line:\n{}", server.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string() && line["target"].is_string(),
            "{line}"
        );
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let serving = lines.iter().find(|l| l["fields"]["message"] == "serving clients").unwrap();
    assert_eq!(serving["fields"]["local_addr"], format!("127.0.0.1:{}", server.port));
    let recovered =
        lines.iter().find(|l| l["fields"]["message"] == "recovered from the transaction log").unwrap();
    assert_eq!(recovered["span"]["name"], "recovery", "{recovered}");
    let snapshot = lines.iter().find(|l| l["fields"]["message"] == "snapshot written").unwrap();
    assert_eq!(snapshot["span"]["name"], "snapshot", "{snapshot}");
    assert!(snapshot["fields"]["bytes"].as_u64().unwrap() > 0);
    drop(server);

    // TRACE on the core: one line per reply and per applied write, with the commit stages.
    let server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[],
        &[("FK_LOG_FORMAT", "json"), ("RUST_LOG", "info,ferrokeeper_server::server::core=trace")],
    );
    let mut client = TestClient::connect(server.port).unwrap();
    let request = ferrokeeper_proto::request::Request::Create(ferrokeeper_proto::CreateRequest {
        path: "/traced".into(),
        data: None,
        acl: ferrokeeper_proto::Acl::open_unsafe(),
        flags: 0,
    });
    assert_eq!(client.call(&request).unwrap().0.err, 0);
    let session = format!("0x{:x}", client.session_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (reply, applied) = loop {
        let text = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let reply = lines
            .iter()
            .find(|l| l["fields"]["message"] == "reply" && l["fields"]["op"] == "create")
            .cloned();
        let applied = lines.iter().find(|l| l["fields"]["message"] == "write applied").cloned();
        if let (Some(reply), Some(applied)) = (reply, applied) {
            break (reply, applied);
        }
        assert!(std::time::Instant::now() < deadline, "no TRACE lines:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reply["level"], "TRACE");
    assert_eq!(reply["fields"]["session"], session.as_str());
    assert_eq!(reply["fields"]["err"], 0);
    for stage in ["queue_wait_us", "commit_us", "apply_us"] {
        assert!(applied["fields"][stage].is_u64(), "{applied}");
    }
    drop(server);

    // A format that does not exist is refused by name, before anything starts.
    let dir = support::TempDir::new("fk-logfmt");
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(&cfg, format!("dataDir={}\nclientPort=0\n", dir.path().display())).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg("--config")
        .arg(&cfg)
        .env("FK_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("FK_LOG_FORMAT=xml"), "{refused:?}");
}
