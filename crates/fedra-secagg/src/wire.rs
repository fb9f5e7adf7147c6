//! The message header and the glue to `fedra_federation::codec`, the one
//! little-endian writer and bounds-checked reader every Fedra message uses.
//!
//! Every message starts with `"SA"`, the version byte and its type byte.
//! [`decode_message`] refuses an input over the caller's size limit
//! ([`Error::TooLarge`]) before reading anything, checks the header, runs the
//! message's field decoder and refuses trailing bytes; whatever the codec's
//! reader finds wrong becomes [`Error::Decode`] naming the message. The reader never
//! panics and checks every count against the bytes actually remaining before
//! anything is allocated.

use fedra_federation::codec::{CodecError, CodecErrorKind, Reader, Writer};

use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 2] = *b"SA";
pub(crate) const VERSION: u8 = 1;

/// A writer with the header of message type `tag` already written.
pub(crate) fn writer(tag: u8, capacity: usize) -> Writer {
    let mut w = Writer::with_capacity(capacity);
    w.raw(&MAGIC).u8(VERSION).u8(tag);
    w
}

/// Decodes one complete message of type `tag` (called `message` in errors) of at
/// most `max_len` bytes, with `fields` reading what follows the header.
pub(crate) fn decode_message<'a, T>(
    buf: &'a [u8],
    max_len: usize,
    tag: u8,
    message: &'static str,
    fields: impl FnOnce(&mut Reader<'a>) -> Result<T, CodecError>,
) -> Result<T> {
    if buf.len() > max_len {
        return Err(Error::TooLarge {
            message,
            len: buf.len(),
            max: max_len,
        });
    }
    let mut r = Reader::new(buf);
    let read = |r: &mut Reader<'a>| -> Result<T, CodecError> {
        if r.array::<2>()? != MAGIC {
            return Err(invalid(0, "bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(invalid(2, "unsupported version"));
        }
        r.kind(tag, message)?;
        fields(r)
    };
    let value = read(&mut r).map_err(|source| Error::Decode { message, source })?;
    r.finish()
        .map_err(|source| Error::Decode { message, source })?;
    Ok(value)
}

/// A [`CodecErrorKind::Invalid`] error at `offset`.
pub(crate) fn invalid(offset: usize, detail: &str) -> CodecError {
    CodecError {
        offset,
        kind: CodecErrorKind::Invalid {
            detail: detail.to_owned(),
        },
    }
}

/// An [`Error::Decode`] of `message` at `offset` (for checks made after decoding).
pub(crate) fn decode_error(message: &'static str, offset: usize, detail: &str) -> Error {
    Error::Decode {
        message,
        source: invalid(offset, detail),
    }
}
