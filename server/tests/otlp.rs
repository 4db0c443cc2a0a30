//! OpenTelemetry export: real `ferrokeeper` processes export to a fake OTLP/HTTP collector
//! (a thread on 127.0.0.1 that decodes each `POST /v1/traces` with the OTLP protobuf types).
//!
//! - standalone: a write's span has the children `queue_wait`, `log_fsync`, `apply`, which
//!   tile it exactly; reads get one span; error codes are recorded; the `recovery` span is
//!   exported; `/metrics` counts what was exported;
//! - `otlp.sampleRatio=0` traces no request; `OTEL_SDK_DISABLED=true` exports nothing;
//! - a collector that accepts and never answers costs the server nothing it serves, the failed
//!   exports are counted, and SIGTERM still stops the server promptly;
//! - a 3-node ensemble: writes on the leader and through a follower carry `quorum_ack`; the
//!   follower's write continues on the leader in the same trace; every node exports its
//!   `election` span.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;
use support::{ServerKind, ServerProcess, TestClient, free_port};

/// The export settles within a few of these (the SDK's batch schedule, 5 s by default).
const SCHEDULE: (&str, &str) = ("OTEL_BSP_SCHEDULE_DELAY", "100");
const BUDGET: Duration = Duration::from_secs(20);

/// One exported span with its resource's attributes.
#[derive(Clone, Debug)]
struct Exported {
    resource: HashMap<String, String>,
    span: Span,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
}

fn render(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(attributes: &[ProtoKeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).map(|kv| render(&kv.value))
}

/// A minimal OTLP/HTTP collector: HTTP/1.1 with keep-alive, `200` with an empty
/// `ExportTraceServiceResponse` for every POST to `/v1/traces`. `hang` accepts connections and
/// never answers (a collector that is stuck).
struct Collector {
    port: u16,
    spans: Arc<Mutex<Vec<Exported>>>,
    posts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(hang: bool) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (spans, posts, stop) = (spans.clone(), posts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) if hang => held.push(stream),
                        Ok((stream, _)) => {
                            let (spans, posts, stop) = (spans.clone(), posts.clone(), stop.clone());
                            std::thread::spawn(move || serve(stream, &spans, &posts, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Collector { port, spans, posts, stop, thread: Some(thread) }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received so far.
    fn wait_for(&self, what: &str, done: impl Fn(&[Exported]) -> bool) -> Vec<Exported> {
        let deadline = Instant::now() + BUDGET;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
                panic!("no {what} within {BUDGET:?}; got {} spans: {names:?}", spans.len());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One keep-alive connection of the collector.
fn serve(mut stream: TcpStream, spans: &Mutex<Vec<Exported>>, posts: &AtomicUsize, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // A complete request in the buffer?
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let body: Vec<u8> = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                let request_line = head.lines().next().unwrap_or_default().to_owned();
                assert!(request_line.starts_with("POST /v1/traces "), "unexpected request: {request_line}");
                assert!(
                    head.to_ascii_lowercase().contains("content-type: application/x-protobuf"),
                    "not protobuf: {head}"
                );
                let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
                let mut received = Vec::new();
                for resource_spans in request.resource_spans {
                    let resource: HashMap<String, String> = resource_spans
                        .resource
                        .map(|r| r.attributes.iter().map(|kv| (kv.key.clone(), render(&kv.value))).collect())
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            received.push(Exported { resource: resource.clone(), span });
                        }
                    }
                }
                spans.lock().unwrap().extend(received);
                posts.fetch_add(1, Ordering::Relaxed);
                let response =
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                if stream.write_all(response).is_err() {
                    return;
                }
                continue;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// `GET /metrics`, the value of one sample.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn wait_metric(port: u16, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + BUDGET;
    loop {
        let value = metric(port, name);
        if let Some(value) = value
            && done(value)
        {
            return value;
        }
        assert!(Instant::now() < deadline, "{name} is {value:?} after {BUDGET:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(client: &mut TestClient, path: &str) {
    let request = Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"v")),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    assert_eq!(client.call(&request).unwrap().0.err, 0);
}

fn set(client: &mut TestClient, path: &str, data: &[u8]) -> ReplyHeader {
    let request = Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        version: -1,
    });
    client.call(&request).unwrap().0
}

fn get(client: &mut TestClient, path: &str) -> ReplyHeader {
    client.call(&Request::GetData(GetDataRequest { path: path.into(), watch: false })).unwrap().0
}

fn named<'a>(spans: &'a [Exported], name: &str) -> Vec<&'a Exported> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

/// The children of `parent`, in start order.
fn children<'a>(spans: &'a [Exported], parent: &Exported) -> Vec<&'a Exported> {
    let mut children: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.span.trace_id == parent.span.trace_id && s.span.parent_span_id == parent.span.span_id)
        .collect();
    children.sort_by_key(|s| s.span.start_time_unix_nano);
    children
}

fn near(a: u64, b: u64) -> bool {
    // Stage bounds come from one clock reading; the span's start from an earlier one.
    a.abs_diff(b) <= 100_000
}

/// A traced write: SERVER kind, RPC attributes, and three stages that tile the span.
fn check_write(spans: &[Exported], write: &Exported, commit_stage: &str, session: i64) {
    let span = &write.span;
    assert_eq!(span.kind, SpanKind::Server as i32, "{span:?}");
    assert_eq!(write.attr("rpc.system").as_deref(), Some("zookeeper"));
    assert_eq!(write.attr("rpc.method").as_deref(), Some(span.name.as_str()));
    assert_eq!(write.attr("zk.session_id"), Some(format!("0x{session:x}")));
    assert!(write.attr("zk.zxid").unwrap().parse::<i64>().unwrap() > 0);
    assert!(write.attr("zk.xid").is_some());
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    let stages: Vec<&Exported> =
        children(spans, write).into_iter().filter(|s| s.span.name != "forwarded").collect();
    let names: Vec<&str> = stages.iter().map(|s| s.span.name.as_str()).collect();
    assert_eq!(names, ["queue_wait", commit_stage, "apply"], "stages of {span:?}");
    assert!(near(stages[0].span.start_time_unix_nano, span.start_time_unix_nano));
    for pair in stages.windows(2) {
        assert_eq!(pair[0].span.end_time_unix_nano, pair[1].span.start_time_unix_nano, "stages must tile");
    }
    assert_eq!(stages[2].span.end_time_unix_nano, span.end_time_unix_nano);
    for stage in &stages {
        assert!(stage.span.end_time_unix_nano >= stage.span.start_time_unix_nano);
        assert_eq!(stage.span.kind, SpanKind::Internal as i32);
    }
}

#[test]
fn standalone_exports_request_and_commit_stage_spans() {
    let collector = Collector::start(false);
    let metrics_port = free_port().to_string();
    let server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[
            ("otlp.endpoint", &collector.endpoint()),
            ("otlp.serviceName", "fk-otlp-test"),
            // A snapshot after a few writes: its span is exported and its metrics observed.
            ("snapCount", "4"),
            ("metricsProvider.httpPort", &metrics_port),
            ("metricsProvider.httpHost", "127.0.0.1"),
        ],
        &[SCHEDULE],
    );
    let mut client = TestClient::connect(server.port).unwrap();
    let session = client.session_id;
    create(&mut client, "/traced");
    for i in 0..5u8 {
        assert_eq!(set(&mut client, "/traced", &[i]).err, 0);
    }
    assert_eq!(get(&mut client, "/traced").err, 0);
    assert_eq!(get(&mut client, "/missing").err, Code::NoNode.as_i32());
    assert_eq!(set(&mut client, "/missing", b"x").err, Code::NoNode.as_i32());

    let spans = collector.wait_for("6 setData, 2 getData, recovery and snapshot spans", |spans| {
        named(spans, "setData").len() >= 6
            && named(spans, "getData").len() >= 2
            && !named(spans, "recovery").is_empty()
            && !named(spans, "snapshot").is_empty()
    });
    for exported in &spans {
        assert_eq!(exported.resource.get("service.name").map(String::as_str), Some("fk-otlp-test"));
        let instance = exported.resource.get("service.instance.id").unwrap();
        assert!(instance.ends_with(&format!(":{}", server.port)), "{instance}");
    }
    let mine: Vec<&Exported> = named(&spans, "setData")
        .into_iter()
        .filter(|s| s.attr("zk.session_id") == Some(format!("0x{session:x}")))
        .collect();
    assert_eq!(mine.len(), 6, "every setData of this session is traced at ratio 1");
    let mut zxids = Vec::new();
    for write in &mine {
        check_write(&spans, write, "log_fsync", session);
        zxids.push(write.attr("zk.zxid").unwrap().parse::<i64>().unwrap());
    }
    zxids.sort();
    zxids.dedup();
    assert_eq!(zxids.len(), 6, "one zxid per write");
    let failed = mine.iter().find(|s| s.attr("zk.err").is_some()).unwrap();
    assert_eq!(failed.attr("zk.err"), Some(Code::NoNode.as_i32().to_string()));
    // NoNode is an answer, not a failure of the server.
    assert_ne!(failed.span.status.as_ref().map_or(0, |s| s.code), StatusCode::Error as i32);

    let reads = named(&spans, "getData");
    for read in &reads {
        assert_eq!(read.span.kind, SpanKind::Server as i32);
        assert!(children(&spans, read).is_empty(), "a read has no stages");
    }
    assert!(reads.iter().any(|r| r.attr("zk.err").is_none()));
    assert!(reads.iter().any(|r| r.attr("zk.err") == Some(Code::NoNode.as_i32().to_string())));
    assert_eq!(named(&spans, "create").len(), 1);

    let metrics_port: u16 = metrics_port.parse().unwrap();
    let received = collector.spans().len() as f64;
    wait_metric(metrics_port, "ferrokeeper_otlp_exported_spans_total", |v| v >= received);
    assert!(metric(metrics_port, "ferrokeeper_otlp_traced_requests_total").unwrap() >= 9.0);
    assert_eq!(metric(metrics_port, "ferrokeeper_otlp_failed_exports_total"), Some(0.0));
    // The snapshot: the core's serialization pause and the whole duration are observed.
    assert!(metric(metrics_port, "ferrokeeper_snapshot_serialize_duration_seconds_count").unwrap() >= 1.0);
    wait_metric(metrics_port, "ferrokeeper_snapshot_duration_seconds_count", |v| v >= 1.0);
    assert!(metric(metrics_port, "ferrokeeper_snapshot_size_bytes").unwrap() > 0.0);
}

#[test]
fn sample_ratio_zero_traces_no_request_and_sdk_disabled_exports_nothing() {
    let collector = Collector::start(false);
    let metrics_port = free_port().to_string();
    let server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[
            ("otlp.endpoint", &collector.endpoint()),
            ("otlp.sampleRatio", "0"),
            ("metricsProvider.httpPort", &metrics_port),
            ("metricsProvider.httpHost", "127.0.0.1"),
        ],
        &[SCHEDULE],
    );
    let mut client = TestClient::connect(server.port).unwrap();
    create(&mut client, "/unsampled");
    for _ in 0..20 {
        assert_eq!(get(&mut client, "/unsampled").err, 0);
    }
    // The pipeline works (the recovery span arrives), and carries no request span: checked
    // after a graceful stop, whose provider shutdown exports every span still queued, so that
    // nothing can arrive later.
    collector.wait_for("the recovery span", |spans| !named(spans, "recovery").is_empty());
    assert_eq!(metric(metrics_port.parse().unwrap(), "ferrokeeper_otlp_traced_requests_total"), Some(0.0));
    stop_gracefully(server);
    let names: Vec<String> = collector.spans().iter().map(|s| s.span.name.clone()).collect();
    assert_eq!(names, ["recovery"]);

    let metrics_port = free_port().to_string();
    let disabled = Collector::start(false);
    let server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[
            ("otlp.endpoint", &disabled.endpoint()),
            ("metricsProvider.httpPort", &metrics_port),
            ("metricsProvider.httpHost", "127.0.0.1"),
        ],
        &[SCHEDULE, ("OTEL_SDK_DISABLED", "true")],
    );
    let mut client = TestClient::connect(server.port).unwrap();
    create(&mut client, "/untraced");
    assert_eq!(get(&mut client, "/untraced").err, 0);
    let metrics_port: u16 = metrics_port.parse().unwrap();
    assert!(metric(metrics_port, "ferrokeeper_znodes").is_some(), "the metrics endpoint answers");
    assert_eq!(metric(metrics_port, "ferrokeeper_otlp_traced_requests_total"), None, "no export counters");
    // After a graceful stop (which, with export on, sends every queued span: the first half
    // shows the recovery span arriving), nothing was ever posted.
    stop_gracefully(server);
    assert_eq!(disabled.posts.load(Ordering::Relaxed), 0);
}

/// SIGTERM, then the process must exit successfully within 15 s: its telemetry shutdown has run
/// (the OTLP provider's shutdown exports what is queued), so the collector has all it will get.
fn stop_gracefully(mut server: ServerProcess) {
    let pid = server.pid().expect("the server runs");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit after SIGTERM: {status:?}\n{}",
        server.log_tail()
    );
}

#[test]
fn a_stuck_collector_costs_the_clients_nothing() {
    let collector = Collector::start(true);
    let metrics_port = free_port().to_string();
    let mut server = ServerProcess::start_env(
        ServerKind::Ferrokeeper,
        &[
            ("otlp.endpoint", &collector.endpoint()),
            ("metricsProvider.httpPort", &metrics_port),
            ("metricsProvider.httpHost", "127.0.0.1"),
        ],
        // Small queue: most spans are dropped while the exporter waits for its timeout.
        &[SCHEDULE, ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"), ("OTEL_BSP_MAX_QUEUE_SIZE", "64")],
    );
    let mut client = TestClient::connect(server.port).unwrap();
    create(&mut client, "/stuck");
    let started = Instant::now();
    for i in 0..2000u32 {
        assert_eq!(set(&mut client, "/stuck", &i.to_be_bytes()).err, 0);
    }
    let elapsed = started.elapsed();
    assert_eq!(get(&mut client, "/stuck").err, 0);
    eprintln!("2000 traced writes against a stuck collector: {elapsed:?}");
    let metrics_port: u16 = metrics_port.parse().unwrap();
    wait_metric(metrics_port, "ferrokeeper_otlp_failed_exports_total", |v| v >= 1.0);
    assert_eq!(metric(metrics_port, "ferrokeeper_otlp_exported_spans_total"), Some(0.0));
    assert!(server.log_tail().contains("OTLP export failed"), "{}", server.log_tail());
    // SIGTERM: the final flush is bounded even though the collector never answers.
    let pid = server.pid().unwrap();
    let stopping = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = server.wait_exit(Duration::from_secs(20)).expect("server did not stop");
    assert!(status.success(), "{status:?}\n{}", server.log_tail());
    eprintln!("stopped {:?} after SIGTERM", stopping.elapsed());
}

#[test]
fn ensemble_traces_quorum_commits_and_elections() {
    let collector = Collector::start(false);
    let mut cluster = support::Ensemble::with_extras(&[("otlp.endpoint", &collector.endpoint())]);
    cluster.env.push((SCHEDULE.0.into(), SCHEDULE.1.into()));
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let follower = (leader + 1) % support::ENSEMBLE_SIZE;
    let mut at_leader = TestClient::connect(cluster.port(leader)).unwrap();
    let mut at_follower = TestClient::connect(cluster.port(follower)).unwrap();
    create(&mut at_leader, "/q");
    assert_eq!(set(&mut at_leader, "/q", b"leader").err, 0);
    assert_eq!(set(&mut at_follower, "/q", b"follower").err, 0);
    let (leader_session, follower_session) = (at_leader.session_id, at_follower.session_id);
    let by_session = |spans: &[Exported], session: i64| -> Option<Exported> {
        named(spans, "setData")
            .into_iter()
            .find(|s| s.attr("zk.session_id") == Some(format!("0x{session:x}")))
            .cloned()
    };
    let spans = collector.wait_for("both writes, the leader's part and three elections", |spans| {
        by_session(spans, leader_session).is_some()
            && by_session(spans, follower_session).is_some()
            && !named(spans, "forwarded").is_empty()
            && named(spans, "election").len() >= 3
    });
    let server_id = |s: &Exported| s.resource.get("zk.server_id").cloned().unwrap_or_default();
    let on_leader = by_session(&spans, leader_session).unwrap();
    check_write(&spans, &on_leader, "quorum_ack", leader_session);
    assert_eq!(server_id(&on_leader), (leader + 1).to_string());
    let on_follower = by_session(&spans, follower_session).unwrap();
    check_write(&spans, &on_follower, "quorum_ack", follower_session);
    assert_eq!(server_id(&on_follower), (follower + 1).to_string());
    // The follower's write continues on the leader, in the same trace.
    let forwarded = children(&spans, &on_follower)
        .into_iter()
        .find(|s| s.span.name == "forwarded")
        .expect("the leader's span is a child of the follower's");
    assert_eq!(server_id(forwarded), (leader + 1).to_string());
    assert_eq!(forwarded.attr("rpc.method").as_deref(), Some("setData"));
    assert_eq!(forwarded.attr("zk.zxid"), on_follower.attr("zk.zxid"));
    let stages: Vec<&str> = children(&spans, forwarded).iter().map(|s| s.span.name.as_str()).collect();
    assert_eq!(stages, ["queue_wait", "quorum_ack", "apply"]);
    // One machine, one clock: the leader's part lies within the follower's span.
    assert!(forwarded.span.start_time_unix_nano >= on_follower.span.start_time_unix_nano);
    assert!(forwarded.span.end_time_unix_nano <= on_follower.span.end_time_unix_nano);
    // The leader's own client write is not forwarded.
    assert!(children(&spans, &on_leader).iter().all(|s| s.span.name != "forwarded"));
    let elections = named(&spans, "election");
    let mut nodes: Vec<String> = elections.iter().map(|s| server_id(s)).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes, ["1", "2", "3"]);
    // mntr: ZooKeeper's election_time summary (ms) of the elections so far.
    for i in 0..support::ENSEMBLE_SIZE {
        let mntr = support::four_letter(cluster.port(i), "mntr").unwrap();
        let value =
            |key: &str| mntr.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('\t').map(str::to_owned));
        let count: u64 = value("zk_cnt_election_time").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(count >= 1, "{mntr}");
        assert!(value("zk_avg_election_time").is_some(), "{mntr}");
    }
    for election in elections {
        assert_eq!(election.attr("leader"), Some((leader + 1).to_string()), "{election:?}");
        assert!(election.attr("role").is_some_and(|r| r == "Leading" || r == "Following"));
    }
}
