//! `ferrokeeper import-zookeeper`: an Apache ZooKeeper dataDir (and dataLogDir) → a ferrokeeper
//! dataDir, restored as ZooKeeper would restore it on start-up (`FileTxnSnapLog.restore`):
//!
//! 1. the newest snapshot that passes ZooKeeper's checks (of the 100 newest whose tail looks
//!    whole, the first that parses with a good checksum; others are skipped with a warning);
//! 2. the log files from the one holding the snapshot's zxid + 1 on, each up to its end of data
//!    (preallocated zeros, or a torn record), txns up to the snapshot's zxid skipped, every later
//!    txn replayed ([`super::replay`]);
//! 3. ephemerals of sessions no longer in the session table deleted (`ZooKeeperServer.loadData`);
//! 4. `currentEpoch` / `acceptedEpoch` read from the ZooKeeper dataDir, or taken from the last
//!    zxid where absent (`QuorumPeer.loadDataBase`).
//!
//! Everything is read and checked before anything is written; the ZooKeeper files are only
//! read. The result is one ferrokeeper snapshot at the last zxid in `<to>/fk-snap` and the
//! epoch files in `<to>`.

use std::path::{Path, PathBuf};

use crate::quorum::epochs;
use crate::tree::{DataTree, TreeConfig};
use crate::txlog::snapshot;

use super::log::End;
use super::replay::Replay;
use super::{FormatError, ZkState, zxid_from_name};

/// Not replicated state in ZooKeeper: each server rewrites it from its own configuration when
/// it starts in an ensemble (its mtime is that server's clock), so members' snapshots differ
/// there. The import gives it the content ferrokeeper's own fresh tree has, as every member's.
const CONFIG_NODE: &str = "/zookeeper/config";

type NodeRecord =
    (String, Option<bytes::Bytes>, Vec<ferrokeeper_proto::Acl>, ferrokeeper_proto::StatPersisted);

/// `path` as a new ferrokeeper tree holds it.
fn fresh_node(config: &TreeConfig, path: &str) -> Option<NodeRecord> {
    let mut found = None;
    DataTree::new(config.clone()).for_each_node(|at, data, acl, stat| {
        if at == path {
            found = Some((at.to_owned(), data.clone(), acl.to_vec(), stat.clone()));
        }
    });
    found
}

/// ZooKeeper's subdirectory of dataDir / dataLogDir (`FileTxnSnapLog.version`).
pub const VERSION_DIR: &str = "version-2";
/// ZooKeeper considers at most this many snapshots (`FileSnap.deserialize`).
const SNAPSHOTS_TRIED_MAX: usize = 100;

/// Where to read and where to write.
#[derive(Debug, Clone)]
pub struct Paths {
    /// ZooKeeper's dataDir (holding `version-2/` and the epoch files).
    pub data_dir: PathBuf,
    /// ZooKeeper's dataLogDir, when the logs are not in dataDir.
    pub data_log_dir: Option<PathBuf>,
    /// The ferrokeeper dataDir to create.
    pub to: PathBuf,
}

/// What was read and written.
#[derive(Debug, Clone)]
pub struct Report {
    pub snapshot: PathBuf,
    pub snapshot_zxid: i64,
    /// Snapshots newer than the one used that ZooKeeper would skip too, with why.
    pub skipped_snapshots: Vec<String>,
    /// Each log file read, its txns and how its data ended.
    pub logs: Vec<(PathBuf, usize, End)>,
    pub txns_replayed: u64,
    pub txns_failed: u64,
    pub zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    pub current_epoch: i64,
    pub accepted_epoch: i64,
    pub written: PathBuf,
}

/// Reads, restores, checks, then writes. Nothing is written on any error.
pub fn import(paths: &Paths) -> Result<Report, String> {
    let (state, mut report) = restore(&paths.data_dir, paths.data_log_dir.as_deref())?;
    let (current, accepted) = read_epochs(&paths.data_dir, state.zxid)?;
    report.current_epoch = current;
    report.accepted_epoch = accepted;
    let config = TreeConfig { extended_types_enabled: true, ..TreeConfig::default() };
    report.sessions = state.sessions.len();
    let zxid = state.zxid;
    let (bytes, nodes) = encode_ferrokeeper(&state, &config);
    report.nodes = nodes;
    drop(state);
    // The file must load as ferrokeeper's start-up will load it (paths, parents, root).
    snapshot::decode(&bytes, config).map_err(|e| format!("the restored tree does not load: {e}"))?;
    refuse_existing(&paths.to)?;
    let snap_dir = paths.to.join("fk-snap");
    report.written = snapshot::write(&snap_dir, zxid, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", snap_dir.display()))?;
    epochs::save(&paths.to, current, accepted)
        .map_err(|e| format!("cannot write the epoch files in {}: {e}", paths.to.display()))?;
    Ok(report)
}

/// A ferrokeeper snapshot of `state`'s reachable nodes in path order (as ferrokeeper writes
/// them), with [`CONFIG_NODE`] as a fresh ferrokeeper tree has it; and the node count.
fn encode_ferrokeeper(state: &ZkState, config: &TreeConfig) -> (Vec<u8>, usize) {
    let reachable: std::collections::HashSet<&str> =
        state.reachable().into_iter().map(|(path, _)| path).collect();
    let server_local = fresh_node(config, CONFIG_NODE);
    let mut encoder = snapshot::Encoder::start(state.zxid, &state.sessions, 0);
    for (path, node) in state.nodes.iter().filter(|(path, _)| reachable.contains(path.as_str())) {
        match &server_local {
            Some((_, data, acl, stat)) if path == CONFIG_NODE => encoder.node(path, data, acl, stat),
            _ => encoder.node(path, &node.data, &node.acl, &node.stat),
        }
    }
    (encoder.finish(), reachable.len())
}

/// The state ZooKeeper would start with, and what was read to get it.
pub fn restore(data_dir: &Path, data_log_dir: Option<&Path>) -> Result<(ZkState, Report), String> {
    let snap_dir = version_dir(data_dir)?;
    let log_dir = version_dir(data_log_dir.unwrap_or(data_dir))?;
    let logs = list(&log_dir, "log")?;
    let (snapshot, state, skipped) = match newest_valid_snapshot(&snap_dir)? {
        Some(found) => found,
        None if logs.is_empty() => {
            return Err(format!("no ZooKeeper snapshot or log in {}", snap_dir.display()));
        }
        None => {
            return Err(format!(
                "no valid ZooKeeper snapshot in {} but logs in {}: ZooKeeper would not start either",
                snap_dir.display(),
                log_dir.display()
            ));
        }
    };
    let snapshot_zxid = state.zxid;
    let mut replay = Replay::new(state);
    let mut read = Vec::new();
    let mut skipping = true;
    for path in logs_from(&logs, snapshot_zxid) {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (entries, end) = super::log::decode(&bytes)
            .map_err(|(offset, reason)| FormatError { file: path.clone(), offset, reason }.to_string())?;
        read.push((path, entries.len(), end));
        for entry in entries {
            if skipping && entry.header.zxid <= snapshot_zxid {
                continue;
            }
            skipping = false;
            replay.apply(&entry.header, &entry.txn);
        }
    }
    replay.kill_dead_sessions();
    let report = Report {
        snapshot,
        snapshot_zxid,
        skipped_snapshots: skipped,
        logs: read,
        txns_replayed: replay.applied,
        txns_failed: replay.failed,
        zxid: replay.state.zxid,
        nodes: 0,
        sessions: 0,
        current_epoch: 0,
        accepted_epoch: 0,
        written: PathBuf::new(),
    };
    Ok((replay.state, report))
}

fn version_dir(dir: &Path) -> Result<PathBuf, String> {
    let inner = dir.join(VERSION_DIR);
    if inner.is_dir() {
        Ok(inner)
    } else if dir.file_name().is_some_and(|name| name == VERSION_DIR) && dir.is_dir() {
        Ok(dir.to_path_buf())
    } else {
        Err(format!("{} has no {VERSION_DIR} directory: not a ZooKeeper dataDir", dir.display()))
    }
}

/// Files `<prefix>.<hex zxid>[.ext]` in `dir`, by zxid ascending.
fn list(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name();
        if let Some(zxid) = name.to_str().and_then(|name| zxid_from_name(name, prefix)) {
            found.push((zxid, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// `FileTxnLog.getLogFiles`: the newest file starting at or before `zxid`, and all later ones.
fn logs_from(logs: &[(i64, PathBuf)], zxid: i64) -> Vec<PathBuf> {
    let start = logs.iter().map(|(first, _)| *first).filter(|first| *first <= zxid).max().unwrap_or(0);
    logs.iter().filter(|(first, _)| *first >= start).map(|(_, path)| path.clone()).collect()
}

type Found = (PathBuf, ZkState, Vec<String>);

fn newest_valid_snapshot(dir: &Path) -> Result<Option<Found>, String> {
    let mut skipped = Vec::new();
    let mut tried = 0;
    for (zxid, path) in list(dir, "snapshot")?.into_iter().rev() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".gz") || name.ends_with(".snappy") {
            return Err(format!(
                "{}: compressed snapshots (zookeeper.snapshot.compression.method) are not supported; \
                 restart ZooKeeper without compression so it writes a plain snapshot",
                path.display()
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !super::snap::looks_whole(&bytes) {
            let why = format!("{}: incomplete (does not end with the seal), skipped", path.display());
            eprintln!("ferrokeeper: warning: {why}");
            skipped.push(why);
            continue;
        }
        tried += 1;
        match super::snap::decode(&bytes, zxid) {
            Ok(state) => return Ok(Some((path, state, skipped))),
            Err((offset, reason)) => {
                let why = FormatError { file: path.clone(), offset, reason }.to_string();
                eprintln!("ferrokeeper: warning: {why}; trying an older snapshot");
                skipped.push(why);
            }
        }
        if tried == SNAPSHOTS_TRIED_MAX {
            break;
        }
    }
    if skipped.is_empty() {
        Ok(None)
    } else {
        Err(format!("no valid ZooKeeper snapshot in {}: {}", dir.display(), skipped.join("; ")))
    }
}

/// ZooKeeper's epoch files, or the last zxid's epoch where a file is missing.
fn read_epochs(data_dir: &Path, zxid: i64) -> Result<(i64, i64), String> {
    let from_zxid = zxid >> 32;
    let read = |name: &str| -> Result<i64, String> {
        let path = data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                format!("{}: at offset 0: not a decimal epoch: {:?}", path.display(), text.trim())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(from_zxid),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    let current = read(epochs::CURRENT)?;
    let accepted = read(epochs::ACCEPTED)?;
    if from_zxid > current {
        return Err(format!(
            "{}: the current epoch {current} is older than the last zxid {zxid:#x} (ZooKeeper refuses this too)",
            data_dir.join(epochs::CURRENT).display()
        ));
    }
    if accepted < current {
        return Err(format!(
            "{}: the accepted epoch {accepted} is less than the current epoch {current} (ZooKeeper refuses this too)",
            data_dir.join(epochs::ACCEPTED).display()
        ));
    }
    Ok((current, accepted))
}

/// Refuses to write over ferrokeeper data already in `to`.
fn refuse_existing(to: &Path) -> Result<(), String> {
    for sub in ["fk-snap", "fk-log"] {
        let dir = to.join(sub);
        if let Ok(mut entries) = std::fs::read_dir(&dir)
            && entries.next().is_some()
        {
            return Err(format!(
                "{} already holds ferrokeeper data; import into an empty dataDir",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Start-up on a ZooKeeper dataDir: when zoo.cfg's dataDir (or dataLogDir) holds ZooKeeper
/// snapshots or logs and ferrokeeper has no snapshot or log of its own there yet, imports
/// them into dataDir (beside ZooKeeper's `version-2/`, which is only read). Afterwards
/// ferrokeeper's own files exist and this does nothing. `None`: nothing to import.
pub fn import_on_start(config: &crate::config::Config) -> Result<Option<Report>, String> {
    let holds_zookeeper_files = |dir: &Path| {
        let dir = dir.join(VERSION_DIR);
        dir.is_dir()
            && (list(&dir, "snapshot").is_ok_and(|found| !found.is_empty())
                || list(&dir, "log").is_ok_and(|found| !found.is_empty()))
    };
    if !holds_zookeeper_files(&config.data_dir) && !holds_zookeeper_files(&config.data_log_dir) {
        return Ok(None);
    }
    let own_snapshots = snapshot::list(&config.snap_dir)
        .map_err(|e| format!("cannot list {}: {e}", config.snap_dir.display()))?;
    let own_segments = crate::txlog::reader::segments(&config.log.dir)
        .map_err(|e| format!("cannot list {}: {e}", config.log.dir.display()))?;
    if !own_snapshots.is_empty() || !own_segments.is_empty() {
        return Ok(None);
    }
    let data_log_dir = (config.data_log_dir != config.data_dir).then(|| config.data_log_dir.clone());
    let paths = Paths { data_dir: config.data_dir.clone(), data_log_dir, to: config.data_dir.clone() };
    import(&paths).map(Some)
}
