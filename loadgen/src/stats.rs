//! Measurement: HDR histograms per op (service time, and in open loop response time from the
//! intended send time), errors by code, per-second series and HDR interval logs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::workload::OpKind;

/// Highest recordable latency: 60 s, in microseconds.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A fresh latency histogram (1 µs .. 60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the constructor's preconditions.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// A histogram as text: HdrHistogram's V2 + deflate encoding in base64 (the same form as the
/// interval log's), so results carry their histograms and `fkload merge` can add them exactly.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Serializing into a Vec cannot fail for a histogram this process built.
    if V2DeflateSerializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// Reads a histogram written by [`encode_histogram`].
pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| anyhow::anyhow!("histogram: bad base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
    // Re-bound it like a fresh one, so adding histograms of any origin never fails on range.
    let mut out = new_histogram();
    out.add(&h).map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
    Ok(out)
}

fn micros(d: Duration) -> u64 {
    (d.as_micros().min(u128::from(MAX_LATENCY_US)) as u64).max(1)
}

/// Histograms and counters of one op kind.
#[derive(Debug)]
pub struct OpStats {
    /// Service time since the measured phase began.
    pub service: Histogram<u64>,
    /// Response time from the intended send time (open loop only).
    pub response: Histogram<u64>,
    /// Service time in the current one-second interval.
    pub service_interval: Histogram<u64>,
    /// Response time in the current interval.
    pub response_interval: Histogram<u64>,
    /// Successful ops since the measured phase began.
    pub ok: u64,
    /// Failed ops by error name.
    pub errors: BTreeMap<String, u64>,
    /// Failed ops in the current interval.
    pub errors_interval: u64,
    /// Successful ops over the whole run (never reset: warm-up and the drain included).
    pub run_ok: u64,
    /// Failed ops over the whole run, by error name.
    pub run_errors: BTreeMap<String, u64>,
}

/// An op's count over the whole run (warm-up, measured phases and the drain after the last one),
/// with its errors by name: what the servers' request counters saw of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunCount {
    pub count: u64,
    pub error_codes: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            service: new_histogram(),
            response: new_histogram(),
            service_interval: new_histogram(),
            response_interval: new_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            errors_interval: 0,
            run_ok: 0,
            run_errors: BTreeMap::new(),
        }
    }
}

/// The shared sink every worker records into: one mutex per op kind, held for two histogram
/// increments (no allocation unless an error name is new).
#[derive(Debug)]
pub struct Recorder {
    ops: Vec<Mutex<OpStats>>,
    /// Open loop: how late requests left fkload (actual − intended send time), measured phase.
    lag: Mutex<Histogram<u64>>,
    total_ops: AtomicU64,
    metrics: Option<Metrics>,
    /// Every measured sample `(op, service µs, response µs or 0)`, when asked for (`--samples`).
    samples: Option<Mutex<Vec<(OpKind, u64, u64)>>>,
    /// The samples behind the last [`Recorder::summarize`], taken under the same locks.
    samples_summarized: Mutex<Vec<(OpKind, u64, u64)>>,
}

/// Locks a mutex, ignoring poisoning (a panicking worker must not hide the numbers).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// A recorder, optionally mirrored into Prometheus metrics.
    pub fn new(metrics: Option<Metrics>) -> Recorder {
        Recorder {
            ops: (0..OpKind::COUNT).map(|_| Mutex::new(OpStats::new())).collect(),
            lag: Mutex::new(new_histogram()),
            total_ops: AtomicU64::new(0),
            metrics,
            samples: None,
            samples_summarized: Mutex::new(Vec::new()),
        }
    }

    /// A recorder that also keeps every raw sample of the measured phase (memory grows with
    /// the op count: for tests and short diagnostic runs).
    pub fn with_samples(metrics: Option<Metrics>) -> Recorder {
        Recorder { samples: Some(Mutex::new(Vec::new())), ..Recorder::new(metrics) }
    }

    /// The raw samples behind the last [`Recorder::summarize`] (empty unless built
    /// [`Recorder::with_samples`]): exactly the ops its summaries count.
    pub fn samples(&self) -> Vec<(OpKind, u64, u64)> {
        lock(&self.samples_summarized).clone()
    }

    /// Records one completed op.
    pub fn record(&self, op: OpKind, service: Duration, response: Option<Duration>, error: Option<&str>) {
        let service_us = micros(service);
        let response_us = response.map(micros);
        {
            let mut guard = lock(&self.ops[op.index()]);
            let s = &mut *guard;
            s.service.saturating_record(service_us);
            s.service_interval.saturating_record(service_us);
            if let Some(r) = response_us {
                s.response.saturating_record(r);
                s.response_interval.saturating_record(r);
            }
            if let Some(samples) = &self.samples {
                lock(samples).push((op, service_us, response_us.unwrap_or(0)));
            }
            match error {
                None => {
                    s.ok += 1;
                    s.run_ok += 1;
                }
                Some(name) => {
                    s.errors_interval += 1;
                    for errors in [&mut s.errors, &mut s.run_errors] {
                        match errors.get_mut(name) {
                            Some(n) => *n += 1,
                            None => {
                                errors.insert(name.to_owned(), 1);
                            }
                        }
                    }
                }
            }
        }
        self.total_ops.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.observe(op, response_us.unwrap_or(service_us), error);
        }
    }

    /// Records how late an open-loop request was sent relative to its schedule.
    pub fn record_lag(&self, lag: Duration) {
        lock(&self.lag).saturating_record(micros(lag));
    }

    /// Send-lag percentiles of the measured phase (open loop only).
    pub fn lag(&self) -> Option<Percentiles> {
        let h = lock(&self.lag);
        if h.is_empty() { None } else { Some(Percentiles::of(&h)) }
    }

    /// The send-lag histogram of the measured phase, encoded (open loop only).
    pub fn lag_histogram(&self) -> Option<String> {
        let h = lock(&self.lag);
        if h.is_empty() { None } else { Some(encode_histogram(&h)) }
    }

    /// Ops recorded so far (including warm-up).
    pub fn total_ops(&self) -> u64 {
        self.total_ops.load(Ordering::Relaxed)
    }

    /// Forgets everything measured so far (end of warm-up, or a new step).
    pub fn reset_totals(&self) {
        lock(&self.lag).reset();
        // Every op's lock first (the order `record` and `summarize` take them in), then the
        // samples: an op recorded meanwhile is either in both or in neither.
        let mut guards: Vec<_> = self.ops.iter().map(lock).collect();
        if let Some(samples) = &self.samples {
            lock(samples).clear();
        }
        for s in guards.iter_mut() {
            s.service.reset();
            s.response.reset();
            s.ok = 0;
            s.errors.clear();
        }
    }

    /// Takes and clears the interval histograms: `(op, service, response, errors)` per op that
    /// saw traffic in the interval.
    pub fn take_interval(&self) -> Vec<(OpKind, Histogram<u64>, Histogram<u64>, u64)> {
        let mut out = Vec::new();
        for op in OpKind::ALL {
            let mut s = lock(&self.ops[op.index()]);
            if s.service_interval.is_empty() {
                continue;
            }
            let service = std::mem::replace(&mut s.service_interval, new_histogram());
            let response = std::mem::replace(&mut s.response_interval, new_histogram());
            let errors = std::mem::take(&mut s.errors_interval);
            out.push((op, service, response, errors));
        }
        out
    }

    /// Every op completed so far over the whole run, per op with traffic.
    pub fn run_counts(&self) -> BTreeMap<String, RunCount> {
        let mut out = BTreeMap::new();
        for op in OpKind::ALL {
            let s = lock(&self.ops[op.index()]);
            let errors: u64 = s.run_errors.values().sum();
            if s.run_ok + errors == 0 {
                continue;
            }
            out.insert(
                op.name().to_owned(),
                RunCount { count: s.run_ok + errors, error_codes: s.run_errors.clone() },
            );
        }
        out
    }

    /// Summaries of the measured phase, per op with traffic.
    pub fn summarize(&self, seconds: f64) -> BTreeMap<String, OpSummary> {
        let mut out = BTreeMap::new();
        // Every op's lock at once (a recorder holds one at a time, so no cycle), so that the
        // raw samples kept match the summaries exactly.
        let guards: Vec<_> = self.ops.iter().map(lock).collect();
        if let Some(samples) = &self.samples {
            *lock(&self.samples_summarized) = lock(samples).clone();
        }
        for op in OpKind::ALL {
            let s = &guards[op.index()];
            if s.service.is_empty() {
                continue;
            }
            let response = if s.response.is_empty() { None } else { Some(&s.response) };
            let summary = OpSummary::of(s.ok, &s.errors, &s.service, response, seconds);
            out.insert(op.name().to_owned(), summary);
        }
        out
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Percentiles {
    /// Reads the percentiles of a microsecond histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            p9999: ms(h.value_at_quantile(0.9999)),
            max: ms(h.max()),
        }
    }

    /// The value at a percentile given as 50, 90, 99, 99.9 or 99.99 (else the closest below).
    pub fn at(&self, percentile: f64) -> f64 {
        if percentile >= 99.99 {
            self.p9999
        } else if percentile >= 99.9 {
            self.p999
        } else if percentile >= 99.0 {
            self.p99
        } else if percentile >= 90.0 {
            self.p90
        } else {
            self.p50
        }
    }
}

/// Percentile spectrum points `(percentile, ms)` for the report's chart.
fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    const POINTS: [f64; 16] = [
        0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995, 99.9999,
        100.0,
    ];
    POINTS.iter().map(|p| (*p, ms(h.value_at_quantile(p / 100.0)))).collect()
}

/// The measured numbers of one op kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub count: u64,
    pub errors: u64,
    /// ops/s over the measured phase.
    pub throughput: f64,
    /// Service time: request sent → reply received.
    pub service: Percentiles,
    /// Open loop: intended send time → reply received (coordinated-omission corrected).
    #[serde(default)]
    pub response: Option<Percentiles>,
    /// Errors by ZooKeeper code name.
    #[serde(default)]
    pub error_codes: BTreeMap<String, u64>,
    /// `(percentile, ms)` of the response time (service time in closed loop).
    #[serde(default)]
    pub spectrum: Vec<(f64, f64)>,
    /// The histograms themselves (µs, encoded), so that results of several workers can be
    /// added exactly by `fkload merge`. Absent in results of older fkload versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr: Option<OpHistograms>,
}

/// The encoded histograms behind an [`OpSummary`] (see [`encode_histogram`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpHistograms {
    pub service: String,
    #[serde(default)]
    pub response: Option<String>,
}

impl OpSummary {
    /// The summary of `ok` successes, `errors` by code and the histograms, over `seconds`.
    pub fn of(
        ok: u64,
        errors: &BTreeMap<String, u64>,
        service: &Histogram<u64>,
        response: Option<&Histogram<u64>>,
        seconds: f64,
    ) -> OpSummary {
        let error_count: u64 = errors.values().sum();
        let count = ok + error_count;
        OpSummary {
            count,
            errors: error_count,
            throughput: count as f64 / seconds.max(1e-9),
            service: Percentiles::of(service),
            response: response.map(Percentiles::of),
            error_codes: errors.clone(),
            spectrum: spectrum(response.unwrap_or(service)),
            hdr: Some(OpHistograms {
                service: encode_histogram(service),
                response: response.map(encode_histogram),
            }),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the run (warm-up included) began, at the end of the interval.
    pub t: f64,
    /// `warmup` or `measure` (or `step-<rate>`).
    pub phase: String,
    /// ops/s in the interval.
    pub ops: f64,
    /// errors/s in the interval.
    pub errors: f64,
    /// Worst p99 over the ops (response time in open loop), ms.
    pub p99_ms: f64,
    /// Per op: `[ops/s, p50 ms, p99 ms, max ms]`.
    pub per_op: BTreeMap<String, [f64; 4]>,
    /// Per op: the interval's histogram behind those percentiles (response time in open
    /// loop), encoded, so that `fkload merge` can combine the workers' seconds exactly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hdr: BTreeMap<String, String>,
    /// Per op: errors in the interval (count, not a rate), so merged series stay exact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_op: BTreeMap<String, u64>,
    /// Length of the interval, seconds.
    #[serde(default)]
    pub secs: f64,
}

impl SeriesPoint {
    /// A point with no traffic yet.
    fn empty(t: f64, phase: &str, seconds: f64) -> SeriesPoint {
        SeriesPoint {
            t,
            phase: phase.to_owned(),
            ops: 0.0,
            errors: 0.0,
            p99_ms: 0.0,
            per_op: BTreeMap::new(),
            hdr: BTreeMap::new(),
            errors_by_op: BTreeMap::new(),
            secs: seconds,
        }
    }
}

/// Builds a series point from one interval's histograms.
pub fn series_point(
    t: f64,
    seconds: f64,
    phase: &str,
    interval: &[(OpKind, Histogram<u64>, Histogram<u64>, u64)],
) -> SeriesPoint {
    let mut point = SeriesPoint::empty(t, phase, seconds);
    let seconds = seconds.max(1e-6);
    for (op, service, response, errors) in interval {
        let h = if response.is_empty() { service } else { response };
        let rate = service.len() as f64 / seconds;
        point.ops += rate;
        point.errors += *errors as f64 / seconds;
        let p99 = ms(h.value_at_quantile(0.99));
        point.p99_ms = point.p99_ms.max(p99);
        point.per_op.insert(op.name().to_owned(), [rate, ms(h.value_at_quantile(0.5)), p99, ms(h.max())]);
        point.hdr.insert(op.name().to_owned(), encode_histogram(h));
        if *errors > 0 {
            point.errors_by_op.insert(op.name().to_owned(), *errors);
        }
    }
    point
}

/// A series point rebuilt from interval histograms and counts (used by `fkload merge`): the
/// rate of op `k` is its histogram's count over `seconds`.
pub fn series_point_from(
    t: f64,
    seconds: f64,
    phase: &str,
    ops: &BTreeMap<String, (Histogram<u64>, u64)>,
) -> SeriesPoint {
    let seconds = seconds.max(1e-6);
    let mut point = SeriesPoint::empty(t, phase, seconds);
    for (name, (h, errors)) in ops {
        let rate = h.len() as f64 / seconds;
        point.ops += rate;
        point.errors += *errors as f64 / seconds;
        let p99 = ms(h.value_at_quantile(0.99));
        point.p99_ms = point.p99_ms.max(p99);
        point.per_op.insert(name.clone(), [rate, ms(h.value_at_quantile(0.5)), p99, ms(h.max())]);
        point.hdr.insert(name.clone(), encode_histogram(h));
        if *errors > 0 {
            point.errors_by_op.insert(name.clone(), *errors);
        }
    }
    point
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let r = Recorder::new(None);
        for i in 1..=1000u64 {
            r.record(OpKind::Get, Duration::from_micros(i * 10), None, None);
        }
        r.record(OpKind::Get, Duration::from_millis(1), None, Some("NoNode"));
        let s = r.summarize(1.0);
        let get = &s["get"];
        assert_eq!(get.count, 1001);
        assert_eq!(get.errors, 1);
        assert_eq!(get.error_codes["NoNode"], 1);
        assert!((get.service.p50 - 5.0).abs() < 0.05, "{}", get.service.p50);
        assert!((get.service.p99 - 9.9).abs() < 0.05, "{}", get.service.p99);
        assert!((get.service.max - 10.0).abs() < 0.05);
        assert!(get.response.is_none());
    }
}
