//! The jute binary encoding: big-endian integers, length-prefixed strings and buffers
//! (-1 = null), count-prefixed vectors (-1 = null) and records as plain concatenations.

use bytes::{BufMut, Bytes};

/// Why a record could not be decoded. Decoding never panics on any input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    /// A length field is negative (other than -1) or larger than the input allows.
    #[error("unreasonable length {length} at offset {offset}")]
    UnreasonableLength { offset: usize, length: i32 },
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: usize },
    /// A field holds a value the record cannot take (unknown multi op type, bad header).
    #[error("invalid value: {0}")]
    Invalid(String),
}

/// A cursor over a received payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unconsumed tail.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { offset: self.pos, needed: n - self.remaining() });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_u8()? != 0)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a length prefix: `None` for -1 (null), an error for other negatives or for a
    /// length beyond the remaining input (so a hostile length never allocates).
    fn read_len(&mut self, element_min_bytes: usize) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let length = self.read_i32()?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 || (length as usize).saturating_mul(element_min_bytes) > self.remaining() {
            return Err(DecodeError::UnreasonableLength { offset, length });
        }
        Ok(Some(length as usize))
    }

    pub fn read_buffer(&mut self) -> Result<Option<Bytes>, DecodeError> {
        match self.read_len(1)? {
            None => Ok(None),
            Some(n) => Ok(Some(Bytes::copy_from_slice(self.take(n)?))),
        }
    }

    pub fn read_ustring(&mut self) -> Result<Option<String>, DecodeError> {
        let offset = self.pos;
        match self.read_len(1)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                match std::str::from_utf8(raw) {
                    Ok(s) => Ok(Some(s.to_owned())),
                    Err(_) => Err(DecodeError::InvalidUtf8 { offset }),
                }
            }
        }
    }

    pub fn read_vec<T: Jute>(&mut self) -> Result<Option<Vec<T>>, DecodeError> {
        match self.read_len(T::MIN_ENCODED_LEN)? {
            None => Ok(None),
            Some(n) => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(T::read(self)?);
                }
                Ok(Some(items))
            }
        }
    }
}

/// A value with a jute encoding.
pub trait Jute: Sized {
    /// The fewest bytes one encoded value takes; bounds vector counts before allocating.
    const MIN_ENCODED_LEN: usize = 1;
    fn write<B: BufMut>(&self, out: &mut B);
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a whole payload; trailing bytes are ignored as ZooKeeper ignores them.
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::read(&mut Reader::new(buf))
    }

    fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

impl Jute for i32 {
    const MIN_ENCODED_LEN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_i32(*self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
}

impl Jute for i64 {
    const MIN_ENCODED_LEN: usize = 8;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_i64(*self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
}

impl Jute for bool {
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(*self))
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
}

/// A non-null ustring. A null (-1) where a string is required is a decode error, answered
/// with MarshallingError: where ZooKeeper reads such a field it dereferences it (a null path
/// in create, delete or a read), and its NullPointerException becomes MarshallingError.
/// Fields ZooKeeper reads another way are declared with [`read_null_as_empty`]; the table of
/// every nullable field is in `records.rs`.
impl Jute for String {
    const MIN_ENCODED_LEN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        write_ustring(out, Some(self))
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.position();
        r.read_ustring()?.ok_or_else(|| DecodeError::Invalid(format!("null string at offset {offset}")))
    }
}

/// A jute `buffer`; `None` is null (-1).
impl Jute for Option<Bytes> {
    const MIN_ENCODED_LEN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        write_buffer(out, self.as_deref())
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_buffer()
    }
}

/// A jute `vector`; a null (-1) decodes as empty and empty encodes as count 0.
impl<T: Jute> Jute for Vec<T> {
    const MIN_ENCODED_LEN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_i32(self.len() as i32);
        for item in self {
            item.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_vec()?.unwrap_or_default())
    }
}

/// Reads a ustring where ZooKeeper treats null exactly as it treats the empty string (a
/// path it first checks with `PathUtils.validatePath`, a prefix it tests with `isEmpty()`, a
/// scheme it looks up in a map, reconfig's member lists): null becomes `""`.
pub fn read_null_as_empty(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    Ok(r.read_ustring()?.unwrap_or_default())
}

/// Reads a vector ZooKeeper iterates without a null check (setWatches' path lists): a null
/// (-1) count is a decode error (MarshallingError), where [`Vec`]'s `read` gives empty.
pub fn read_non_null_vec<T: Jute>(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
    let offset = r.position();
    r.read_vec()?.ok_or_else(|| DecodeError::Invalid(format!("null vector at offset {offset}")))
}

pub fn write_ustring<B: BufMut>(out: &mut B, s: Option<&str>) {
    match s {
        None => out.put_i32(-1),
        Some(s) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
    }
}

pub fn write_buffer<B: BufMut>(out: &mut B, b: Option<&[u8]>) {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
    }
}

/// Declares a jute record: a struct whose fields are encoded in declaration order. A field
/// may name the function that reads it (`pub path: String => read_null_as_empty`); the
/// others are read by their type's [`Jute::read`].
#[macro_export]
macro_rules! record {
    (@read $r:ident, $ty:ty) => { <$ty as $crate::jute::Jute>::read($r)? };
    (@read $r:ident, $ty:ty, $read:path) => { $read($r)? };
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* pub $field:ident : $ty:ty $(=> $read:path)?),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::jute::Jute for $name {
            const MIN_ENCODED_LEN: usize = 0 $(+ <$ty as $crate::jute::Jute>::MIN_ENCODED_LEN)*;
            fn write<B: bytes::BufMut>(&self, _out: &mut B) {
                $($crate::jute::Jute::write(&self.$field, _out);)*
            }
            fn read(_r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::jute::DecodeError> {
                Ok($name { $($field: $crate::record!(@read _r, $ty $(, $read)?)),* })
            }
        }
    };
}
