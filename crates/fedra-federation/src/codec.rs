//! One way to put bytes on the wire: a [`Writer`], a bounds-checked [`Reader`], and
//! the [`Wire`] trait for message types built from them.
//!
//! Every algorithm crate encodes its messages with these two types, so that there is
//! one byte order, one set of length checks and one error for "the peer sent
//! something malformed" ([`CodecError`], turned into [`FedError::Decode`] naming the
//! peer and the tag by [`CodecError::from_peer`] / [`decode_from`]).
//!
//! # Format rules
//! - **Little-endian** for every integer and float (`u16`, `u32`, `u64`, `i64`,
//!   `f32`, `f64`): the byte order of every machine Fedra runs on, so bulk vectors
//!   are a straight copy. Big integers (ciphertexts, RSA values, public keys) are
//!   opaque byte strings to the codec and keep their standard big-endian encoding,
//!   as do hash inputs that define results (FDH counters, checksums).
//! - A **count** (number of elements, byte length) is a `u32`; the reader checks a
//!   count against the bytes actually remaining *before* allocating, so a hostile
//!   count cannot make a party allocate more than the message it received.
//! - A **bool** is one byte, `0` or `1`; anything else is refused.
//! - A **message kind** is one leading byte checked with [`Reader::kind`].
//! - A complete message has no trailing bytes: [`Reader::finish`] refuses them.
//!
//! The reader never panics and never reads past its input.

use std::fmt;

use bytes::Bytes;

use crate::{FedError, PartyId, Tag};

/// Largest count a [`Writer`] will encode: lengths are `u32` on the wire.
pub const MAX_COUNT: usize = u32::MAX as usize;

/// What was wrong with a byte string, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Byte offset in the message where decoding stopped.
    pub offset: usize,
    /// What was wrong.
    pub kind: CodecErrorKind,
}

/// The classes of malformed input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// The message ended before a field did.
    Short {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// Bytes left over after the last field.
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A message-kind byte other than the expected one.
    WrongKind {
        /// The expected message, by name.
        expected: &'static str,
        /// Its kind byte.
        want: u8,
        /// The byte found.
        got: u8,
    },
    /// A count larger than its limit or than the message can hold.
    Count {
        /// What was counted.
        what: &'static str,
        /// The announced count.
        count: u64,
        /// The largest acceptable count.
        max: u64,
    },
    /// A field whose value is out of its range (bad bool, non-UTF-8 text, ...).
    Invalid {
        /// What was wrong, without the value itself.
        detail: String,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CodecErrorKind::Short { needed, left } => write!(
                f,
                "message too short: a field at byte {} needs {needed} bytes, {left} left",
                self.offset
            ),
            CodecErrorKind::Trailing { extra } => write!(
                f,
                "message too long: {extra} unexpected bytes after byte {}",
                self.offset
            ),
            CodecErrorKind::WrongKind {
                expected,
                want,
                got,
            } => write!(
                f,
                "wrong message kind at byte {}: expected {expected} ({want}), got {got}",
                self.offset
            ),
            CodecErrorKind::Count { what, count, max } => write!(
                f,
                "{what} count {count} at byte {} is more than the {max} allowed",
                self.offset
            ),
            CodecErrorKind::Invalid { detail } => write!(f, "at byte {}: {detail}", self.offset),
        }
    }
}

impl std::error::Error for CodecError {}

impl CodecError {
    /// The peer error for this malformed message: names the sender and the tag.
    pub fn from_peer(&self, from: &PartyId, tag: &Tag) -> FedError {
        FedError::malformed(from, tag, self)
    }
}

impl FedError {
    /// The one constructor for "peer `from` sent something malformed under `tag`".
    ///
    /// `detail` must describe the shape of the problem, never the peer's values.
    pub fn malformed(from: &PartyId, tag: &Tag, detail: impl fmt::Display) -> FedError {
        FedError::Decode {
            party: from.to_string(),
            tag: tag.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// Builds one message. Writing cannot fail.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty message with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// A message that starts with the kind byte `kind`.
    pub fn with_kind(kind: u8, capacity: usize) -> Self {
        let mut w = Self::with_capacity(capacity.saturating_add(1));
        w.u8(kind);
        w
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self, x: u8) -> &mut Self {
        self.buf.push(x);
        self
    }
    /// A bool as `0` or `1`.
    pub fn bool(&mut self, x: bool) -> &mut Self {
        self.u8(u8::from(x))
    }
    /// Little-endian `u16`.
    pub fn u16(&mut self, x: u16) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// Little-endian `u32`.
    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// Little-endian `u64`.
    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// Little-endian `i64`.
    pub fn i64(&mut self, x: i64) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// Little-endian IEEE-754 `f32`.
    pub fn f32(&mut self, x: f32) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// Little-endian IEEE-754 `f64`.
    pub fn f64(&mut self, x: f64) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    /// A count (element number or length) as `u32`.
    ///
    /// Counts above [`MAX_COUNT`] are saturated, so the peer refuses the message
    /// instead of misreading it; protocols bound their counts far below that.
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }
    /// Bytes as they are, with no length (the reader must know it).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.count(b.len()).raw(b)
    }
    /// A `u32` length, then the UTF-8 bytes.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// The values as they are (little-endian), with no count.
    pub fn f32s(&mut self, xs: &[f32]) -> &mut Self {
        self.buf.reserve(xs.len() * 4);
        for x in xs {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// The values as they are (little-endian), with no count.
    pub fn f64s(&mut self, xs: &[f64]) -> &mut Self {
        self.buf.reserve(xs.len() * 8);
        for x in xs {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// The values as they are (little-endian), with no count.
    pub fn u64s(&mut self, xs: &[u64]) -> &mut Self {
        self.buf.reserve(xs.len() * 8);
        for x in xs {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// Encodes a [`Wire`] value in place.
    pub fn put<T: Wire>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }
    /// The message as a byte vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
    /// The message, ready to send.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

/// Reads one message, checking every bound. See the [module docs](self) for the format.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error of `kind` at the current position.
    pub fn error(&self, kind: CodecErrorKind) -> CodecError {
        CodecError {
            offset: self.pos,
            kind,
        }
    }

    /// An [`CodecErrorKind::Invalid`] error at the current position.
    pub fn invalid(&self, detail: impl Into<String>) -> CodecError {
        self.error(CodecErrorKind::Invalid {
            detail: detail.into(),
        })
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let left = self.remaining();
        if n > left {
            return Err(self.error(CodecErrorKind::Short { needed: n, left }));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Checks the message-kind byte: `want` for the message called `expected`.
    pub fn kind(&mut self, want: u8, expected: &'static str) -> Result<(), CodecError> {
        let at = self.pos;
        let got = self.u8()?;
        if got != want {
            return Err(CodecError {
                offset: at,
                kind: CodecErrorKind::WrongKind {
                    expected,
                    want,
                    got,
                },
            });
        }
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }
    /// A bool: `0` or `1`.
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => {
                self.pos -= 1;
                Err(self.invalid("a flag must be 0 or 1"))
            }
        }
    }
    /// Little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// Little-endian `f32` (any bit pattern; see [`Reader::finite_f32`]).
    pub fn f32(&mut self) -> Result<f32, CodecError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// Little-endian `f64` (any bit pattern; see [`Reader::finite_f64`]).
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    /// A finite `f32` (NaN and infinities refused).
    pub fn finite_f32(&mut self, what: &'static str) -> Result<f32, CodecError> {
        let x = self.f32()?;
        if x.is_finite() {
            Ok(x)
        } else {
            self.pos -= 4;
            Err(self.invalid(format!("{what} is not a finite number")))
        }
    }
    /// A finite `f64` (NaN and infinities refused).
    pub fn finite_f64(&mut self, what: &'static str) -> Result<f64, CodecError> {
        let x = self.f64()?;
        if x.is_finite() {
            Ok(x)
        } else {
            self.pos -= 8;
            Err(self.invalid(format!("{what} is not a finite number")))
        }
    }

    /// A `u32` count of `what`, at most `max`, whose elements (at least
    /// `min_elem_bytes` each) fit in the bytes left: after this check the caller may
    /// allocate `count` elements.
    pub fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_elem_bytes: usize,
    ) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let fits = self.remaining() / min_elem_bytes.max(1);
        let limit = max.min(if min_elem_bytes == 0 { max } else { fits });
        if n > limit {
            return Err(CodecError {
                offset: at,
                kind: CodecErrorKind::Count {
                    what,
                    count: n as u64,
                    max: limit as u64,
                },
            });
        }
        Ok(n)
    }

    /// A `u32` count of `what` that must equal `expected` (a shape the receiver
    /// already knows); returns it.
    pub fn exact_count(&mut self, what: &str, expected: usize) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()?;
        if u64::from(n) != expected as u64 {
            return Err(CodecError {
                offset: at,
                kind: CodecErrorKind::Invalid {
                    detail: format!("{n} {what}, expected {expected}"),
                },
            });
        }
        Ok(expected)
    }

    /// A `u32` length (at most `max`), then that many bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], CodecError> {
        let n = self.count(what, max, 1)?;
        self.take(n)
    }

    /// A `u32` length (at most `max` bytes), then that many bytes of UTF-8.
    pub fn str(&mut self, what: &'static str, max: usize) -> Result<&'a str, CodecError> {
        let at = self.pos;
        let b = self.bytes(what, max)?;
        std::str::from_utf8(b).map_err(|_| CodecError {
            offset: at,
            kind: CodecErrorKind::Invalid {
                detail: format!("{what} is not UTF-8"),
            },
        })
    }

    /// `n` little-endian `f32`s.
    pub fn f32s(&mut self, n: usize) -> Result<Vec<f32>, CodecError> {
        let b = self.take(n.saturating_mul(4))?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// `n` little-endian `f64`s.
    pub fn f64s(&mut self, n: usize) -> Result<Vec<f64>, CodecError> {
        let b = self.take(n.saturating_mul(8))?;
        Ok(b.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    /// `n` little-endian `u64`s.
    pub fn u64s(&mut self, n: usize) -> Result<Vec<u64>, CodecError> {
        let b = self.take(n.saturating_mul(8))?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    /// Decodes a [`Wire`] value in place.
    pub fn get<T: Wire>(&mut self) -> Result<T, CodecError> {
        T::decode(self)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Ends the message: refuses trailing bytes.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(self.error(CodecErrorKind::Trailing { extra })),
        }
    }
}

/// A message (or part of one) with one encoding.
///
/// `decode` must accept exactly what `encode` writes and refuse anything else with a
/// [`CodecError`] — never panic, never allocate more than the input justifies.
pub trait Wire: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer);
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError>;

    /// The complete message.
    fn to_bytes(&self) -> Bytes {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }
    /// Reads a complete message (no trailing bytes).
    fn from_bytes(b: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(b);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Reads the complete message `b` received from `from` under `tag` with `body`
/// (trailing bytes refused); a malformed one is a [`FedError::Decode`] naming both.
/// For messages read field by field rather than through a [`Wire`] type.
pub fn read_message<'a, T>(
    from: &PartyId,
    tag: &Tag,
    b: &'a [u8],
    body: impl FnOnce(&mut Reader<'a>) -> Result<T, CodecError>,
) -> Result<T, FedError> {
    let mut r = Reader::new(b);
    let v = body(&mut r).and_then(|v| r.finish().map(|()| v));
    v.map_err(|e| e.from_peer(from, tag))
}

/// Decodes a complete message received from `from` under `tag`; a malformed one is a
/// [`FedError::Decode`] naming both.
pub fn decode_from<T: Wire>(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<T, FedError> {
    T::from_bytes(b).map_err(|e| e.from_peer(from, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Msg {
        round: u64,
        last: bool,
        name: String,
        xs: Vec<f32>,
    }

    const KIND: u8 = 7;

    impl Wire for Msg {
        fn encode(&self, w: &mut Writer) {
            w.u8(KIND)
                .u64(self.round)
                .bool(self.last)
                .str(&self.name)
                .count(self.xs.len())
                .f32s(&self.xs);
        }
        fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
            r.kind(KIND, "msg")?;
            let round = r.u64()?;
            let last = r.bool()?;
            let name = r.str("name", 64)?.to_owned();
            let n = r.count("value", 1 << 20, 4)?;
            let xs = r.f32s(n)?;
            Ok(Msg {
                round,
                last,
                name,
                xs,
            })
        }
    }

    fn msg() -> Msg {
        Msg {
            round: 3,
            last: true,
            name: "w".into(),
            xs: vec![1.0, -2.5, 0.0],
        }
    }

    #[test]
    fn round_trip_and_little_endian() {
        let b = msg().to_bytes();
        assert_eq!(Msg::from_bytes(&b).unwrap(), msg());
        assert_eq!(&b[..9], &[7, 3, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn every_prefix_is_short() {
        let b = msg().to_bytes();
        for n in 0..b.len() {
            let e = Msg::from_bytes(&b[..n]).unwrap_err();
            assert!(
                matches!(
                    e.kind,
                    CodecErrorKind::Short { .. } | CodecErrorKind::Count { .. }
                ),
                "{n}: {e}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = msg().to_bytes().to_vec();
        b.push(0);
        let e = Msg::from_bytes(&b).unwrap_err();
        assert_eq!(e.kind, CodecErrorKind::Trailing { extra: 1 });
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn wrong_kind_is_refused() {
        let mut b = msg().to_bytes().to_vec();
        b[0] = 8;
        let e = Msg::from_bytes(&b).unwrap_err();
        assert!(matches!(
            e.kind,
            CodecErrorKind::WrongKind {
                want: 7,
                got: 8,
                ..
            }
        ));
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut w = Writer::new();
        w.u8(KIND).u64(0).bool(false).str("").u32(u32::MAX);
        let e = Msg::from_bytes(&w.into_vec()).unwrap_err();
        assert!(
            matches!(e.kind, CodecErrorKind::Count { count, max: 0, .. } if count == u64::from(u32::MAX))
        );
    }

    #[test]
    fn bad_bool_and_utf8_and_non_finite() {
        let mut w = Writer::new();
        w.u8(KIND).u64(0).u8(2);
        assert!(matches!(
            Msg::from_bytes(&w.into_vec()).unwrap_err().kind,
            CodecErrorKind::Invalid { .. }
        ));
        let mut w = Writer::new();
        w.u8(KIND).u64(0).bool(true).bytes(&[0xff, 0xfe]);
        let e = Msg::from_bytes(&w.into_vec()).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let mut w = Writer::new();
        w.f64(f64::NAN);
        let b = w.into_vec();
        assert!(Reader::new(&b).finite_f64("loss").is_err());
    }

    #[test]
    fn peer_error_names_party_and_tag() {
        let from = PartyId::new("host").unwrap();
        let tag = Tag::new("psi", 2, "blinded");
        let e = decode_from::<Msg>(&from, &tag, &[1]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("host") && s.contains("psi"), "{s}");
        assert_eq!(e.code(), "fed.decode");
    }
}
