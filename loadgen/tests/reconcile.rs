//! The instruments reconciled with each other on one loaded 3-node run (debug ferrokeeper
//! ensemble, fkload in-process, ~15 s in all):
//!
//! 1. Before any request, `/metrics` of every node already has every error-code series at 0
//!    and every commit stage (and no `commit` stage, which nothing observes).
//! 2. During the run, `srvr` `Outstanding:`, `mntr` `zk_outstanding_requests` and `/metrics`
//!    `ferrokeeper_outstanding_requests` are sampled on every node: each source must show
//!    requests in flight at some point (not a constant 0) and never more than fkload had in
//!    flight (its workers, or its setup's creates); once fkload has closed its sessions all three read exactly 0 on every node.
//! 3. fkload's op counts over the whole run vs the servers' request counters, summed over the
//!    nodes: exact per opcode (getData = get + get_missing, setData = set + set_stale, creates
//!    = fkload's setup creates, sync = its setup syncs).
//! 4. Errors made on purpose (`get_missing`: NoNode, `set_stale`: BadVersion) vs
//!    `ferrokeeper_request_errors_total{code}` on the servers: exact, and no other errors.
//! 5. Latency: every request's server time (receive → reply queued) is part of its client time,
//!    so for fkload's p50 and p99 of an op, the servers' histogram must hold at least that
//!    fraction of the op's requests at or below the bucket bound just above fkload's value.
//!    The servers' `end_to_end` stage counts exactly the writes their request histograms count.
//! 6. The server-side stage table of the report (from mntr before/after) has avg, max and p99
//!    for every time stage, and p99 ≤ max.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrokeeper_client::Code;
use fkload::run::{RunOptions, RunResult};
use fkload::workload::{KeyDist, MixOp, SizeDist, TreeShape, Workload};
use support::cluster::{Ensemble, Sample, four_letter, http_get, parse_metrics};

const SESSIONS: usize = 6;
const INFLIGHT: usize = 8;

fn workload() -> Workload {
    Workload {
        name: "reconcile".into(),
        description: String::new(),
        ops: BTreeMap::from([
            (MixOp::Get, 60),
            (MixOp::Set, 30),
            (MixOp::GetMissing, 5),
            (MixOp::SetStale, 5),
        ]),
        znodes: 200,
        tree: TreeShape { fanout: 50 },
        value_size: SizeDist::Fixed { size: 256 },
        keys: KeyDist::Uniform,
        sessions: SESSIONS,
        inflight: INFLIGHT,
        duration_secs: 4.0,
        warmup_secs: 0.0,
        rate: None,
        steps: Vec::new(),
        step_secs: 1.0,
        slo: None,
        watchers: 0,
        faults: Vec::new(),
        fault_commands: None,
    }
}

fn scrape(ensemble: &Ensemble) -> Vec<Vec<Sample>> {
    ensemble.metrics_ports.iter().map(|&p| parse_metrics(&http_get(p, "/metrics").unwrap())).collect()
}

/// Sum over the nodes of the samples named `name` whose `label` is `value`.
fn sum(nodes: &[Vec<Sample>], name: &str, label: &str, value: &str) -> f64 {
    nodes.iter().flatten().filter(|s| s.name == name && s.label(label) == Some(value)).map(|s| s.value).sum()
}

/// The three outstanding figures of one node: srvr, mntr, /metrics.
fn outstanding(ensemble: &Ensemble, node: usize) -> [i64; 3] {
    let port = ensemble.client_ports[node];
    let srvr = four_letter(port, "srvr").unwrap();
    let srvr = srvr.lines().find_map(|l| l.strip_prefix("Outstanding: ")).unwrap_or_else(|| panic!("{srvr}"));
    let mntr = four_letter(port, "mntr").unwrap();
    let mntr = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_outstanding_requests\t"))
        .unwrap_or_else(|| panic!("{mntr}"));
    let metrics = http_get(ensemble.metrics_ports[node], "/metrics").unwrap();
    let gauge = parse_metrics(&metrics)
        .into_iter()
        .find(|s| s.name == "ferrokeeper_outstanding_requests")
        .unwrap_or_else(|| panic!("{metrics}"));
    [srvr.trim().parse().unwrap(), mntr.trim().parse().unwrap(), gauge.value as i64]
}

/// Server requests of `ops` (by opcode name) with duration ≤ the smallest bucket bound ≥ `ms`.
fn at_or_below(nodes: &[Vec<Sample>], name: &str, label: &str, values: &[&str], ms: f64) -> (f64, f64) {
    let mut bounds: Vec<f64> = nodes
        .iter()
        .flatten()
        .filter(|s| s.name == format!("{name}_bucket"))
        .filter_map(|s| s.label("le")?.parse::<f64>().ok())
        .collect();
    bounds.sort_by(f64::total_cmp);
    let bound = bounds.into_iter().find(|b| *b >= ms / 1000.0).unwrap_or(f64::INFINITY);
    let count: f64 = nodes
        .iter()
        .flatten()
        .filter(|s| s.name == format!("{name}_bucket"))
        .filter(|s| s.label(label).is_some_and(|v| values.contains(&v)))
        .filter(|s| s.label("le").and_then(|b| b.parse::<f64>().ok()) == Some(bound))
        .map(|s| s.value)
        .sum();
    (bound, count)
}

#[test]
fn instruments_agree_on_a_loaded_three_node_run() {
    let started = Instant::now();
    let ensemble = Ensemble::start("fk-reconcile", 3);
    eprintln!("ensemble formed after {:.1?}", started.elapsed());

    // 1. Known label sets exist from the first scrape, at zero.
    let before = scrape(&ensemble);
    for (i, node) in before.iter().enumerate() {
        for code in Code::ALL.iter().filter(|c| c.as_i32() != 0) {
            let series = node.iter().find(|s| {
                s.name == "ferrokeeper_request_errors_total"
                    && s.label("code") == Some(&code.as_i32().to_string())
            });
            assert_eq!(
                series.map(|s| s.value),
                Some(0.0),
                "node {i}: error code {code:?} before any request"
            );
        }
        let stages: Vec<&str> = node
            .iter()
            .filter(|s| s.name == "ferrokeeper_commit_stage_duration_seconds_count")
            .filter_map(|s| s.label("stage"))
            .collect();
        assert_eq!(stages.len(), 5, "node {i}: stages {stages:?}");
        assert!(!stages.contains(&"commit"), "node {i}: a commit stage nothing observes: {stages:?}");
    }

    // 2. The run, sampling outstanding meanwhile.
    let opts = RunOptions {
        connect: ensemble.connect_string(),
        workload: workload(),
        hdr_log: None,
        record: None,
        progress: false,
        metrics_port: None,
        skip_setup: false,
        seed: 7,
        server_stats: true,
        worker: fkload::worker::WorkerSpec::SOLE,
        start_at: None,
        samples: None,
        tree_from: None,
        security: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let run = runtime.spawn(async move { fkload::run::run(&opts, None).await });
    let mut samples: Vec<[i64; 3]> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run.is_finished() {
        assert!(Instant::now() < deadline, "fkload did not finish in 60 s\n{}", ensemble.logs());
        for node in 0..3 {
            samples.push(outstanding(&ensemble, node));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let result: RunResult = runtime
        .block_on(run)
        .unwrap()
        .unwrap_or_else(|e| panic!("fkload run failed: {e}\n{}", ensemble.logs()));
    // At most what fkload had in flight: its workers, or the setup's creates (sent all at once
    // on one session, before the workers start).
    let setup_creates = result.setup_requests.get("create").copied().unwrap_or(0) as i64;
    let workers = ((SESSIONS * INFLIGHT) as i64).max(setup_creates);
    for source in 0..3 {
        let peak = samples.iter().map(|s| s[source]).max().unwrap_or(0);
        let low = samples.iter().map(|s| s[source]).min().unwrap_or(0);
        eprintln!(
            "outstanding ({}): {} samples, min {low}, max {peak}",
            ["srvr", "mntr", "/metrics"][source],
            samples.len()
        );
        assert!(low >= 0 && peak <= workers, "source {source}: outside 0..={workers}: {samples:?}");
        assert!(peak > 0, "source {source} never saw a request in flight under load: {samples:?}");
    }
    // fkload has closed its sessions: nothing is outstanding anywhere (the close of each session
    // is itself answered, so every server has processed everything fkload sent).
    for node in 0..3 {
        assert_eq!(outstanding(&ensemble, node), [0, 0, 0], "node {node} after the run");
    }

    // 3. Op counts: fkload's whole run vs the servers' request counters.
    let after = scrape(&ensemble);
    let delta = |name: &str, label: &str, value: &str| {
        sum(&after, name, label, value) - sum(&before, name, label, value)
    };
    let count = |op: &str| result.completed.get(op).map_or(0, |c| c.count) as f64;
    let requests = |op: &str| delta("ferrokeeper_request_duration_seconds_count", "op", op);
    eprintln!(
        "fkload: {:?}, setup {:?}",
        result.completed.iter().map(|(k, v)| (k.as_str(), v.count)).collect::<Vec<_>>(),
        result.setup_requests
    );
    assert!(
        count("get") > 1000.0 && count("set") > 300.0,
        "too little load to reconcile: {:?}",
        result.completed
    );
    assert!(count("get_missing") > 0.0 && count("set_stale") > 0.0, "{:?}", result.completed);
    assert_eq!(requests("getData"), count("get") + count("get_missing"), "getData");
    assert_eq!(requests("setData"), count("set") + count("set_stale"), "setData");
    let setup = |op: &str| result.setup_requests.get(op).copied().unwrap_or(0) as f64;
    assert!(setup("create") > 200.0 && setup("sync") == SESSIONS as f64, "{:?}", result.setup_requests);
    assert_eq!(requests("create") + requests("create2"), setup("create"), "creates");
    assert_eq!(requests("sync"), setup("sync"), "syncs");
    for op in ["delete", "exists", "getChildren", "getChildren2", "multi"] {
        assert_eq!(requests(op), 0.0, "{op}: fkload sent none");
    }

    // 4. Errors on purpose, counted on both sides.
    let fk_errors = |op: &str, code: Code| {
        result.completed.get(op).and_then(|c| c.error_codes.get(code.message())).copied().unwrap_or(0) as f64
    };
    let server_errors =
        |code: Code| delta("ferrokeeper_request_errors_total", "code", &code.as_i32().to_string());
    assert_eq!(fk_errors("get_missing", Code::NoNode), count("get_missing"), "every get_missing fails");
    assert_eq!(fk_errors("set_stale", Code::BadVersion), count("set_stale"), "every set_stale fails");
    assert_eq!(server_errors(Code::NoNode), count("get_missing"), "NoNode: servers vs fkload");
    assert_eq!(server_errors(Code::BadVersion), count("set_stale"), "BadVersion: servers vs fkload");
    let fk_total: u64 = result.completed.values().flat_map(|c| c.error_codes.values()).sum();
    let server_total: f64 = Code::ALL.iter().filter(|c| c.as_i32() != 0).map(|c| server_errors(*c)).sum();
    assert_eq!(server_total, fk_total as f64, "all errors: servers vs fkload");
    assert_eq!(fk_total as f64, count("get_missing") + count("set_stale"), "errors nobody asked for");

    // 5. Latency bounds.
    let duration = "ferrokeeper_request_duration_seconds";
    for (op, server_ops) in [("get", ["getData"]), ("set", ["setData"])] {
        let summary = &result.ops[op];
        for (q, ms) in [(0.5, summary.service.p50), (0.99, summary.service.p99)] {
            let (bound, n) = at_or_below(&after, duration, "op", &server_ops, ms);
            let (_, n_before) = at_or_below(&before, duration, "op", &server_ops, ms);
            let needed = (q * summary.count as f64).floor();
            eprintln!(
                "{op} p{}: fkload {ms:.3} ms; servers {} of their requests ≤ {bound} s",
                q * 100.0,
                n - n_before
            );
            assert!(
                n - n_before >= needed,
                "{op}: fkload's p{} is {ms} ms, so ≥ {needed} requests took ≤ that at the client, but the \
                 servers count only {} ≤ {bound} s",
                q * 100.0,
                n - n_before
            );
        }
    }
    let stage = "ferrokeeper_commit_stage_duration_seconds_count";
    let writes: f64 = ["create", "create2", "setData", "delete", "multi", "closeSession", "setACL"]
        .iter()
        .map(|op| requests(op))
        .sum();
    assert_eq!(delta(stage, "stage", "end_to_end"), writes, "end_to_end stage vs write requests");
    let set = &result.ops["set"];
    let (bound, n) = at_or_below(
        &after,
        "ferrokeeper_commit_stage_duration_seconds",
        "stage",
        &["end_to_end"],
        set.service.p99,
    );
    let (_, n_before) = at_or_below(
        &before,
        "ferrokeeper_commit_stage_duration_seconds",
        "stage",
        &["end_to_end"],
        set.service.p99,
    );
    assert!(
        n - n_before >= (0.99 * set.count as f64).floor(),
        "set p99 {} ms at fkload, but only {} writes ≤ {bound} s end to end at the servers",
        set.service.p99,
        n - n_before
    );

    // 6. The server side of the report.
    assert_eq!(result.servers.len(), 3, "{:?}", result.servers);
    for server in &result.servers {
        assert!(server.error.is_none(), "{server:?}");
        // Every node logs and applies every write; only nodes with clients see them arrive.
        let mut names = vec!["quorum_ack_latency", "write_apply_time", "fsynctime"];
        if server.delta.get("zk_packets_received").is_some_and(|n| *n > 0.0) {
            names.extend(["write_queue_wait_time", "write_end_to_end_latency"]);
        }
        for name in names {
            let st =
                server.stages.get(name).unwrap_or_else(|| panic!("{}: no {name}: {server:?}", server.addr));
            let (p99, max) = (st.p99.unwrap(), st.max.unwrap());
            assert!(st.count > 0.0 && st.avg >= 0.0 && p99 <= max + 1e-9, "{}: {name} {st:?}", server.addr);
        }
    }
    let html = fkload::report::html(&result);
    let tables: Vec<&str> = html.split("summary</th>").skip(1).collect();
    assert_eq!(tables.len(), 3, "a stage table per node");
    for table in tables {
        let table = table.split("</table>").next().unwrap();
        for row in
            table.split("<tr>").skip(1).filter(|r| r.contains("time</td>") || r.contains("latency</td>"))
        {
            let p99 = row.split("<td>").nth(5).and_then(|c| c.split("</td>").next()).unwrap();
            assert!(p99.parse::<f64>().is_ok(), "empty p99 in the report's stage row {row}");
        }
    }
    eprintln!("reconciled in {:.1?}", started.elapsed());
}
