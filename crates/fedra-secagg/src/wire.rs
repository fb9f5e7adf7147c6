//! Little-endian writer and bounds-checked reader behind the message codecs.
//!
//! The reader never panics and never allocates more than the input's length:
//! every length prefix is checked against the bytes actually remaining
//! before anything is allocated.

use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 2] = *b"SA";
pub(crate) const VERSION: u8 = 1;

pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn new(tag: u8, capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity);
        v.extend_from_slice(&MAGIC);
        v.push(VERSION);
        v.push(tag);
        Self(v)
    }
    pub(crate) fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    pub(crate) fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// A count as u32; callers only pass lengths bounded by the protocol
    /// limits, and larger ones are saturated (and then rejected on decode).
    pub(crate) fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks size limit and header, positions after the header.
    pub(crate) fn new(
        buf: &'a [u8],
        max_len: usize,
        tag: u8,
        message: &'static str,
    ) -> Result<Self> {
        if buf.len() > max_len {
            return Err(Error::TooLarge {
                message,
                len: buf.len(),
                max: max_len,
            });
        }
        let mut r = Self {
            buf,
            pos: 0,
            message,
        };
        if r.array::<2>()? != MAGIC {
            return Err(r.err(0, "bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(r.err(2, "unsupported version"));
        }
        if r.u8()? != tag {
            return Err(r.err(3, "wrong message type"));
        }
        Ok(r)
    }

    pub(crate) fn err(&self, offset: usize, reason: &'static str) -> Error {
        Error::Decode {
            message: self.message,
            offset,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(self.pos, "truncated")),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n)
    }

    /// Reads a u32 element count and checks that `count * elem_bytes` bytes
    /// remain, so the caller may allocate `count` elements.
    pub(crate) fn count(&mut self, elem_bytes: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let remaining = self.buf.len() - self.pos;
        match n.checked_mul(elem_bytes.max(1)) {
            Some(total) if total <= remaining => Ok(n),
            _ => Err(self.err(at, "length prefix exceeds the message")),
        }
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.err(self.pos, "trailing bytes"));
        }
        Ok(())
    }
}
