//! Workload definitions: what a run does, read from YAML (`loadgen/workloads/*.yaml`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One kind of operation fkload issues and measures. The index is the slot in every per-op array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// getData on a key.
    Get,
    /// setData on a key (version -1).
    Set,
    /// create of a fresh node (the first half of `create_delete`).
    Create,
    /// delete of that node (the second half of `create_delete`).
    Delete,
    /// exists on a key.
    Exists,
    /// getChildren on a directory of the tree.
    Children,
    /// multi: check + setData + setData on two keys.
    Multi,
    /// Ephemeral churn: a new session connects, creates an ephemeral node and closes.
    Session,
    /// Lock recipe: acquire and release a contended lock.
    Lock,
    /// setData on the watched node (watch fan-out).
    WatchSet,
    /// getData on a node that does not exist: fails with NoNode on purpose.
    GetMissing,
    /// setData on a key with a version it never has: fails with BadVersion on purpose.
    SetStale,
    /// Watch fan-out: setData sent → a watcher's event received.
    Notify,
}

impl OpKind {
    /// Every kind, in index order.
    pub const ALL: [OpKind; 13] = [
        OpKind::Get,
        OpKind::Set,
        OpKind::Create,
        OpKind::Delete,
        OpKind::Exists,
        OpKind::Children,
        OpKind::Multi,
        OpKind::Session,
        OpKind::Lock,
        OpKind::WatchSet,
        OpKind::GetMissing,
        OpKind::SetStale,
        OpKind::Notify,
    ];
    /// Number of kinds.
    pub const COUNT: usize = OpKind::ALL.len();

    /// Slot in per-op arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in YAML, JSON, metrics and traces.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Exists => "exists",
            OpKind::Children => "children",
            OpKind::Multi => "multi",
            OpKind::Session => "session",
            OpKind::Lock => "lock",
            OpKind::WatchSet => "watch_set",
            OpKind::GetMissing => "get_missing",
            OpKind::SetStale => "set_stale",
            OpKind::Notify => "notify",
        }
    }

    /// Parses a name as written by [`OpKind::name`].
    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a weighted mix entry issues: a measured op, or `create_delete` (two measured ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixOp {
    Get,
    Set,
    CreateDelete,
    Exists,
    Children,
    Multi,
    EphemeralChurn,
    Lock,
    WatchSet,
    /// getData on `/fkload/missing/k<i>` (never created): a NoNode error per op.
    GetMissing,
    /// setData on a key with version 2^31-1: a BadVersion error per op.
    SetStale,
}

impl MixOp {
    /// The measured kinds this mix entry records.
    pub fn kinds(self) -> &'static [OpKind] {
        match self {
            MixOp::Get => &[OpKind::Get],
            MixOp::Set => &[OpKind::Set],
            MixOp::CreateDelete => &[OpKind::Create, OpKind::Delete],
            MixOp::Exists => &[OpKind::Exists],
            MixOp::Children => &[OpKind::Children],
            MixOp::Multi => &[OpKind::Multi],
            MixOp::EphemeralChurn => &[OpKind::Session],
            MixOp::Lock => &[OpKind::Lock],
            MixOp::WatchSet => &[OpKind::WatchSet, OpKind::Notify],
            MixOp::GetMissing => &[OpKind::GetMissing],
            MixOp::SetStale => &[OpKind::SetStale],
        }
    }
}

/// How keys are chosen among the `znodes` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `theta` (YCSB's 0.99 by default); key 0 is the hottest.
    Zipfian {
        #[serde(default = "default_theta")]
        theta: f64,
    },
    /// `hot_ops` of the operations go to the first `hot_fraction` of the keys.
    Hotspot { hot_fraction: f64, hot_ops: f64 },
}

fn default_theta() -> f64 {
    0.99
}

/// Sizes of the values written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum SizeDist {
    /// Always `size` bytes.
    Fixed { size: usize },
    /// Uniform in `[min, max]` bytes.
    Uniform { min: usize, max: usize },
}

impl SizeDist {
    /// The largest size this distribution can produce.
    pub fn max(&self) -> usize {
        match self {
            SizeDist::Fixed { size } => *size,
            SizeDist::Uniform { max, .. } => *max,
        }
    }
}

/// The tree the keys live in: `/fkload/d<i / fanout>/k<i>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeShape {
    /// Keys per directory node.
    #[serde(default = "default_fanout")]
    pub fanout: usize,
}

fn default_fanout() -> usize {
    100
}

impl Default for TreeShape {
    fn default() -> Self {
        TreeShape { fanout: default_fanout() }
    }
}

/// The latency objective a sweep searches against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The percentile checked, e.g. 99.0.
    pub percentile: f64,
    /// Its limit in milliseconds.
    pub latency_ms: f64,
}

/// A whole workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Name used in reports.
    pub name: String,
    /// Optional prose.
    #[serde(default)]
    pub description: String,
    /// Relative op weights.
    pub ops: BTreeMap<MixOp, u32>,
    /// Number of keys (znodes) created before the run.
    #[serde(default = "default_znodes")]
    pub znodes: usize,
    /// Directory layout of the keys.
    #[serde(default)]
    pub tree: TreeShape,
    /// Value sizes for creates and writes (and the initial data).
    #[serde(default = "default_value_size")]
    pub value_size: SizeDist,
    /// Key popularity.
    #[serde(default = "default_keys")]
    pub keys: KeyDist,
    /// Client sessions (TCP connections).
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Requests in flight per session.
    #[serde(default = "default_inflight")]
    pub inflight: usize,
    /// Measured duration, seconds.
    #[serde(default = "default_duration")]
    pub duration_secs: f64,
    /// Warm-up before measuring, seconds.
    #[serde(default)]
    pub warmup_secs: f64,
    /// Open loop: target ops/s over all sessions. Absent: closed loop.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Open loop, stepped: run each rate in turn for `step_secs` (overrides `rate`).
    #[serde(default)]
    pub steps: Vec<f64>,
    /// Seconds per step.
    #[serde(default = "default_step_secs")]
    pub step_secs: f64,
    /// Latency objective for `--sweep`.
    #[serde(default)]
    pub slo: Option<Slo>,
    /// Watch fan-out: sessions that keep a data watch on the watched node.
    #[serde(default)]
    pub watchers: usize,
    /// Faults injected during the run (see `fault.rs`): kill / restart, stop, a command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::fault::Fault>,
    /// Command templates for the fault actions on remote nodes (ssh, kubectl); without them the
    /// actions hit the local process listening on the node's client port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_commands: Option<crate::fault::FaultCommands>,
}

fn default_znodes() -> usize {
    1000
}
fn default_value_size() -> SizeDist {
    SizeDist::Fixed { size: 1024 }
}
fn default_keys() -> KeyDist {
    KeyDist::Uniform
}
fn default_sessions() -> usize {
    8
}
fn default_inflight() -> usize {
    4
}
fn default_duration() -> f64 {
    10.0
}
fn default_step_secs() -> f64 {
    5.0
}

impl Workload {
    /// Parses and checks a YAML workload.
    pub fn from_yaml(text: &str) -> anyhow::Result<Workload> {
        let w: Workload = serde_yaml::from_str(text)?;
        w.validate()?;
        Ok(w)
    }

    /// Reads a YAML workload file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Workload> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading workload {}: {e}", path.display()))?;
        Workload::from_yaml(&text).map_err(|e| anyhow::anyhow!("workload {}: {e}", path.display()))
    }

    /// Rejects workloads that cannot run.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.ops.values().any(|w| *w > 0), "ops: at least one weight must be > 0");
        anyhow::ensure!(self.znodes >= 1, "znodes must be >= 1");
        anyhow::ensure!(self.tree.fanout >= 1, "tree.fanout must be >= 1");
        anyhow::ensure!(self.sessions >= 1 && self.inflight >= 1, "sessions and inflight must be >= 1");
        anyhow::ensure!(self.duration_secs > 0.0, "duration_secs must be > 0");
        anyhow::ensure!(self.value_size.max() <= 1024 * 1024, "value sizes above 1 MiB are refused");
        if let SizeDist::Uniform { min, max } = self.value_size {
            anyhow::ensure!(min <= max, "value_size: min > max");
        }
        if let KeyDist::Hotspot { hot_fraction, hot_ops } = self.keys {
            anyhow::ensure!(
                (0.0..=1.0).contains(&hot_fraction) && (0.0..=1.0).contains(&hot_ops),
                "hotspot fractions must be in [0, 1]"
            );
        }
        if self.ops.get(&MixOp::WatchSet).copied().unwrap_or(0) > 0 {
            anyhow::ensure!(self.watchers > 0, "watch_set needs watchers > 0");
        }
        let planned = self.warmup_secs
            + if self.steps.is_empty() || self.rate.is_some() {
                self.duration_secs
            } else {
                self.step_secs * self.steps.len() as f64
            };
        for f in &self.faults {
            f.validate()?;
            let last = f.restart_at.unwrap_or(f.at).max(f.at + f.duration.unwrap_or(0.0));
            anyhow::ensure!(
                last < planned,
                "fault at {}: its last action ({last} s) must fall inside the run ({planned} s)",
                f.at
            );
        }
        Ok(())
    }

    /// The measured kinds this workload's mix records (weight > 0).
    pub fn kinds(&self) -> Vec<OpKind> {
        let mut kinds: Vec<OpKind> =
            self.ops.iter().filter(|(_, w)| **w > 0).flat_map(|(op, _)| op.kinds().iter().copied()).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Whether the run is open loop (a rate or steps are set).
    pub fn is_open_loop(&self) -> bool {
        self.rate.is_some() || !self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shipped_workloads_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Workload::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 7, "expected the seven shipped workloads, found {n}");
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(Workload::from_yaml("name: x\nops: {get: 1}\nbogus: 3\n").is_err());
        assert!(Workload::from_yaml("name: x\nops: {get: 0}\n").is_err());
    }
}
