//! Length-prefixed framing: `int32 length | payload`, in both directions.

use bytes::{BufMut, BytesMut};

/// jute.maxbuffer's default: the largest frame ZooKeeper accepts (1,048,575 bytes).
pub const MAX_FRAME_DEFAULT: usize = 0xfffff;

/// A frame header no server accepts; ZooKeeper closes the connection ("Len error").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("Len error {length}: frame length out of range 0..={max}")]
    Length { length: i64, max: usize },
}

/// Looks for one whole frame at the start of `buf`.
/// `Ok(None)` means more bytes are needed; `Ok(Some(n))` means the payload is
/// `buf[4..4 + n]`; an error means the length is out of range and the connection must close.
pub fn check(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if length < 0 || length as usize > max {
        return Err(FrameError::Length { length: i64::from(length), max });
    }
    let length = length as usize;
    if buf.len() < 4 + length {
        return Ok(None);
    }
    Ok(Some(length))
}

/// Appends one frame to `out`, with the payload written by `body`.
pub fn write<F: FnOnce(&mut BytesMut)>(out: &mut BytesMut, body: F) {
    let start = out.len();
    out.put_i32(0);
    body(out);
    let length = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_whole_frame() {
        assert_eq!(check(&[0, 0], 10), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 7], 10), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 7, 8, 9], 10), Ok(Some(2)));
    }

    #[test]
    fn rejects_out_of_range_lengths() {
        assert!(check(&[0xff, 0xff, 0xff, 0xff], 10).is_err());
        assert!(check(&[0, 0, 0, 11], 10).is_err());
        assert_eq!(check(&[0, 0, 0, 0], 10), Ok(Some(0)));
    }

    #[test]
    fn write_patches_length() {
        let mut out = BytesMut::new();
        write(&mut out, |b| b.put_slice(b"abc"));
        assert_eq!(&out[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
