//! Worker mode against a real 3-node ferrokeeper ensemble: one process, then 2 and then 4
//! `fkload run --worker I/N --start-at` processes of the same open-loop workload, each keeping
//! its raw samples (`--samples`), merged with `fkload merge`. Checks that the merged totals,
//! op counts and error codes are the workers' sums, that the merged p99 (and p50, p99.9, max)
//! is exactly the percentile of a histogram of all raw samples and within HDR's precision of the
//! sorted samples' own percentile, that the merged series holds every sample, that the merged
//! throughput is within 5 % of the single process's, that the workers measured the same clock,
//! and that merging with a worker left out is flagged (and fails with `--strict`).
#![allow(clippy::unwrap_used)]

mod ensemble;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ensemble::{Ensemble, TempDir, fkload_bin};
use fkload::run::RunResult;
use fkload::stats::{decode_histogram, new_histogram};

const WORKLOAD: &str = "name: workers-test
ops: {get: 70, set: 30}
znodes: 300
tree: {fanout: 50}
value_size: {dist: fixed, size: 256}
sessions: 8
inflight: 2
rate: 1500
warmup_secs: 0.5
duration_secs: 3
";

fn read(p: &Path) -> RunResult {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Raw samples of one file: `(op, service µs, response µs)`.
fn samples(p: &Path) -> Vec<(String, u64, u64)> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

fn run_workers(dir: &Path, connect: &str, workload: &Path, n: usize) -> Vec<(PathBuf, PathBuf)> {
    let start_at = fkload::worker::unix_now() + 5.0;
    let mut children = Vec::new();
    let mut files = Vec::new();
    for i in 0..n {
        let out = dir.join(format!("n{n}-w{i}.json"));
        let raw = dir.join(format!("n{n}-w{i}.samples"));
        let log = std::fs::File::create(dir.join(format!("n{n}-w{i}.log"))).unwrap();
        let child = Command::new(fkload_bin())
            .args(["run", "-w"])
            .arg(workload)
            .args(["-t", connect, "--no-progress", "--worker", &format!("{i}/{n}")])
            .args(["--start-at", &format!("@{start_at:.3}")])
            .arg("--out")
            .arg(&out)
            .arg("--samples")
            .arg(&raw)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        children.push(child);
        files.push((out, raw));
    }
    for (i, mut c) in children.into_iter().enumerate() {
        let status = wait_bounded(&mut c, Duration::from_secs(90));
        assert!(
            status,
            "worker {i}/{n} failed:\n{}",
            std::fs::read_to_string(dir.join(format!("n{n}-w{i}.log"))).unwrap_or_default()
        );
    }
    files
}

/// Waits for a child at most `limit`, killing it (by pid) past that. True on exit status 0.
fn wait_bounded(c: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn merge(dir: &Path, parts: &[PathBuf], out: &Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new(fkload_bin())
        .arg("merge")
        .args(parts)
        .arg("--out")
        .arg(out)
        .arg("--html")
        .arg(dir.join("merged.html"))
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

fn sorted_quantile(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    // HdrHistogram's definition: the smallest value with at least q of the samples at or below.
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn check_merge(n: usize, parts: &[(PathBuf, PathBuf)], merged: &RunResult, single: &RunResult) {
    let results: Vec<RunResult> = parts.iter().map(|(j, _)| read(j)).collect();
    // Totals and per-op counts are sums.
    assert_eq!(merged.totals.ops, results.iter().map(|r| r.totals.ops).sum::<u64>(), "n={n}");
    assert_eq!(merged.totals.errors, results.iter().map(|r| r.totals.errors).sum::<u64>());
    for (name, o) in &merged.ops {
        let count: u64 = results.iter().filter_map(|r| r.ops.get(name)).map(|x| x.count).sum();
        assert_eq!(o.count, count, "n={n} op {name}");
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for r in &results {
            for (c, k) in r.ops.get(name).map(|x| x.error_codes.clone()).unwrap_or_default() {
                *codes.entry(c).or_insert(0) += k;
            }
        }
        assert_eq!(o.error_codes, codes, "n={n} op {name}");
    }
    assert_eq!(merged.workers.len(), n);
    // Every worker ran its share: the sessions partition the workload's.
    let mut sessions: Vec<usize> = merged.workers.iter().flat_map(|w| w.sessions.clone()).collect();
    sessions.sort_unstable();
    assert_eq!(sessions, (0..8).collect::<Vec<_>>());

    // Percentiles against the raw samples of every worker.
    let raw: Vec<(String, u64, u64)> = parts.iter().flat_map(|(_, s)| samples(s)).collect();
    assert_eq!(raw.len() as u64, merged.totals.ops, "n={n}: every measured op has a raw sample");
    for (name, o) in &merged.ops {
        let mut response: Vec<u64> = raw.iter().filter(|s| &s.0 == name).map(|s| s.2).collect();
        let mut service: Vec<u64> = raw.iter().filter(|s| &s.0 == name).map(|s| s.1).collect();
        assert_eq!(response.len() as u64, o.count);
        let mut h = new_histogram();
        for v in &response {
            h.record(*v).unwrap();
        }
        let merged_p = o.response.as_ref().expect("open loop has response times");
        for (q, got) in [(0.5, merged_p.p50), (0.99, merged_p.p99), (0.999, merged_p.p999)] {
            let from_raw = h.value_at_quantile(q) as f64 / 1000.0;
            assert_eq!(got, from_raw, "n={n} {name} q={q}: merged vs histogram of the raw samples");
            let exact = sorted_quantile(&mut response, q) as f64 / 1000.0;
            assert!(
                (got - exact).abs() <= exact * 0.002 + 0.001,
                "n={n} {name} q={q}: merged {got} ms vs sorted raw samples {exact} ms"
            );
        }
        assert_eq!(merged_p.max, h.max() as f64 / 1000.0);
        let exact = sorted_quantile(&mut service, 0.99) as f64 / 1000.0;
        assert!((o.service.p99 - exact).abs() <= exact * 0.002 + 0.001, "n={n} {name} service p99");
        // The average of the workers' p99 is not what merge reports (printed for the record).
        let mean_p99: f64 = results
            .iter()
            .filter_map(|r| r.ops.get(name))
            .map(|x| x.response.as_ref().unwrap().p99)
            .sum::<f64>()
            / n as f64;
        eprintln!("n={n} {name}: merged p99 {:.3} ms, mean of workers' p99 {mean_p99:.3} ms", merged_p.p99);
    }

    // The merged series holds every sample of the workers' series (warm-up included).
    let series_count = |r: &RunResult| -> u64 {
        r.series.iter().flat_map(|p| p.hdr.values()).map(|h| decode_histogram(h).unwrap().len()).sum()
    };
    assert_eq!(series_count(merged), results.iter().map(series_count).sum::<u64>(), "n={n} series");

    // The workers together send what one process sends.
    let ratio = merged.totals.throughput / single.totals.throughput;
    eprintln!(
        "n={n}: merged {:.0} ops/s, single process {:.0} ops/s (ratio {ratio:.3}); flags: {:?}",
        merged.totals.throughput, single.totals.throughput, merged.merge_flags
    );
    assert!((0.95..=1.05).contains(&ratio), "n={n}: merged throughput off by more than 5 % ({ratio:.3})");

    // Same machine, same clock: offsets agree within their uncertainty, and starts were on time.
    for w in &merged.workers {
        let c = w.clock().expect("clock offset measured");
        assert!(
            c.offset_ms.abs() <= c.uncertainty_ms + 2.0,
            "worker {}: offset {c:?} on one machine",
            w.index
        );
        let late = w.start_late_ms().unwrap();
        assert!((0.0..500.0).contains(&late), "worker {} started {late} ms after --start-at", w.index);
    }
    assert!(!merged.merge_flags.iter().any(|f| f.contains("clock")), "{:?}", merged.merge_flags);
}

#[test]
fn merged_workers_equal_the_sum_of_their_samples() {
    let t0 = std::time::Instant::now();
    let ensemble = Ensemble::start(3);
    eprintln!("ensemble up after {:.1?}", t0.elapsed());
    let tmp = TempDir::new("fkload-workers");
    let dir = tmp.0.clone();
    let workload = dir.join("workload.yaml");
    std::fs::write(&workload, WORKLOAD).unwrap();

    // Each scenario works in its own chroot, so each creates its key tree anew.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (zk, _events) =
            ferrokeeper_client::ZooKeeper::connect(&ensemble.connect(), Duration::from_secs(10))
                .await
                .unwrap();
        for root in ["/n1", "/n2", "/n4"] {
            zk.create(
                root,
                b"",
                &ferrokeeper_client::Acl::open_unsafe(),
                ferrokeeper_client::CreateMode::Persistent,
                None,
            )
            .await
            .unwrap();
        }
        zk.close().await.unwrap();
    });

    let single = run_workers(&dir, &format!("{}/n1", ensemble.connect()), &workload, 1);
    let single_result = read(&single[0].0);
    assert!(single_result.totals.ops > 3000, "single run: {:?}", single_result.totals);
    for n in [2, 4] {
        let parts = run_workers(&dir, &format!("{}/n{n}", ensemble.connect()), &workload, n);
        let out = dir.join(format!("merged-{n}.json"));
        let jsons: Vec<PathBuf> = parts.iter().map(|p| p.0.clone()).collect();
        let (ok, text) = merge(&dir, &jsons, &out, &[]);
        assert!(ok, "merge failed: {text}");
        eprintln!("{text}");
        let merged = read(&out);
        check_merge(n, &parts, &merged, &single_result);
        let html = std::fs::read_to_string(dir.join("merged.html")).unwrap();
        assert!(html.contains("<h2>Workers</h2>"), "the report lists the workers");
    }

    // A worker left out: flagged, and --strict fails.
    let partial: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("n4-w{i}.json"))).collect();
    let (ok, text) = merge(&dir, &partial, &dir.join("partial.json"), &["--strict"]);
    assert!(!ok, "--strict must fail when a worker is missing: {text}");
    assert!(text.contains("worker 3/4 is missing"), "{text}");
    eprintln!("test took {:.1?}", t0.elapsed());
}
