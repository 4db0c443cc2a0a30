//! ZooKeeper transaction log files (`FileTxnLog`, `Util.readTxnBytes`,
//! `SerializeUtils.deserializeTxn`):
//!
//! ```text
//! FileHeader{magic "ZKLG", version int = 2, dbid long = 0}
//! entry      checksum long (Adler32 of the payload) | len int | payload | 'B'
//! payload    TxnHeader{clientId, cxid, zxid, time, type} + txn record [+ TxnDigest]
//! ```
//!
//! Where ZooKeeper's reader stops a file, so does this one: at a length of 0 (preallocated
//! zeros) or -1, at the end of the file, at a record cut short or without its 'B' (a torn
//! write). It then goes on with the next file, as ZooKeeper does. A checksum mismatch, a
//! negative length or an undecodable payload is an error (ZooKeeper refuses to start).

use crate::jute::{Jute, Reader};
use crate::txn::{Txn, TxnHeader};

use super::adler32;

pub const MAGIC: i32 = 0x5A4B_4C47; // "ZKLG"
pub const VERSION: i32 = 2;
const HEADER_BYTES: usize = 16;
/// `OpCode.reconfig`.
const RECONFIG: i32 = 16;

/// One logged txn and the offset of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub header: TxnHeader,
    pub txn: Txn,
}

/// How the readable data of a log file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the end of the file or at preallocated zeros.
    Clean,
    /// A record cut short or without its end byte at this offset (a torn write).
    Torn(u64),
}

/// Parses one log file's bytes.
pub fn decode(bytes: &[u8]) -> Result<(Vec<Entry>, End), (u64, String)> {
    if bytes.is_empty() {
        return Ok((Vec::new(), End::Clean));
    }
    let mut r = Reader::new(bytes);
    let magic = r.read_i32().map_err(|e| (0u64, format!("file header: {e}")))?;
    if magic != MAGIC {
        return Err((0, format!("not a ZooKeeper log (magic {magic:#010x}, expected ZKLG)")));
    }
    if bytes.len() < HEADER_BYTES {
        return Err((0, format!("file header cut short ({} bytes)", bytes.len())));
    }
    let mut entries = Vec::new();
    let mut offset = HEADER_BYTES;
    loop {
        match entry_at(bytes, offset)? {
            Step::Entry(entry, next) => {
                entries.push(entry);
                offset = next;
            }
            Step::End(end) => return Ok((entries, end)),
        }
    }
}

enum Step {
    Entry(Entry, usize),
    End(End),
}

fn entry_at(bytes: &[u8], offset: usize) -> Result<Step, (u64, String)> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(Step::End(End::Clean));
    }
    let torn = Ok(Step::End(End::Torn(offset as u64)));
    let (Some(crc), Some(len)) = (rest.get(0..8), rest.get(8..12)) else { return torn };
    let crc = i64::from_be_bytes(crc.try_into().unwrap_or_default());
    let len = i32::from_be_bytes(len.try_into().unwrap_or_default());
    if len == 0 || len == -1 {
        // Preallocated zeros (ZooKeeper defines EOF as an empty entry), or a null buffer.
        return Ok(Step::End(End::Clean));
    }
    if len < 0 {
        return Err((offset as u64 + 8, format!("unreasonable entry length {len}")));
    }
    let len = len as usize;
    let Some(payload) = rest.get(12..12 + len) else { return torn };
    if rest.get(12 + len) != Some(&b'B') {
        return torn;
    }
    let computed = adler32(payload);
    if crc != i64::from(computed) {
        return Err((
            offset as u64,
            format!("checksum mismatch (stored {crc:#x}, computed {computed:#x} over {len} bytes)"),
        ));
    }
    let payload_at = offset as u64 + 12;
    let (header, txn) = decode_payload(payload).map_err(|(at, why)| (payload_at + at, why))?;
    Ok(Step::Entry(Entry { offset: offset as u64, header, txn }, offset + 12 + len + 1))
}

/// A txn's header and body; the TxnDigest that may follow is not needed.
pub fn decode_payload(payload: &[u8]) -> Result<(TxnHeader, Txn), (u64, String)> {
    let mut r = Reader::new(payload);
    let header = TxnHeader::read(&mut r).map_err(|e| (r.position() as u64, format!("txn header: {e}")))?;
    let body_at = r.position() as u64;
    let fail = |e: crate::DecodeError| {
        (body_at, format!("txn of type {} at zxid {:#x}: {e}", header.txn_type, header.zxid))
    };
    let txn = if header.txn_type == RECONFIG {
        // A reconfig is logged as a SetDataTxn of /zookeeper/config.
        Txn::SetData(Jute::read(&mut r).map_err(fail)?)
    } else {
        Txn::read_body(header.txn_type, &mut r).map_err(fail)?
    };
    Ok((header, txn))
}

/// One log entry as ZooKeeper writes it (for tests and tools).
pub fn encode_entry(out: &mut Vec<u8>, header: &TxnHeader, txn: &Txn) {
    let mut payload = Vec::new();
    header.write(&mut payload);
    txn.write_body(&mut payload);
    out.extend_from_slice(&i64::from(adler32(&payload)).to_be_bytes());
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    out.push(b'B');
}

/// A log file's header.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0i64.to_be_bytes());
}
