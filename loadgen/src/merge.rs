//! `fkload merge`: one result from the results of N workers (`fkload run --worker I/N`).
//!
//! Histograms are added, never percentiles averaged: every op's service and response
//! histograms, every second's histogram of the series, the send-lag histogram. Counts, errors
//! by code, throughputs and CPU are summed. Series points are matched by phase and position in
//! the phase (each worker ticks once a second from the same `--start-at`), so a worker whose
//! clock is off still lines up with the others. The merge also says what looks wrong: a worker
//! missing, one that fell behind its open-loop schedule, one that started late, and clocks
//! that disagree (each worker measured its offset from the leader's clock).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::cpu::ClientCpu;
use crate::run::{RunResult, StepResult, step_result, totals};
use crate::stats::{OpSummary, Percentiles, SeriesPoint, decode_histogram, new_histogram, series_point_from};
use crate::worker::WorkerInfo;

/// Thresholds for the merge's flags.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// A worker is behind its schedule when its send-lag p99 exceeds this (ms) and twice its
    /// worst service p99 (lag the server's replies do not explain).
    pub lag_ms: f64,
    /// Clocks disagree when a worker's offset from the leader's clock differs from the
    /// workers' median by more than this (ms) plus the measurement's uncertainty.
    pub clock_ms: f64,
    /// A worker started late when its first phase began this long (ms) after `--start-at`.
    pub start_ms: f64,
}

impl Default for MergeOptions {
    fn default() -> MergeOptions {
        MergeOptions { lag_ms: 10.0, clock_ms: 10.0, start_ms: 100.0 }
    }
}

fn add(into: &mut Histogram<u64>, encoded: &str, what: &str) -> anyhow::Result<()> {
    let h = decode_histogram(encoded).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    into.add(&h).map_err(|e| anyhow::anyhow!("{what}: {e:?}"))
}

/// Adds per-op summaries exactly (from their histograms); throughputs are summed.
pub fn merge_ops(
    parts: &[&BTreeMap<String, OpSummary>],
    secs: f64,
) -> anyhow::Result<BTreeMap<String, OpSummary>> {
    struct Acc {
        ok: u64,
        errors: BTreeMap<String, u64>,
        service: Histogram<u64>,
        response: Option<Histogram<u64>>,
        throughput: f64,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for part in parts {
        for (name, o) in *part {
            let hdr = o.hdr.as_ref().ok_or_else(|| {
                anyhow::anyhow!("op {name}: the result has no histograms (written by an fkload before merge)")
            })?;
            let a = acc.entry(name.clone()).or_insert_with(|| Acc {
                ok: 0,
                errors: BTreeMap::new(),
                service: new_histogram(),
                response: None,
                throughput: 0.0,
            });
            a.ok += o.count - o.errors;
            for (code, n) in &o.error_codes {
                *a.errors.entry(code.clone()).or_insert(0) += n;
            }
            add(&mut a.service, &hdr.service, name)?;
            if let Some(r) = &hdr.response {
                add(a.response.get_or_insert_with(new_histogram), r, name)?;
            }
            a.throughput += o.throughput;
        }
    }
    Ok(acc
        .into_iter()
        .map(|(name, a)| {
            let mut s = OpSummary::of(a.ok, &a.errors, &a.service, a.response.as_ref(), secs);
            s.throughput = a.throughput;
            (name, s)
        })
        .collect())
}

/// Merges series by (phase, position within the phase).
fn merge_series(results: &[&RunResult]) -> anyhow::Result<Vec<SeriesPoint>> {
    // key: (order of first appearance of the phase, position) → (phase, t sum, secs sum, n, ops)
    type Slot = (String, f64, f64, usize, BTreeMap<String, (Histogram<u64>, u64)>);
    let mut phases: Vec<String> = Vec::new();
    let mut slots: BTreeMap<(usize, usize), Slot> = BTreeMap::new();
    for r in results {
        let mut position: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &r.series {
            let order = match phases.iter().position(|x| *x == p.phase) {
                Some(i) => i,
                None => {
                    phases.push(p.phase.clone());
                    phases.len() - 1
                }
            };
            let k = position.entry(p.phase.as_str()).or_insert(0);
            let slot =
                slots.entry((order, *k)).or_insert_with(|| (p.phase.clone(), 0.0, 0.0, 0, BTreeMap::new()));
            *k += 1;
            anyhow::ensure!(
                p.hdr.len() == p.per_op.len(),
                "series point at {:.0} s has no histograms (written by an fkload before merge)",
                p.t
            );
            slot.1 += p.t;
            slot.2 += if p.secs > 0.0 { p.secs } else { 1.0 };
            slot.3 += 1;
            for (op, encoded) in &p.hdr {
                let e = slot.4.entry(op.clone()).or_insert_with(|| (new_histogram(), 0));
                add(&mut e.0, encoded, op)?;
                e.1 += p.errors_by_op.get(op).copied().unwrap_or(0);
            }
        }
    }
    Ok(slots
        .into_values()
        .map(|(phase, t, secs, n, ops)| series_point_from(t / n as f64, secs / n as f64, &phase, &ops))
        .collect())
}

fn merge_steps(results: &[&RunResult]) -> anyhow::Result<Vec<StepResult>> {
    let n = results.iter().map(|r| r.steps.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..n {
        let parts: Vec<&StepResult> = results.iter().filter_map(|r| r.steps.get(i)).collect();
        let ops: Vec<&BTreeMap<String, OpSummary>> = parts.iter().map(|s| &s.ops).collect();
        let secs = results[0].workload.step_secs;
        let merged = merge_ops(&ops, secs)?;
        out.push(step_result(parts[0].rate, &merged, &results[0].workload));
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// What looks wrong with the workers of a merge.
fn flags(results: &[&RunResult], infos: &[WorkerInfo], o: &MergeOptions) -> Vec<String> {
    let mut out = Vec::new();
    let count = infos.iter().map(|w| w.count).max().unwrap_or(0);
    for i in 0..count {
        if !infos.iter().any(|w| w.index == i) {
            out.push(format!(
                "worker {i}/{count} is missing: its share of the load was not run or not merged"
            ));
        }
    }
    if infos.iter().any(|w| w.count != count) {
        out.push(format!("workers disagree on N: {:?}", infos.iter().map(|w| w.count).collect::<Vec<_>>()));
    }
    let starts: Vec<Option<f64>> = infos.iter().map(|w| w.start_at_unix).collect();
    if starts.windows(2).any(|p| p[0] != p[1]) {
        out.push(format!("workers were given different --start-at instants: {starts:?}"));
    }
    for (r, w) in results.iter().zip(infos) {
        if let Some(lag) = &r.send_lag {
            let service = r.ops.values().map(|s| s.service.p99).fold(0.0, f64::max);
            if lag.p99 > o.lag_ms && lag.p99 > 2.0 * service {
                out.push(format!(
                    "worker {} ({}) fell behind its schedule: send lag p99 {:.1} ms, max {:.1} ms, while its \
                     service p99 was {:.1} ms (the generator, not the server, was late)",
                    w.index, w.host, lag.p99, lag.max, service
                ));
            }
        }
        if let Some(late) = w.start_late_ms()
            && late > o.start_ms
        {
            out.push(format!(
                "worker {} ({}) started {:.0} ms after --start-at (connecting and setup took longer than the lead \
                 time)",
                w.index, w.host, late
            ));
        }
    }
    let clocks: Vec<(usize, f64, f64)> =
        infos.iter().filter_map(|w| w.clock().map(|c| (w.index, c.offset_ms, c.uncertainty_ms))).collect();
    if infos.len() > 1 {
        for w in infos.iter().filter(|w| w.clock().is_none()) {
            out.push(format!("worker {} ({}): clock offset unknown (the probe failed)", w.index, w.host));
        }
    }
    if clocks.len() > 1 {
        let m = median(clocks.iter().map(|c| c.1).collect());
        for (index, offset, uncertainty) in &clocks {
            if (offset - m).abs() > o.clock_ms + uncertainty {
                out.push(format!(
                    "worker {index}: clock {:+.1} ms (±{uncertainty:.1}) from the workers' median against the \
                     leader's clock: its start and its series are shifted by that much",
                    m - offset
                ));
            }
        }
    }
    out
}

/// Merges worker results into one. Fails when they are not parts of one run (different
/// workloads or modes, the same worker twice) or lack histograms.
pub fn merge(results: &[RunResult], o: &MergeOptions) -> anyhow::Result<RunResult> {
    anyhow::ensure!(!results.is_empty(), "nothing to merge");
    let mut sorted: Vec<&RunResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.worker.as_ref().map_or(0, |w| w.index));
    let first = sorted[0];
    for r in &sorted {
        anyhow::ensure!(
            r.workload == first.workload,
            "results of different workloads ({} and {}) cannot be merged",
            first.workload.name,
            r.workload.name
        );
        anyhow::ensure!(r.mode == first.mode, "results of different modes ({} and {})", first.mode, r.mode);
    }
    let infos: Vec<WorkerInfo> = sorted.iter().filter_map(|r| r.worker.clone()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for w in &infos {
        anyhow::ensure!(seen.insert(w.index), "worker {} appears twice", w.index);
    }
    let measured_secs = sorted.iter().map(|r| r.measured_secs).fold(0.0, f64::max);
    let parts: Vec<&BTreeMap<String, OpSummary>> = sorted.iter().map(|r| &r.ops).collect();
    let ops = merge_ops(&parts, measured_secs)?;
    let mut t = totals(&ops, measured_secs);
    t.throughput = sorted.iter().map(|r| r.totals.throughput).sum();
    let (user_s, sys_s, cores_busy) = sorted.iter().fold((0.0, 0.0, 0.0), |a, r| {
        (a.0 + r.client_cpu.user_s, a.1 + r.client_cpu.sys_s, a.2 + r.client_cpu.cores_busy)
    });
    let client_cpu = ClientCpu {
        user_s,
        sys_s,
        cpu_us_per_op: if t.ops > 0 { (user_s + sys_s) * 1e6 / t.ops as f64 } else { 0.0 },
        cores_busy,
    };
    let mut lag = new_histogram();
    for w in &infos {
        if let Some(h) = &w.send_lag_hdr {
            add(&mut lag, h, "send lag")?;
        }
    }
    let merge_flags = flags(&sorted, &infos, o);
    Ok(RunResult {
        fkload_version: env!("CARGO_PKG_VERSION").to_owned(),
        workload: first.workload.clone(),
        target: first.target.clone(),
        mode: first.mode.clone(),
        rate: first.rate,
        started_unix: sorted.iter().map(|r| r.started_unix).fold(f64::MAX, f64::min),
        measured_secs,
        totals: t,
        ops,
        series: merge_series(&sorted)?,
        client_cpu,
        // Every worker read mntr over (almost) the same window; worker 0's view stands for all.
        servers: first.servers.clone(),
        steps: merge_steps(&sorted)?,
        hdr_log: None,
        send_lag: if lag.is_empty() { None } else { Some(Percentiles::of(&lag)) },
        worker: None,
        workers: infos,
        merge_flags,
        // Worker 0 alone injects faults; its report stands for the run.
        faults: first.faults.clone(),
        durability: merge_durability(&sorted),
        fault_log_dropped: sorted.iter().map(|r| r.fault_log_dropped).sum(),
        completed: merge_completed(&sorted),
        setup_requests: sorted.iter().fold(BTreeMap::new(), |mut all, r| {
            for (op, n) in &r.setup_requests {
                *all.entry(op.clone()).or_insert(0) += n;
            }
            all
        }),
    })
}

/// Every op the workers completed, with error codes: the sums.
fn merge_completed(results: &[&RunResult]) -> BTreeMap<String, crate::stats::RunCount> {
    let mut all: BTreeMap<String, crate::stats::RunCount> = BTreeMap::new();
    for r in results {
        for (op, count) in &r.completed {
            let entry = all.entry(op.clone()).or_default();
            entry.count += count.count;
            for (code, n) in &count.error_codes {
                *entry.error_codes.entry(code.clone()).or_insert(0) += n;
            }
        }
    }
    all
}

/// Each worker checked its own acknowledged writes; the run's check is all of them.
fn merge_durability(results: &[&RunResult]) -> Option<crate::fault::DurabilityCheck> {
    let checks: Vec<&crate::fault::DurabilityCheck> =
        results.iter().filter_map(|r| r.durability.as_ref()).collect();
    if checks.is_empty() {
        return None;
    }
    Some(crate::fault::DurabilityCheck {
        acked_writes: checks.iter().map(|c| c.acked_writes).sum(),
        keys_checked: checks.iter().map(|c| c.keys_checked).sum(),
        lost: checks.iter().flat_map(|c| c.lost.clone()).collect(),
        unreadable: checks.iter().flat_map(|c| c.unreadable.clone()).collect(),
        ok: checks.iter().all(|c| c.ok) && checks.len() == results.len(),
    })
}

/// The per-worker table printed by `fkload merge` and shown in the HTML report.
pub fn workers_table(parts: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<7} {:<16} {:>8} {:>10} {:>10} {:>8} {:>9} {:>16} {:>9}",
        "worker", "host", "sessions", "ops", "ops/s", "p99 ms", "lag p99", "clock ms (±)", "late ms"
    );
    for r in parts {
        let Some(w) = &r.worker else { continue };
        let p99 = r.ops.values().map(|o| o.response.as_ref().unwrap_or(&o.service).p99).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "{:<7} {:<16} {:>8} {:>10} {:>10.0} {:>8.2} {:>9} {:>16} {:>9}",
            format!("{}/{}", w.index, w.count),
            w.host,
            w.sessions.len(),
            r.totals.ops,
            r.totals.throughput,
            p99,
            r.send_lag.as_ref().map(|l| format!("{:.2}", l.p99)).unwrap_or_else(|| "-".into()),
            w.clock()
                .map(|c| format!("{:+.1} ({:.1})", c.offset_ms, c.uncertainty_ms))
                .unwrap_or_else(|| "-".into()),
            w.start_late_ms().map(|l| format!("{l:.1}")).unwrap_or_else(|| "-".into()),
        );
    }
    s
}
