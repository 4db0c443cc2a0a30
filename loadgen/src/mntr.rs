//! The server-side view: `mntr` before and after a run, per node, and the stage breakdown
//! (`avg = Δsum / Δcnt` for every summary `X` with `zk_sum_X` / `zk_cnt_X`, as reference §5).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a four-letter word on a fresh connection and reads to EOF.
pub async fn four_letter(addr: &str, word: &str) -> anyhow::Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        anyhow::Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow::anyhow!("{word} on {addr}: timed out"))?
}

/// Parses `mntr` output (`key\tvalue` lines) into numbers; non-numeric values are kept apart.
pub fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut nums = BTreeMap::new();
    let mut strs = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('\t') else { continue };
        let v = v.trim();
        match v.parse::<f64>() {
            Ok(x) => {
                nums.insert(k.trim().to_owned(), x);
            }
            Err(_) => {
                strs.insert(k.trim().to_owned(), v.to_owned());
            }
        }
    }
    (nums, strs)
}

/// One server stage over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Events counted in the run (Δcnt).
    pub count: f64,
    /// Average over the run (Δsum / Δcnt), in the metric's unit (ms for times).
    pub avg: f64,
    /// `zk_max_X` after the run (since server start).
    pub max: Option<f64>,
    /// p99 over the run, where the server reports the histogram `zk_histogram_X` (ferrokeeper):
    /// the upper bound of the power-of-two bucket holding the rank in the run's bucket counts
    /// (after − before), capped by `max`. Otherwise `zk_p99_X` after the run (the server's own
    /// window: since start for ferrokeeper, recent minutes for ZooKeeper), if reported.
    pub p99: Option<f64>,
}

/// One node's view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub addr: String,
    /// `zk_version` and `zk_server_state`.
    pub version: String,
    pub state: String,
    /// Counters and gauges that changed: after − before.
    pub delta: BTreeMap<String, f64>,
    /// Every numeric value after the run.
    pub after: BTreeMap<String, f64>,
    /// Stage breakdown from the summaries.
    pub stages: BTreeMap<String, Stage>,
    /// Why mntr could not be read, if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// A `mntr` snapshot of every target node.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    nodes: Vec<(String, Result<String, String>)>,
}

/// `host:port` entries of a connect string (chroot removed).
pub fn hosts(connect: &str) -> Vec<String> {
    let hosts = connect.split('/').next().unwrap_or("");
    hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect()
}

impl Snapshot {
    /// Reads `mntr` from each host.
    pub async fn take(connect: &str) -> Snapshot {
        let mut nodes = Vec::new();
        for h in hosts(connect) {
            let r = four_letter(&h, "mntr").await.map_err(|e| e.to_string());
            nodes.push((h, r));
        }
        Snapshot { nodes }
    }

    /// A snapshot from `(host:port, mntr text)` pairs already read.
    pub fn from_texts(nodes: Vec<(String, String)>) -> Snapshot {
        Snapshot { nodes: nodes.into_iter().map(|(addr, text)| (addr, Ok(text))).collect() }
    }

    /// Per-node views from a before and an after snapshot.
    pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<ServerView> {
        let mut out = Vec::new();
        for (addr, after_text) in &after.nodes {
            let mut view = ServerView { addr: addr.clone(), ..ServerView::default() };
            let before_text = before.nodes.iter().find(|(a, _)| a == addr).and_then(|(_, r)| r.as_ref().ok());
            let after_text = match after_text {
                Ok(t) if t.contains("zk_version") => t,
                Ok(t) => {
                    view.error = Some(format!("mntr not answered (whitelisted?): {:?}", t.trim()));
                    out.push(view);
                    continue;
                }
                Err(e) => {
                    view.error = Some(e.clone());
                    out.push(view);
                    continue;
                }
            };
            let (a, a_str) = parse(after_text);
            let (b, b_str) = before_text.map(|t| parse(t)).unwrap_or_default();
            view.version = a_str.get("zk_version").cloned().unwrap_or_default();
            view.state = a_str.get("zk_server_state").cloned().unwrap_or_default();
            for (k, v) in &a {
                let d = v - b.get(k).copied().unwrap_or(0.0);
                if d != 0.0 {
                    view.delta.insert(k.clone(), d);
                }
            }
            for (k, cnt) in &a {
                let Some(name) = k.strip_prefix("zk_cnt_") else { continue };
                let Some(sum) = a.get(&format!("zk_sum_{name}")) else { continue };
                let d_cnt = cnt - b.get(k).copied().unwrap_or(0.0);
                let d_sum = sum - b.get(&format!("zk_sum_{name}")).copied().unwrap_or(0.0);
                if d_cnt <= 0.0 {
                    continue;
                }
                let max = a.get(&format!("zk_max_{name}")).copied();
                let histogram = format!("zk_histogram_{name}");
                let p99 = match a_str.get(&histogram) {
                    Some(after) => {
                        let before = b_str.get(&histogram).map(String::as_str).unwrap_or("");
                        run_quantile_ms(before, after, 0.99).map(|p| max.map_or(p, |m| p.min(m)))
                    }
                    None => a.get(&format!("zk_p99_{name}")).copied(),
                };
                view.stages.insert(name.to_owned(), Stage { count: d_cnt, avg: d_sum / d_cnt, max, p99 });
            }
            view.after = a;
            out.push(view);
        }
        out
    }
}

/// `upper_bound_us=count` pairs of a `zk_histogram_X` value.
fn buckets(text: &str) -> BTreeMap<u64, u64> {
    text.split_whitespace()
        .filter_map(|pair| {
            let (upper, count) = pair.split_once('=')?;
            Some((upper.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Quantile `q` (ms) of the events between two `zk_histogram_X` snapshots: the upper bound of
/// the bucket holding the rank. `None` when nothing was recorded in between.
pub fn run_quantile_ms(before: &str, after: &str, q: f64) -> Option<f64> {
    let before = buckets(before);
    let delta: Vec<(u64, u64)> = buckets(after)
        .into_iter()
        .map(|(upper, n)| (upper, n.saturating_sub(before.get(&upper).copied().unwrap_or(0))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = delta.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (upper, n) in &delta {
        seen += n;
        if seen >= rank {
            return Some(*upper as f64 / 1000.0);
        }
    }
    delta.last().map(|(upper, _)| *upper as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stages_from_summary_deltas() {
        let before = "zk_version\t3.8.4\nzk_server_state\tstandalone\nzk_cnt_fsynctime\t10\nzk_sum_fsynctime\t20\nzk_packets_received\t5\n";
        let after = "zk_version\t3.8.4\nzk_server_state\tstandalone\nzk_cnt_fsynctime\t110\nzk_sum_fsynctime\t320\nzk_max_fsynctime\t9\nzk_p99_fsynctime\t7.5\nzk_packets_received\t1005\n";
        let b = Snapshot { nodes: vec![("h:1".into(), Ok(before.into()))] };
        let a = Snapshot { nodes: vec![("h:1".into(), Ok(after.into()))] };
        let v = Snapshot::diff(&b, &a);
        assert_eq!(v[0].state, "standalone");
        assert_eq!(v[0].delta["zk_packets_received"], 1000.0);
        let f = &v[0].stages["fsynctime"];
        assert_eq!(f.count, 100.0);
        assert_eq!(f.avg, 3.0);
        assert_eq!(f.p99, Some(7.5));
        assert_eq!(hosts("a:1,b:2/chroot"), vec!["a:1", "b:2"]);
    }

    #[test]
    fn run_p99_comes_from_the_histogram_difference() {
        // Before: 1000 fast events (≤ 1 ms). The run adds 98 at ≤ 2 ms and 2 at ≤ 64 ms, so
        // the run's p99 is in the 64 ms bucket, whatever the events before it were.
        let before = "zk_version\tx\nzk_cnt_s\t1000\nzk_sum_s\t500\nzk_max_s\t1\nzk_histogram_s\t1024=1000\n";
        let after = "zk_version\tx\nzk_cnt_s\t1100\nzk_sum_s\t800\nzk_max_s\t50\nzk_p99_s\t2.048\n\
                     zk_histogram_s\t1024=1000 2048=98 65536=2\n";
        let b = Snapshot { nodes: vec![("h:1".into(), Ok(before.into()))] };
        let a = Snapshot { nodes: vec![("h:1".into(), Ok(after.into()))] };
        let s = &Snapshot::diff(&b, &a)[0].stages["s"];
        assert_eq!(s.count, 100.0);
        assert_eq!(s.avg, 3.0);
        // 65.536 ms bucket, capped by the max (50 ms); the since-start zk_p99_s is ignored.
        assert_eq!(s.p99, Some(50.0));
        assert_eq!(run_quantile_ms("1024=5", "1024=5", 0.99), None);
        assert_eq!(run_quantile_ms("", "1024=99 2048=1", 0.5), Some(1.024));
    }
}
