//! Limits and lifecycle: maxClientCnxns per client IP, a client that stops reading is cut off
//! without hurting other sessions (while one big reply reaches a client that reads), and SIGTERM
//! stops the server promptly and cleanly.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::*;
use support::{ServerKind, ServerProcess, TestClient};

#[test]
fn max_client_cnxns_limits_connections_per_ip() {
    let server = ServerProcess::start(ServerKind::Ferrokeeper, &[("maxClientCnxns", "2")]);
    let first = TestClient::connect(server.port).unwrap();
    let second = TestClient::connect(server.port).unwrap();
    assert!(TestClient::connect(server.port).is_err(), "a third connection from 127.0.0.1 is refused");
    drop(first);
    // Once one closes, a new one is accepted again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let third = loop {
        match TestClient::connect(server.port) {
            Ok(client) => break client,
            Err(_) => assert!(std::time::Instant::now() < deadline, "slot never freed"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop((second, third));
}

#[test]
fn a_client_that_stops_reading_is_cut_off_alone() {
    let server = ServerProcess::start(ServerKind::Ferrokeeper, &[("connection.outboundBytesMax", "4000000")]);
    let mut bystander = TestClient::connect(server.port).unwrap();
    let mut writer = TestClient::connect(server.port).unwrap();
    let big = Bytes::from(vec![7u8; 512 * 1024]);
    let create = Request::Create(CreateRequest {
        path: "/big".into(),
        data: Some(big),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    assert_eq!(writer.call(&create).unwrap().0.err, 0);
    // A session that pipelines reads of 512 KiB and never reads the replies.
    let mut glutton = TestClient::connect(server.port).unwrap();
    let mut frames = BytesMut::new();
    for xid in 1..=400 {
        frame::write(&mut frames, |b| {
            RequestHeader { xid, op: op::GET_DATA }.write(b);
            GetDataRequest { path: "/big".into(), watch: false }.write(b);
        });
    }
    let stream = glutton.stream();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server cuts it off; the writes may fail part-way once it has.
    let _ = stream.write_all(&frames);
    assert!(glutton.is_closed_by_server(Duration::from_secs(20)), "the non-reading client was not cut off");
    // Everyone else is served as before.
    let exists = Request::Exists(ExistsRequest { path: "/big".into(), watch: false });
    assert_eq!(bystander.call(&exists).unwrap().0.err, 0);
    assert!(support::four_letter(server.port, "srvr").unwrap().contains("Mode: standalone"));
}

/// One reply larger than `connection.outboundBytesMax` (a getChildren of a big child list) is
/// sent to a client that reads, as ZooKeeper sends it; the bound is for clients that stop
/// reading.
#[test]
fn one_reply_over_the_outbound_bound_reaches_a_reading_client() {
    let server = ServerProcess::start(ServerKind::Ferrokeeper, &[("connection.outboundBytesMax", "1000000")]);
    let mut client = TestClient::connect(server.port).unwrap();
    let create =
        |path: String| Request::Create(CreateRequest { path, data: None, acl: Acl::open_unsafe(), flags: 0 });
    assert_eq!(client.call(&create("/wide".into())).unwrap().0.err, 0);
    for i in 0..20 {
        let name = format!("{i:0>60000}");
        assert_eq!(client.call(&create(format!("/wide/{name}"))).unwrap().0.err, 0);
    }
    let list = Request::GetChildren(GetChildrenRequest { path: "/wide".into(), watch: false });
    let (header, reply) = client.call(&list).unwrap();
    assert_eq!(header.err, 0);
    let Ok(ferrokeeper_proto::response::Response::GetChildren(children)) = reply else { panic!("{reply:?}") };
    assert_eq!(children.children.len(), 20, "a 1.2 MB reply over a 1 MB bound");
    // The session goes on.
    let exists = Request::Exists(ExistsRequest { path: "/wide".into(), watch: false });
    assert_eq!(client.call(&exists).unwrap().0.err, 0);
}

#[test]
fn sigterm_stops_the_server_promptly() {
    let mut server = ServerProcess::start_standard(ServerKind::Ferrokeeper);
    let mut client = TestClient::connect(server.port).unwrap();
    let create =
        Request::Create(CreateRequest { path: "/t".into(), data: None, acl: Acl::open_unsafe(), flags: 0 });
    assert_eq!(client.call(&create).unwrap().0.err, 0);
    let pid = server.pid().unwrap();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let status = server.wait_exit(Duration::from_secs(10)).expect("still running 10 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
