//! Reading a peer's message with the one codec (`fedra_federation::codec`:
//! little-endian, `u32` counts checked against the bytes left before anything
//! is allocated, no trailing bytes). A malformed message is a
//! [`FedError::malformed`](fedra_federation::FedError::malformed) error naming
//! the sender and the message tag.

use fedra_federation::codec::{CodecError, Reader};
use fedra_federation::{PartyId, Tag};

use crate::error::Result;

/// Reads the complete message `b` from `from` under `tag` with `body`
/// ([`codec::read_message`](fedra_federation::codec::read_message)).
pub(crate) fn read<'a, T>(
    from: &PartyId,
    tag: &Tag,
    b: &'a [u8],
    body: impl FnOnce(&mut Reader<'a>) -> std::result::Result<T, CodecError>,
) -> Result<T> {
    Ok(fedra_federation::codec::read_message(from, tag, b, body)?)
}

/// `n` items of `width` bytes each, back to back.
pub(crate) fn items<'a>(
    r: &mut Reader<'a>,
    n: usize,
    width: usize,
) -> std::result::Result<Vec<&'a [u8]>, CodecError> {
    let b = r.take(n.saturating_mul(width))?;
    Ok(b.chunks(width.max(1)).collect())
}
