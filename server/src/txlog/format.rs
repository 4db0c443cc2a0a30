//! The transaction log's byte layout, as pure functions over byte slices (see
//! `docs/txlog-format.md` for the diagrams and the invariants).
//!
//! ```text
//! segment  = header(32) record* zero-fill
//! header   = "FKLG" | version u32 | first_zxid i64 | reserved[12] | crc32c u32 (of bytes 0..28)
//! record   = length u32 | crc32c u32 | zxid i64 | payload[length]
//!            crc32c covers length, zxid and payload; length > 0; zxids strictly increase
//! ```
//! All integers are big-endian, like jute. A length of 0 where a record would start marks
//! the end of the data: segments are preallocated with zeros.

use std::ops::Range;

pub const SEGMENT_MAGIC: [u8; 4] = *b"FKLG";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 32;
pub const RECORD_HEADER_BYTES: usize = 16;
/// No record payload is larger than this (a txn is bounded by jute.maxbuffer plus headers).
pub const RECORD_PAYLOAD_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("segment shorter than its header ({0} bytes)")]
    Short(usize),
    #[error("bad magic {0:?}: not a ferrokeeper log segment")]
    Magic([u8; 4]),
    #[error("unsupported segment version {0}")]
    Version(u32),
    #[error("segment header checksum mismatch")]
    Checksum,
}

pub fn encode_segment_header(first_zxid: i64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[0..4].copy_from_slice(&SEGMENT_MAGIC);
    header[4..8].copy_from_slice(&SEGMENT_VERSION.to_be_bytes());
    header[8..16].copy_from_slice(&first_zxid.to_be_bytes());
    let crc = crc32c::crc32c(&header[0..28]);
    header[28..32].copy_from_slice(&crc.to_be_bytes());
    header
}

/// Returns the segment's first zxid.
pub fn decode_segment_header(bytes: &[u8]) -> Result<i64, HeaderError> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(HeaderError::Short(bytes.len()));
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != SEGMENT_MAGIC {
        return Err(HeaderError::Magic(magic));
    }
    let version = be_u32(&bytes[4..8]);
    if version != SEGMENT_VERSION {
        return Err(HeaderError::Version(version));
    }
    if be_u32(&bytes[28..32]) != crc32c::crc32c(&bytes[0..28]) {
        return Err(HeaderError::Checksum);
    }
    Ok(be_i64(&bytes[8..16]))
}

fn record_crc(length: u32, zxid: i64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&length.to_be_bytes());
    let crc = crc32c::crc32c_append(crc, &zxid.to_be_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends one record to `out`.
pub fn encode_record(out: &mut Vec<u8>, zxid: i64, payload: &[u8]) {
    assert!(!payload.is_empty(), "a record payload is never empty");
    assert!(payload.len() <= RECORD_PAYLOAD_MAX, "record payload over the limit");
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&record_crc(length, zxid, payload).to_be_bytes());
    out.extend_from_slice(&zxid.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A record found in a segment: its zxid and where its payload lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub zxid: i64,
    pub offset: usize,
    pub payload: Range<usize>,
}

/// How a segment's data ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Zero fill (or the end of the file) right after the last record.
    Clean,
    /// Garbage after the last record with no valid record beyond it: a write that was cut
    /// short. Recovery truncates (zero-fills) from `offset`.
    Torn { offset: usize },
    /// A bad record followed later by a valid one: the log was damaged in the middle.
    /// Recovery must refuse to start.
    Corrupt { offset: usize, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub records: Vec<RecordRef>,
    /// Offset just past the last valid record (where the next append goes).
    pub end: usize,
    pub tail: Tail,
}

/// Checks a record at `offset`: `Ok(Some(record))`, `Ok(None)` for an end marker followed by
/// zeros only, or `Err(reason)`.
fn record_at(bytes: &[u8], offset: usize, after_zxid: i64) -> Result<Option<RecordRef>, String> {
    let rest = &bytes[offset..];
    if rest.len() < RECORD_HEADER_BYTES {
        if rest.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        return Err(format!("{} stray bytes at the end", rest.len()));
    }
    let length = be_u32(&rest[0..4]);
    if length == 0 {
        if rest.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        return Err("non-zero bytes after the end marker".into());
    }
    let length_bytes = length as usize;
    if length_bytes > RECORD_PAYLOAD_MAX || RECORD_HEADER_BYTES + length_bytes > rest.len() {
        return Err(format!("record length {length} runs past the end of the segment"));
    }
    let crc = be_u32(&rest[4..8]);
    let zxid = be_i64(&rest[8..16]);
    let payload_start = offset + RECORD_HEADER_BYTES;
    let payload = &bytes[payload_start..payload_start + length_bytes];
    if crc != record_crc(length, zxid, payload) {
        return Err(format!("checksum mismatch in record of {length} bytes"));
    }
    if zxid <= after_zxid {
        return Err(format!("zxid 0x{zxid:x} does not follow 0x{after_zxid:x}"));
    }
    Ok(Some(RecordRef { zxid, offset, payload: payload_start..payload_start + length_bytes }))
}

/// Reads every valid record of a segment (header already checked) and classifies its tail.
pub fn scan_segment(bytes: &[u8], after_zxid: i64) -> SegmentScan {
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES.min(bytes.len());
    let mut last_zxid = after_zxid;
    loop {
        match record_at(bytes, offset, last_zxid) {
            Ok(Some(record)) => {
                offset = record.payload.end;
                last_zxid = record.zxid;
                records.push(record);
            }
            Ok(None) => return SegmentScan { records, end: offset, tail: Tail::Clean },
            Err(reason) => {
                // Torn or corrupt? A valid record anywhere beyond means the damage is not
                // at the tail.
                let later = (offset + 1..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1))
                    .any(|candidate| matches!(record_at(bytes, candidate, last_zxid), Ok(Some(_))));
                let tail = if later { Tail::Corrupt { offset, reason } } else { Tail::Torn { offset } };
                return SegmentScan { records, end: offset, tail };
            }
        }
    }
}

/// The file name of a segment starting at `first_zxid`: `log.<16 hex digits>`, so that names
/// sort in zxid order.
pub fn segment_name(first_zxid: i64) -> String {
    format!("log.{first_zxid:016x}")
}

/// The first zxid in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("log.")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn segment(records: &[(i64, Vec<u8>)], prealloc: usize) -> Vec<u8> {
        let mut bytes = encode_segment_header(records.first().map_or(1, |r| r.0)).to_vec();
        for (zxid, payload) in records {
            encode_record(&mut bytes, *zxid, payload);
        }
        bytes.resize(bytes.len() + prealloc, 0);
        bytes
    }

    fn sample() -> Vec<(i64, Vec<u8>)> {
        (1..=20).map(|z| (z, vec![z as u8; 10 + z as usize * 3])).collect()
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = encode_segment_header(0x1_0000_0005);
        assert_eq!(decode_segment_header(&header), Ok(0x1_0000_0005));
        let mut bad = header;
        bad[10] ^= 1;
        assert_eq!(decode_segment_header(&bad), Err(HeaderError::Checksum));
        bad = header;
        bad[0] = b'X';
        assert!(matches!(decode_segment_header(&bad), Err(HeaderError::Magic(_))));
        assert!(matches!(decode_segment_header(&header[..10]), Err(HeaderError::Short(10))));
    }

    #[test]
    fn clean_segment_scans_fully() {
        let bytes = segment(&sample(), 4096);
        let scan = scan_segment(&bytes, 0);
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.records.len(), 20);
        assert_eq!(scan.records[3].zxid, 4);
        assert_eq!(&bytes[scan.records[3].payload.clone()], &vec![4u8; 22][..]);
    }

    #[test]
    fn bit_flip_in_last_record_is_torn_tail() {
        let records = sample();
        let mut bytes = segment(&records, 4096);
        let last = scan_segment(&bytes, 0).records.last().cloned().unwrap();
        bytes[last.payload.start + 2] ^= 0x40;
        let scan = scan_segment(&bytes, 0);
        assert_eq!(scan.tail, Tail::Torn { offset: last.offset });
        assert_eq!(scan.records.len(), 19);
    }

    #[test]
    fn bit_flip_in_the_middle_is_corruption() {
        let mut bytes = segment(&sample(), 4096);
        let victim = scan_segment(&bytes, 0).records[7].clone();
        bytes[victim.payload.start] ^= 1;
        let scan = scan_segment(&bytes, 0);
        assert!(
            matches!(scan.tail, Tail::Corrupt { offset, .. } if offset == victim.offset),
            "{:?}",
            scan.tail
        );
        assert_eq!(scan.records.len(), 7);
    }

    #[test]
    fn names_sort_by_zxid() {
        assert_eq!(segment_name(0x1_0000_0001), "log.0000000100000001");
        assert_eq!(parse_segment_name("log.0000000100000001"), Some(0x1_0000_0001));
        assert_eq!(parse_segment_name("log.12"), None);
        assert!(segment_name(9) < segment_name(10));
    }

    proptest! {
        /// Cutting a segment anywhere loses only records that were not wholly written and
        /// never reports corruption.
        #[test]
        fn truncation_is_always_a_torn_or_clean_tail(cut in SEGMENT_HEADER_BYTES..2000usize) {
            let full = segment(&sample(), 0);
            let cut = cut.min(full.len());
            let mut bytes = full[..cut].to_vec();
            bytes.resize(full.len() + 512, 0);
            let scan = scan_segment(&bytes, 0);
            prop_assert!(!matches!(scan.tail, Tail::Corrupt { .. }), "unexpected corruption");
            let whole = scan_segment(&full, 0).records.iter().filter(|r| r.payload.end <= cut).count();
            prop_assert_eq!(scan.records.len(), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_segment_header(&bytes);
            let _ = scan_segment(&bytes, 0);
        }
    }
}
