//! Reading the log back: recovery on start (replay after a snapshot's zxid, truncate a torn
//! tail, refuse a damaged middle) and `ferrokeeper log dump`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::TxnRecord;

use super::format::{Tail, decode_segment_header, parse_segment_name, scan_segment};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot read transaction log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("transaction log {path} is damaged at offset {offset}: {reason}; refusing to start")]
    Corrupt { path: PathBuf, offset: usize, reason: String },
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The last zxid in the log (or the `after` zxid if the log holds nothing newer).
    pub last_zxid: i64,
    /// Records handed to the callback.
    pub replayed: u64,
    /// A torn tail that was cut off: file and offset.
    pub truncated: Option<(PathBuf, usize)>,
}

/// Segment files in `dir`, in zxid order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(zxid) = entry.file_name().to_str().and_then(parse_segment_name) {
            found.push((zxid, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Replays every record with zxid > `after` in order through `apply`. A torn tail of the last
/// segment is zero-filled (so the next scan sees a clean end); damage anywhere else is an error
/// naming the file and offset.
pub fn recover<F: FnMut(TxnRecord)>(dir: &Path, after: i64, mut apply: F) -> Result<Recovery, RecoveryError> {
    let io_error = |path: &Path, source| RecoveryError::Io { path: path.to_owned(), source };
    let list = segments(dir).map_err(|e| io_error(dir, e))?;
    let mut recovery = Recovery { last_zxid: after, ..Recovery::default() };
    let mut previous_last = i64::MIN;
    for (index, (_, path)) in list.iter().enumerate() {
        let is_last = index + 1 == list.len();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        if let Err(error) = decode_segment_header(&bytes) {
            if is_last && (bytes.len() < 32 || bytes.iter().all(|b| *b == 0)) {
                // Crashed while creating the segment: nothing in it was ever acknowledged.
                tracing::warn!(path = %path.display(), %error, "removing a segment whose header was never written");
                std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
                continue;
            }
            return Err(RecoveryError::Corrupt { path: path.clone(), offset: 0, reason: error.to_string() });
        }
        let scan = scan_segment(&bytes, previous_last);
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { offset } if is_last => {
                tracing::warn!(path = %path.display(), offset, "truncating a torn write at the end of the log");
                let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error(path, e))?;
                let zeros = vec![0u8; bytes.len() - offset];
                file.write_all_at(&zeros, *offset as u64).map_err(|e| io_error(path, e))?;
                file.sync_all().map_err(|e| io_error(path, e))?;
                recovery.truncated = Some((path.clone(), *offset));
            }
            Tail::Torn { offset } => {
                return Err(RecoveryError::Corrupt {
                    path: path.clone(),
                    offset: *offset,
                    reason: "a segment other than the last ends in a partial record".into(),
                });
            }
            Tail::Corrupt { offset, reason } => {
                return Err(RecoveryError::Corrupt {
                    path: path.clone(),
                    offset: *offset,
                    reason: reason.clone(),
                });
            }
        }
        for record in &scan.records {
            previous_last = record.zxid;
            if record.zxid <= after {
                continue;
            }
            let txn =
                TxnRecord::decode(&bytes[record.payload.clone()]).map_err(|e| RecoveryError::Corrupt {
                    path: path.clone(),
                    offset: record.offset,
                    reason: format!("checksum is right but the txn does not decode: {e}"),
                })?;
            if txn.header.zxid != record.zxid {
                return Err(RecoveryError::Corrupt {
                    path: path.clone(),
                    offset: record.offset,
                    reason: "record zxid differs from its txn header".into(),
                });
            }
            apply(txn);
            recovery.replayed += 1;
            recovery.last_zxid = record.zxid;
        }
    }
    Ok(recovery)
}
