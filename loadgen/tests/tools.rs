//! Record / replay, the Prometheus endpoint and `fkload compare`'s exit code.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use fkload::run::{RunOptions, RunResult, run};
use support::{Fake, start, workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts(addr: &str, w: fkload::workload::Workload) -> RunOptions {
    RunOptions {
        connect: addr.to_owned(),
        workload: w,
        hdr_log: None,
        record: None,
        progress: false,
        metrics_port: None,
        skip_setup: true,
        seed: 3,
        server_stats: false,
        worker: fkload::worker::WorkerSpec::SOLE,
        start_at: None,
        samples: None,
        tree_from: None,
        security: Default::default(),
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fkload-tools-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_then_replay_reissues_the_same_ops() {
    let addr = start(Fake::steady(Duration::from_millis(2))).await;
    let trace = temp("trace.jsonl");
    let hdr = temp("run.hlog");
    let mut o = opts(&addr, workload(1, 2, 1.0, Some(200.0)));
    o.record = Some(trace.clone());
    o.hdr_log = Some(hdr.clone());
    let recorded = tokio::time::timeout(Duration::from_secs(20), run(&o, None)).await.unwrap().unwrap();
    let (header, events) = fkload::trace::read(&trace).unwrap();
    assert_eq!(header.unwrap().name, "fake-get");
    // Every op of the run (warm-up is 0) is in the trace, in time order.
    assert!(events.len() as u64 >= recorded.ops["get"].count, "{} events", events.len());
    assert!(events.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert!(events.iter().all(|e| e.op == "get" && e.path.starts_with("/fkload/d0/k")));
    let log = std::fs::read_to_string(&hdr).unwrap();
    assert!(log.lines().any(|l| l.starts_with("Tag=get-service,")), "interval log:\n{log}");
    assert!(log.lines().any(|l| l.starts_with("Tag=get-response,")));
    let replayed =
        tokio::time::timeout(Duration::from_secs(20), fkload::trace::replay(&addr, &trace, 2.0, 1, 4, false))
            .await
            .unwrap()
            .unwrap();
    let get = &replayed.ops["get"];
    assert_eq!(get.count, events.len() as u64);
    assert_eq!(get.errors, 0);
    // At 2x speed the ~1 s trace takes ~0.5 s.
    assert!(replayed.measured_secs < 0.9, "replay took {}", replayed.measured_secs);
    assert!(get.response.as_ref().unwrap().p50 >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_prometheus_metrics_while_running() {
    let addr = start(Fake::steady(Duration::from_millis(1))).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut o = opts(&addr, workload(1, 2, 1.5, None));
    o.metrics_port = Some(port);
    let runner = tokio::spawn(async move { run(&o, None).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body)).await.unwrap().unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let ops_line =
        body.lines().find(|l| l.starts_with("fkload_ops_total{") && l.contains("op=\"get\"")).unwrap();
    let n: f64 = ops_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 10.0, "{ops_line}");
    assert!(body.contains(&format!("target=\"{addr}\"")));
    assert!(body.contains("fkload_latency_seconds_bucket{"));
    let r = tokio::time::timeout(Duration::from_secs(20), runner).await.unwrap().unwrap();
    assert!(r.ops["get"].count > 0);
}

fn result_with(throughput: f64, p99: f64) -> RunResult {
    let text = include_str!("data/result-sample.json");
    let mut r: RunResult = serde_json::from_str(text).unwrap();
    r.totals.throughput = throughput;
    for o in r.ops.values_mut() {
        o.throughput = throughput;
        o.service.p99 = p99;
    }
    r
}

#[test]
fn compare_exits_non_zero_on_regression() {
    let a = temp("a.json");
    let same = temp("same.json");
    let slower = temp("slower.json");
    let tail = temp("tail.json");
    std::fs::write(&a, serde_json::to_vec(&result_with(1000.0, 5.0)).unwrap()).unwrap();
    std::fs::write(&same, serde_json::to_vec(&result_with(970.0, 5.2)).unwrap()).unwrap();
    std::fs::write(&slower, serde_json::to_vec(&result_with(800.0, 5.0)).unwrap()).unwrap();
    std::fs::write(&tail, serde_json::to_vec(&result_with(1000.0, 9.0)).unwrap()).unwrap();
    let exe = env!("CARGO_BIN_EXE_fkload");
    let code = |b: &std::path::Path| {
        let out =
            Command::new(exe).arg("compare").arg(&a).arg(b).args(["--threshold", "10%"]).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (c, text) = code(&same);
    assert_eq!(c, 0, "{text}");
    let (c, text) = code(&slower);
    assert_eq!(c, 1, "{text}");
    assert!(text.contains("REGRESSION") && text.contains("-20.0%"), "{text}");
    let (c, text) = code(&tail);
    assert_eq!(c, 1, "{text}");
}

#[test]
fn rotated_connect_strings_spread_sessions() {
    assert_eq!(fkload::run::rotated("a:1,b:2,c:3/app", 1), "b:2,c:3,a:1/app");
    assert_eq!(fkload::run::rotated("a:1", 5), "a:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_connections_yields_errors_not_a_hang() {
    let mut fake = Fake::steady(Duration::from_millis(1));
    fake.close_after = Some(20);
    let addr = start(fake).await;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), run(&opts(&addr, workload(2, 4, 1.5, None)), None))
        .await
        .expect("fkload must finish on time against a flaky server")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(12), "took {:?}", started.elapsed());
    let get = &r.ops["get"];
    assert!(get.errors > 0, "{get:?}");
    assert!(get.error_codes.contains_key("ConnectionLoss"), "{:?}", get.error_codes);
    // Reconnects keep some requests succeeding; the ticker kept running (one point per second).
    assert!(get.count > get.errors);
    assert!(!r.series.is_empty());
}
