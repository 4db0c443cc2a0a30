//! `ferrokeeper export-zookeeper`: a ferrokeeper dataDir → an Apache ZooKeeper dataDir that
//! ZooKeeper 3.5-3.9 starts from, so a user can go back.
//!
//! The state is recovered as ferrokeeper's start-up does (newest snapshot that loads, then the
//! log after it), but read-only: a torn tail of the last segment is ignored, not zero-filled,
//! and damage anywhere else is an error naming the file and offset. It is written as one
//! ZooKeeper snapshot `version-2/snapshot.<zxid hex>` at the last zxid (sessions with their
//! timeouts, the ACL cache, every node with its StatPersisted, the Adler32 seal), plus
//! `currentEpoch` / `acceptedEpoch` when the ferrokeeper dataDir has them. Nothing is written
//! on any error, and never over ZooKeeper files already there.

use std::path::{Path, PathBuf};

use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::TxnRecord;

use crate::quorum::epochs;
use crate::tree::{DataTree, TreeConfig};
use crate::txlog::format::{Tail, decode_segment_header, scan_segment};
use crate::txlog::{reader, snapshot};

use super::import::VERSION_DIR;
use super::{FormatError, ZkNode, ZkState, split_path};

/// Where to read and where to write.
#[derive(Debug, Clone)]
pub struct Paths {
    /// ferrokeeper's dataDir (holding `fk-snap/` and the epoch files).
    pub data_dir: PathBuf,
    /// ferrokeeper's dataLogDir (holding `fk-log/`), when not dataDir.
    pub data_log_dir: Option<PathBuf>,
    /// The ZooKeeper dataDir to write.
    pub to: PathBuf,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Report {
    pub zxid: i64,
    pub txns_replayed: u64,
    pub nodes: usize,
    pub sessions: usize,
    pub written: PathBuf,
}

pub fn export(paths: &Paths) -> Result<Report, String> {
    let log_dir = paths.data_log_dir.as_deref().unwrap_or(&paths.data_dir).join("fk-log");
    let (tree, txns_replayed) = recover_read_only(&paths.data_dir.join("fk-snap"), &log_dir)?;
    let state = to_zk_state(&tree)?;
    let bytes = super::snap::encode(&state);
    let current = read_epoch(&paths.data_dir, epochs::CURRENT)?;
    let accepted = read_epoch(&paths.data_dir, epochs::ACCEPTED)?;
    let version_dir = paths.to.join(VERSION_DIR);
    refuse_existing(&version_dir, &paths.to)?;
    std::fs::create_dir_all(&version_dir)
        .map_err(|e| format!("cannot create {}: {e}", version_dir.display()))?;
    let written = version_dir.join(format!("snapshot.{:x}", state.zxid));
    write_durably(&written, &bytes)?;
    if let (Some(current), Some(accepted)) = (current, accepted) {
        epochs::save(&paths.to, current, accepted)
            .map_err(|e| format!("cannot write the epoch files in {}: {e}", paths.to.display()))?;
    }
    Ok(Report {
        zxid: state.zxid,
        txns_replayed,
        nodes: state.nodes.len(),
        sessions: state.sessions.len(),
        written,
    })
}

/// ferrokeeper's recovery without writing: the newest loadable snapshot and the log after it.
fn recover_read_only(snap_dir: &Path, log_dir: &Path) -> Result<(DataTree, u64), String> {
    let config = TreeConfig { extended_types_enabled: true, ..TreeConfig::default() };
    let loaded = snapshot::load_newest(snap_dir, &config)
        .map_err(|e| format!("cannot read snapshots in {}: {e}", snap_dir.display()))?;
    let segments =
        reader::segments(log_dir).map_err(|e| format!("cannot list {}: {e}", log_dir.display()))?;
    let mut tree = match loaded {
        Some((_, tree)) => tree,
        None if segments.is_empty() => {
            return Err(format!(
                "no ferrokeeper snapshot or log in {} / {}",
                snap_dir.display(),
                log_dir.display()
            ));
        }
        None => DataTree::new(config),
    };
    let after = tree.last_processed_zxid();
    let mut replayed = 0;
    let mut previous = i64::MIN;
    for (index, (_, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        let damaged = |offset: usize, reason: String| {
            FormatError { file: path.clone(), offset: offset as u64, reason }.to_string()
        };
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Err(error) = decode_segment_header(&bytes) {
            if is_last && bytes.iter().all(|b| *b == 0) {
                continue;
            }
            return Err(damaged(0, error.to_string()));
        }
        let scan = scan_segment(&bytes, previous);
        match scan.tail {
            Tail::Clean => {}
            Tail::Torn { .. } if is_last => {}
            Tail::Torn { offset } => {
                return Err(damaged(offset, "a segment other than the last ends in a partial record".into()));
            }
            Tail::Corrupt { offset, reason } => return Err(damaged(offset, reason)),
        }
        for record in &scan.records {
            previous = record.zxid;
            if record.zxid <= after {
                continue;
            }
            let payload = bytes.get(record.payload.clone()).unwrap_or_default();
            let txn = TxnRecord::decode(payload)
                .map_err(|e| damaged(record.offset, format!("undecodable txn: {e}")))?;
            tree.apply(&txn.header, &txn.txn);
            replayed += 1;
        }
    }
    Ok((tree, replayed))
}

fn to_zk_state(tree: &DataTree) -> Result<ZkState, String> {
    let mut state =
        ZkState { zxid: tree.last_processed_zxid(), sessions: tree.sessions().clone(), ..ZkState::default() };
    let mut problem = None;
    tree.for_each_node(|path, data, acl, stat| {
        let node = ZkNode {
            data: data.clone(),
            acl: acl.to_vec(),
            stat: stat.clone(),
            children: Default::default(),
        };
        if path != "/" {
            match split_path(path).and_then(|(parent, name)| Some((state.nodes.get_mut(parent)?, name))) {
                Some((parent, name)) => {
                    parent.children.insert(name.to_owned());
                }
                None => problem = Some(format!("node {path} comes before its parent")),
            }
        }
        state.nodes.insert(path.to_owned(), node);
    });
    match problem {
        Some(problem) => Err(problem),
        None if !state.nodes.contains_key("/") => Err("the tree has no root".into()),
        None => Ok(state),
    }
}

fn read_epoch(dir: &Path, name: &str) -> Result<Option<i64>, String> {
    if !dir.join(name).exists() {
        return Ok(None);
    }
    epochs::read(dir, name).map(Some).map_err(|e| e.to_string())
}

fn refuse_existing(version_dir: &Path, to: &Path) -> Result<(), String> {
    if let Ok(entries) = std::fs::read_dir(version_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("snapshot.") || name.starts_with("log.") {
                return Err(format!(
                    "{} already holds ZooKeeper data ({name}); export into an empty dataDir",
                    version_dir.display()
                ));
            }
        }
    }
    for name in [epochs::CURRENT, epochs::ACCEPTED] {
        if to.join(name).exists() {
            return Err(format!("{} already exists; export into an empty dataDir", to.join(name).display()));
        }
    }
    Ok(())
}

/// Temp file, fsync, rename, directory fsync: a `snapshot.*` is whole or absent.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let temp = path.with_extension("tmp");
    {
        let file = std::fs::File::create(&temp).map_err(fail)?;
        std::io::Write::write_all(&mut &file, bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
    }
    std::fs::rename(&temp, path).map_err(fail)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::txlog::writer::sync_dir(dir).map_err(fail)
}
