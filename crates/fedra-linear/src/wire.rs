//! The messages of the linear-model protocols, written and read with the one
//! codec (`fedra_federation::codec`: little-endian, `u32` counts, no trailing
//! bytes). Every received message is checked against the exact shape the
//! protocol expects, and every ciphertext and public key is validated, before
//! use; a malformed one is a [`FedError::malformed`] naming the sender and
//! the tag.

use bytes::Bytes;
use fedra_federation::codec::{CodecError, Reader, Writer};
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_he::HePublicKey;

use crate::config::Config;
use crate::error::Result;

/// Reads a complete message from `from` with `body`
/// ([`codec::read_message`](fedra_federation::codec::read_message)).
fn parse<'a, T>(
    from: &PartyId,
    tag: &Tag,
    b: &'a [u8],
    body: impl FnOnce(&mut Reader<'a>) -> std::result::Result<T, CodecError>,
) -> Result<T> {
    Ok(fedra_federation::codec::read_message(from, tag, b, body)?)
}

/// `u32 count || count fixed-width ciphertexts`.
pub(crate) fn enc_cts<K: HePublicKey>(pk: &K, cts: &[K::Ciphertext]) -> Bytes {
    let mut w = Writer::with_capacity(4 + cts.len() * pk.ciphertext_len());
    w.count(cts.len());
    for c in cts {
        w.raw(&pk.ciphertext_to_bytes(c));
    }
    w.into_bytes()
}

/// Exactly `expected` ciphertexts of `pk`, each validated.
pub(crate) fn dec_cts<K: HePublicKey>(
    pk: &K,
    from: &PartyId,
    tag: &Tag,
    b: &[u8],
    expected: usize,
) -> Result<Vec<K::Ciphertext>> {
    let w = pk.ciphertext_len();
    let payload = parse(from, tag, b, |r| {
        r.exact_count("items", expected)?;
        r.take(expected.saturating_mul(w))
    })?;
    let items: Vec<&[u8]> = payload.chunks(w.max(1)).collect();
    pk.ciphertexts_from_bytes(&items)
        .map_err(|(i, e)| FedError::malformed(from, tag, format!("ciphertext {i}: {e}")).into())
}

/// `u32 count || count little-endian i128`.
pub(crate) fn enc_i128(v: &[i128]) -> Bytes {
    let mut w = Writer::with_capacity(4 + 16 * v.len());
    w.count(v.len());
    for x in v {
        w.raw(&x.to_le_bytes());
    }
    w.into_bytes()
}

/// Exactly `expected` little-endian i128.
pub(crate) fn dec_i128(from: &PartyId, tag: &Tag, b: &[u8], expected: usize) -> Result<Vec<i128>> {
    parse(from, tag, b, |r| {
        r.exact_count("items", expected)?;
        let payload = r.take(expected.saturating_mul(16))?;
        Ok(payload
            .chunks_exact(16)
            .map(|c| {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                i128::from_le_bytes(a)
            })
            .collect())
    })
}

/// `(rows, columns)` of a party.
pub(crate) fn enc_meta(rows: usize, cols: usize) -> Bytes {
    let mut w = Writer::with_capacity(16);
    w.u64(rows as u64).u64(cols as u64);
    w.into_bytes()
}

/// `(rows, columns)` of a party, at most 2^40 × 2^24.
pub(crate) fn dec_meta(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<(usize, usize)> {
    parse(from, tag, b, |r| {
        let at = r.clone();
        let (rows, cols) = (r.u64()?, r.u64()?);
        if rows > 1 << 40 || cols > 1 << 24 {
            return Err(at.invalid(format!("implausible shape {rows} × {cols}")));
        }
        Ok((rows as usize, cols as usize))
    })
}

/// End of an epoch: stop flag and the loss (NaN where the receiver does not
/// learn it).
pub(crate) fn enc_epoch_end(stop: bool, loss: f64) -> Bytes {
    let mut w = Writer::with_capacity(9);
    w.bool(stop).f64(loss);
    w.into_bytes()
}

/// `(stop, loss)`; the loss may be any bit pattern (NaN when not shared).
pub(crate) fn dec_epoch_end(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<(bool, f64)> {
    parse(from, tag, b, |r| Ok((r.bool()?, r.f64()?)))
}

/// A 32-byte mask seed, as it is.
pub(crate) fn enc_seed(seed: &[u8; 32]) -> Bytes {
    let mut w = Writer::with_capacity(32);
    w.raw(seed);
    w.into_bytes()
}

/// A 32-byte mask seed.
pub(crate) fn dec_seed(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<[u8; 32]> {
    parse(from, tag, b, Reader::array::<32>)
}

/// Receives and parses a public key (the message is the key's own
/// encoding), under this party's key-size policy, checking its size against
/// the config.
pub(crate) async fn recv_pk<K: HePublicKey>(
    ch: &dyn Channel,
    from: &PartyId,
    tag: &Tag,
    cfg: &Config,
) -> Result<K> {
    let b = ch.recv(from, tag).await?;
    let pk = K::from_bytes_with_policy(&b, cfg.key_policy)
        .map_err(|e| FedError::malformed(from, tag, format!("public key: {e}")))?;
    let bits = cfg.key_bits;
    if pk.modulus_bits() != bits {
        return Err(FedError::malformed(
            from,
            tag,
            format!(
                "public key has {} bits, the job requires {bits}",
                pk.modulus_bits()
            ),
        )
        .into());
    }
    Ok(pk)
}
