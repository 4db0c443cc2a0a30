//! Worker mode: one of N fkload processes (on N machines) running a share of one workload.
//!
//! Worker `I/N` (0-based, so a Kubernetes Indexed Job's completion index can be passed as is)
//! runs the sessions `I, I+N, I+2N, ...` of the workload's `sessions` (and their in-flight
//! workers, numbered as in a single process), creates the keys `I, I+N, ...` of the tree, and
//! takes the same slots of the open-loop schedule a single process would give those workers. So
//! N workers together send what one process would, and `fkload merge` adds their histograms.
//! Nothing coordinates the workers but the wall clock: `--start-at` names the instant every
//! worker starts its first phase. Whether their clocks agree is measured, not assumed: each
//! worker writes a node and reads the server's `mtime` back (the leader's clock, stamped into
//! the transaction), which gives its offset from the leader's clock within ± half the round trip.
//! Offsets of different workers are comparable because they are all against the same leader.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrokeeper_client::{Acl, CreateMode, ZooKeeper};
use serde::{Deserialize, Serialize};

/// Which share of the workload this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSpec {
    /// 0-based index.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
}

impl WorkerSpec {
    /// The whole workload in one process.
    pub const SOLE: WorkerSpec = WorkerSpec { index: 0, count: 1 };

    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> anyhow::Result<WorkerSpec> {
        let (i, n) =
            text.split_once('/').ok_or_else(|| anyhow::anyhow!("--worker {text}: expected I/N, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|e| anyhow::anyhow!("--worker {text}: index: {e}"))?;
        let count: usize = n.trim().parse().map_err(|e| anyhow::anyhow!("--worker {text}: count: {e}"))?;
        anyhow::ensure!(count >= 1, "--worker {text}: N must be >= 1");
        anyhow::ensure!(index < count, "--worker {text}: the index is 0-based and must be < N");
        Ok(WorkerSpec { index, count })
    }

    /// The global session numbers this worker runs (of `sessions` in the whole workload).
    pub fn sessions(&self, sessions: usize) -> Vec<usize> {
        (self.index..sessions).step_by(self.count).collect()
    }

    /// Whether global item `i` (a key, a session) belongs to this worker.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

/// Parses a UTC instant: RFC 3339 in UTC (`2026-11-29T10:00:00Z`, fractional seconds allowed)
/// or `@<unix seconds>`. Returns seconds since the Unix epoch.
pub fn parse_utc(text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    if let Some(unix) = t.strip_prefix('@') {
        return unix.parse::<f64>().map_err(|e| anyhow::anyhow!("--start-at {text}: {e}"));
    }
    let bad = || anyhow::anyhow!("--start-at {text}: expected YYYY-MM-DDTHH:MM:SS[.fff]Z or @UNIX");
    let body = t.strip_suffix('Z').or_else(|| t.strip_suffix("+00:00")).ok_or_else(bad)?;
    let (date, time) = body.split_once(['T', ' ']).ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || c.len() != 3 {
        return Err(bad());
    }
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let (year, month, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (hour, minute) = (num(c[0])?, num(c[1])?);
    let second: f64 = c[2].parse().map_err(|_| bad())?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0.0..61.0).contains(&second);
    if !valid {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok((days * 86_400 + hour * 3600 + minute * 60) as f64 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch on this machine's clock.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Sleeps until the local wall clock reads `unix` (returns at once if that has passed).
pub async fn sleep_until_unix(unix: f64) {
    let wait = unix - unix_now();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// One measurement of this machine's clock against the leader's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Leader clock − local clock, ms (positive: the local clock is behind).
    pub offset_ms: f64,
    /// ± bound of the estimate, ms: half the best round trip plus the mtime's 1 ms resolution.
    pub uncertainty_ms: f64,
}

/// Estimates the local clock's offset from the leader's: `probes` setData calls on a node of
/// this worker, each bracketed by local wall-clock readings; the probe with the shortest round
/// trip wins (as NTP's clock filter). `None` if no probe succeeded.
pub async fn clock_offset(zk: &ZooKeeper, worker: usize, probes: usize) -> Option<ClockOffset> {
    let dir = "/fkload/clock";
    let path = format!("{dir}/w{worker}");
    for p in [dir, path.as_str()] {
        let _ = zk.create(p, b"", &Acl::open_unsafe(), CreateMode::Persistent, None).await;
    }
    let mut best: Option<(Duration, f64)> = None;
    for _ in 0..probes {
        let before_unix = unix_now();
        let before = Instant::now();
        let Ok(stat) = zk.set_data(&path, b"t", -1).await else { continue };
        let rtt = before.elapsed();
        let mid_ms = (before_unix + rtt.as_secs_f64() / 2.0) * 1000.0;
        let offset_ms = stat.mtime as f64 - mid_ms;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset_ms));
        }
    }
    // mtime is whole milliseconds, truncated: the true instant is up to 1 ms after it.
    best.map(|(rtt, offset_ms)| ClockOffset {
        offset_ms: offset_ms + 0.5,
        uncertainty_ms: rtt.as_secs_f64() * 1000.0 / 2.0 + 0.5,
    })
}

/// What a worker records about itself in its result (and `fkload merge` reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub index: usize,
    pub count: usize,
    /// Host name of the machine the worker ran on.
    #[serde(default)]
    pub host: String,
    /// Global session numbers this worker ran.
    pub sessions: Vec<usize>,
    /// The `--start-at` instant (Unix seconds), if one was given.
    pub start_at_unix: Option<f64>,
    /// When the first phase actually began, local clock (Unix seconds).
    pub started_unix: f64,
    /// The leader's clock against this worker's, measured before and after the run.
    pub clock_before: Option<ClockOffset>,
    pub clock_after: Option<ClockOffset>,
    /// The measured phase's send lag histogram, encoded (open loop only).
    #[serde(default)]
    pub send_lag_hdr: Option<String>,
}

impl WorkerInfo {
    /// The start error on the local clock: how late (positive) the first phase began, ms.
    pub fn start_late_ms(&self) -> Option<f64> {
        self.start_at_unix.map(|at| (self.started_unix - at) * 1000.0)
    }

    /// The best available offset estimate (the one with the smaller uncertainty).
    pub fn clock(&self) -> Option<&ClockOffset> {
        match (&self.clock_before, &self.clock_after) {
            (Some(a), Some(b)) => Some(if a.uncertainty_ms <= b.uncertainty_ms { a } else { b }),
            (a, b) => a.as_ref().or(b.as_ref()),
        }
    }

    /// When the first phase began on the leader's clock (Unix seconds), if the offset is known.
    pub fn started_leader_unix(&self) -> Option<f64> {
        self.clock().map(|c| self.started_unix + c.offset_ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_worker_specs() {
        assert_eq!(WorkerSpec::parse("0/4").unwrap(), WorkerSpec { index: 0, count: 4 });
        assert_eq!(WorkerSpec::parse("3/4").unwrap(), WorkerSpec { index: 3, count: 4 });
        assert!(WorkerSpec::parse("4/4").is_err());
        assert!(WorkerSpec::parse("1/0").is_err());
        assert!(WorkerSpec::parse("1").is_err());
        let w = WorkerSpec::parse("1/3").unwrap();
        assert_eq!(w.sessions(8), vec![1, 4, 7]);
        // The shares of all workers partition the sessions.
        let mut all: Vec<usize> =
            (0..3).flat_map(|i| WorkerSpec { index: i, count: 3 }.sessions(8)).collect();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn parses_utc_instants() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").unwrap(), 0.0);
        assert_eq!(parse_utc("2000-03-01T00:00:00Z").unwrap(), 951_868_800.0);
        assert_eq!(parse_utc("2026-11-29T10:00:00.250Z").unwrap(), 1_795_946_400.25);
        assert_eq!(parse_utc("@1795946400.5").unwrap(), 1_795_946_400.5);
        assert!(parse_utc("2026-11-29T10:00:00").is_err(), "a time without a zone is ambiguous");
        assert!(parse_utc("2026-13-01T00:00:00Z").is_err());
    }
}
