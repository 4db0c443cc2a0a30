//! Purge (zkCleanup / PurgeTxnLog): keep the newest N snapshots and the log segments needed to
//! replay from the oldest of them; delete the rest.

use std::io;
use std::path::{Path, PathBuf};

use super::{reader, snapshot};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub deleted: Vec<PathBuf>,
    pub kept_snapshots: usize,
    pub kept_segments: usize,
}

/// Keeps `retain` snapshots (at least 1) and every segment holding txns after the oldest kept
/// snapshot. With no snapshot nothing is deleted: the log is then the only copy of the data.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> io::Result<PurgeReport> {
    let retain = retain.max(1);
    let snapshots = snapshot::list(snap_dir)?;
    let segments = reader::segments(log_dir)?;
    let mut report = PurgeReport::default();
    if snapshots.is_empty() {
        report.kept_segments = segments.len();
        return Ok(report);
    }
    let first_kept = snapshots.len().saturating_sub(retain);
    let oldest_zxid = snapshots[first_kept].0;
    for (_, path) in &snapshots[..first_kept] {
        std::fs::remove_file(path)?;
        report.deleted.push(path.clone());
    }
    report.kept_snapshots = snapshots.len() - first_kept;
    // The segment that holds oldest_zxid + 1 starts at or before it: keep the newest segment
    // starting at or before oldest_zxid, and everything after.
    let keep_from = segments.iter().rposition(|(first, _)| *first <= oldest_zxid).unwrap_or(0);
    for (_, path) in &segments[..keep_from] {
        std::fs::remove_file(path)?;
        report.deleted.push(path.clone());
    }
    report.kept_segments = segments.len() - keep_from;
    // Leftovers of snapshots interrupted by a crash.
    if let Ok(entries) = std::fs::read_dir(snap_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                std::fs::remove_file(entry.path())?;
                report.deleted.push(entry.path());
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::txlog::format::segment_name;

    #[test]
    fn keeps_newest_snapshots_and_the_logs_they_need() {
        let root = std::env::temp_dir().join(format!("fk-purge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (snaps, logs) = (root.join("snap"), root.join("log"));
        std::fs::create_dir_all(&snaps).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        for zxid in [10, 20, 30, 40] {
            std::fs::write(snaps.join(snapshot::file_name(zxid)), b"x").unwrap();
        }
        for first in [1, 8, 15, 25, 35] {
            std::fs::write(logs.join(segment_name(first)), b"x").unwrap();
        }
        std::fs::write(snaps.join("snapshot.0000000000000029.tmp"), b"x").unwrap();
        let report = purge(&snaps, &logs, 3).unwrap();
        assert_eq!(report.kept_snapshots, 3);
        // Oldest kept snapshot is at 20: segment 15 holds 21 onwards, so 15, 25, 35 stay.
        assert_eq!(report.kept_segments, 3);
        let mut left: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .chain(std::fs::read_dir(&snaps).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                segment_name(15),
                segment_name(25),
                segment_name(35),
                snapshot::file_name(20),
                snapshot::file_name(30),
                snapshot::file_name(40),
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_snapshots_nothing_goes() {
        let root = std::env::temp_dir().join(format!("fk-purge-none-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(segment_name(1)), b"x").unwrap();
        let report = purge(&root.join("snap"), &root, 3).unwrap();
        assert!(report.deleted.is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
