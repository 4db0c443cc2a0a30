//! Dropping the end of the log, for a replica whose uncommitted tail diverged from the
//! leader's (Zab TRUNC) or that installs a snapshot. The log writer must be stopped while this
//! runs; a new one starts after it.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{decode_segment_header, scan_segment};
use super::reader::segments;
use super::writer::sync_dir;

/// Durably drops every record with zxid > `after`: segments that start after it are deleted,
/// the segment holding the cut is zero-filled from the first dropped record to its end (a zero
/// length marks the end of data) and fsynced, then the directory is fsynced. Returns how many
/// records were dropped.
pub fn truncate_after(dir: &Path, after: i64) -> io::Result<u64> {
    let mut dropped = 0u64;
    let mut changed_dir = false;
    for (first_zxid, path) in segments(dir)?.into_iter().rev() {
        let bytes = std::fs::read(&path)?;
        if decode_segment_header(&bytes).is_err() {
            // A header that never got written: nothing in the segment was ever durable.
            std::fs::remove_file(&path)?;
            changed_dir = true;
            continue;
        }
        let scan = scan_segment(&bytes, i64::MIN);
        if first_zxid > after || scan.records.first().is_some_and(|r| r.zxid > after) {
            dropped += scan.records.len() as u64;
            std::fs::remove_file(&path)?;
            changed_dir = true;
            continue;
        }
        let Some(cut) = scan.records.iter().position(|r| r.zxid > after) else {
            // Everything in this and the earlier segments is ≤ after. The tail past the last
            // record (a torn write) is dropped too.
            if scan.end < bytes.len() && bytes[scan.end..].iter().any(|b| *b != 0) {
                zero_from(&path, scan.end, bytes.len())?;
            }
            break;
        };
        dropped += (scan.records.len() - cut) as u64;
        zero_from(&path, scan.records[cut].offset, bytes.len())?;
        break;
    }
    if changed_dir {
        sync_dir(dir)?;
    }
    Ok(dropped)
}

/// Deletes every segment (the state now comes from a snapshot).
pub fn remove_all(dir: &Path) -> io::Result<()> {
    let list = segments(dir)?;
    if list.is_empty() {
        return Ok(());
    }
    for (_, path) in list {
        std::fs::remove_file(&path)?;
    }
    sync_dir(dir)
}

fn zero_from(path: &Path, offset: usize, length: usize) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let zeros = vec![0u8; length.saturating_sub(offset)];
    file.write_all_at(&zeros, offset as u64)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::txlog::{LogSettings, LogWriter};
    use ferrokeeper_proto::Jute;
    use ferrokeeper_proto::txn::{ErrorTxn, Txn, TxnHeader, TxnRecord};

    fn record(zxid: i64) -> Vec<u8> {
        let txn = Txn::Error(ErrorTxn { err: -1 });
        let header = TxnHeader { client_id: 1, cxid: 1, zxid, time: 0, txn_type: txn.txn_type() };
        TxnRecord { header, txn }.encode_to_vec()
    }

    fn write(dir: &Path, zxids: &[i64], roll_at: Option<i64>) {
        let mut settings = LogSettings::new(dir.to_owned());
        settings.backend = crate::txlog::Backend::Sync;
        settings.prealloc_bytes = 4096;
        let log = LogWriter::start(settings, 0).unwrap();
        for &z in zxids {
            if Some(z) == roll_at {
                log.roll();
            }
            log.append(z, record(z));
        }
        log.shutdown();
    }

    fn replay(dir: &Path) -> Vec<i64> {
        let mut seen = Vec::new();
        crate::txlog::reader::recover(dir, 0, |r| seen.push(r.header.zxid)).unwrap();
        seen
    }

    #[test]
    fn drops_records_after_the_cut_across_segments() {
        let dir = std::env::temp_dir().join(format!("fk-trunc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir, &[1, 2, 3, 4, 5, 6], Some(4));
        assert_eq!(truncate_after(&dir, 2).unwrap(), 4);
        assert_eq!(replay(&dir), vec![1, 2]);
        // A later writer continues after the cut.
        let mut settings = LogSettings::new(dir.clone());
        settings.backend = crate::txlog::Backend::Sync;
        settings.prealloc_bytes = 4096;
        let log = LogWriter::start(settings, 2).unwrap();
        log.append(0x1_0000_0001, record(0x1_0000_0001));
        log.shutdown();
        assert_eq!(replay(&dir), vec![1, 2, 0x1_0000_0001]);
        assert_eq!(truncate_after(&dir, 0x1_0000_0001).unwrap(), 0);
        assert_eq!(truncate_after(&dir, 0).unwrap(), 3);
        assert_eq!(replay(&dir), Vec::<i64>::new());
        remove_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
