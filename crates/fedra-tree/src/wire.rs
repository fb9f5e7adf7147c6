//! Bounds-checked message reading and writing. Every length and count in a
//! received message is checked against what the protocol allows before anything
//! is allocated from it; errors name the sender and the message tag.

use fedra_federation::{FedError, PartyId, Tag};

use crate::error::TreeError;

pub(crate) fn decode_err(from: &PartyId, tag: &Tag, detail: impl Into<String>) -> TreeError {
    TreeError::Fed(FedError::Decode {
        party: from.to_string(),
        tag: tag.to_string(),
        detail: detail.into(),
    })
}

/// Appends big-endian integers and byte strings.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    pub(crate) fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub(crate) fn finish(self) -> bytes::Bytes {
        bytes::Bytes::from(self.0)
    }
}

/// Reads a received message; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    from: &'a PartyId,
    tag: &'a Tag,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], from: &'a PartyId, tag: &'a Tag) -> Self {
        Reader {
            buf,
            pos: 0,
            from,
            tag,
        }
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> TreeError {
        decode_err(self.from, self.tag, detail)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TreeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(e) => {
                let s = &self.buf[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => Err(self.err(format!(
                "message ends at byte {}, {n} more bytes expected at {}",
                self.buf.len(),
                self.pos
            ))),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TreeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn flag(&mut self) -> Result<bool, TreeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("flag byte {v}, expected 0 or 1"))),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, TreeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, TreeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// A count that must not exceed `max` (what the protocol allows here).
    pub(crate) fn count(&mut self, max: usize, what: &str) -> Result<usize, TreeError> {
        let c = self.u32()? as usize;
        if c > max {
            return Err(self.err(format!("{c} {what}, at most {max} allowed")));
        }
        Ok(c)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub(crate) fn bytes(&mut self, max: usize, what: &str) -> Result<&'a [u8], TreeError> {
        let n = self.count(max, what)?;
        self.take(n)
    }

    pub(crate) fn done(&self) -> Result<(), TreeError> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!(
                "{} unexpected trailing bytes",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}
