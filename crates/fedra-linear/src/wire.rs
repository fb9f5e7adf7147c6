//! Message encoding with explicit bounds: every received message is checked
//! against the exact size the protocol expects, and every ciphertext is
//! validated, before use. Errors name the sender and the tag.

use bytes::Bytes;
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_he::HePublicKey;

use crate::config::Config;
use crate::error::{LinearError, Result};

pub(crate) fn decode_err(from: &PartyId, tag: &Tag, detail: impl Into<String>) -> LinearError {
    LinearError::Fed(FedError::Decode {
        party: from.to_string(),
        tag: tag.to_string(),
        detail: detail.into(),
    })
}

fn header(count: usize) -> Vec<u8> {
    (count as u64).to_be_bytes().to_vec()
}

/// Splits off and checks the `u64` count header.
fn body<'a>(
    from: &PartyId,
    tag: &Tag,
    b: &'a [u8],
    expected: usize,
    width: usize,
) -> Result<&'a [u8]> {
    let (head, rest) = b.split_at_checked(8).ok_or_else(|| {
        decode_err(
            from,
            tag,
            format!("{} bytes is shorter than the 8-byte header", b.len()),
        )
    })?;
    let mut h = [0u8; 8];
    h.copy_from_slice(head);
    let count = u64::from_be_bytes(h);
    if count != expected as u64 {
        return Err(decode_err(
            from,
            tag,
            format!("{count} items, expected {expected}"),
        ));
    }
    if rest.len() as u64 != (expected as u64).saturating_mul(width as u64) {
        return Err(decode_err(
            from,
            tag,
            format!(
                "{} payload bytes for {expected} items of {width} bytes",
                rest.len()
            ),
        ));
    }
    Ok(rest)
}

pub(crate) fn enc_cts<K: HePublicKey>(pk: &K, cts: &[K::Ciphertext]) -> Bytes {
    let mut out = header(cts.len());
    out.reserve(cts.len() * pk.ciphertext_len());
    for c in cts {
        out.extend_from_slice(&pk.ciphertext_to_bytes(c));
    }
    Bytes::from(out)
}

pub(crate) fn dec_cts<K: HePublicKey>(
    pk: &K,
    from: &PartyId,
    tag: &Tag,
    b: &[u8],
    expected: usize,
) -> Result<Vec<K::Ciphertext>> {
    let w = pk.ciphertext_len();
    let rest = body(from, tag, b, expected, w)?;
    let items: Vec<&[u8]> = rest.chunks(w.max(1)).collect();
    pk.ciphertexts_from_bytes(&items)
        .map_err(|(i, e)| decode_err(from, tag, format!("ciphertext {i}: {e}")))
}

pub(crate) fn enc_i128(v: &[i128]) -> Bytes {
    let mut out = header(v.len());
    for x in v {
        out.extend_from_slice(&x.to_be_bytes());
    }
    Bytes::from(out)
}

pub(crate) fn dec_i128(from: &PartyId, tag: &Tag, b: &[u8], expected: usize) -> Result<Vec<i128>> {
    let rest = body(from, tag, b, expected, 16)?;
    Ok(rest
        .chunks_exact(16)
        .map(|c| {
            let mut a = [0u8; 16];
            a.copy_from_slice(c);
            i128::from_be_bytes(a)
        })
        .collect())
}

/// `(rows, columns)` of a party.
pub(crate) fn enc_meta(rows: usize, cols: usize) -> Bytes {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&(rows as u64).to_be_bytes());
    out.extend_from_slice(&(cols as u64).to_be_bytes());
    Bytes::from(out)
}

pub(crate) fn dec_meta(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<(usize, usize)> {
    if b.len() != 16 {
        return Err(decode_err(
            from,
            tag,
            format!("{} bytes, expected 16", b.len()),
        ));
    }
    let mut r = [0u8; 8];
    let mut c = [0u8; 8];
    r.copy_from_slice(&b[..8]);
    c.copy_from_slice(&b[8..]);
    let (rows, cols) = (u64::from_be_bytes(r), u64::from_be_bytes(c));
    if rows > 1 << 40 || cols > 1 << 24 {
        return Err(decode_err(
            from,
            tag,
            format!("implausible shape {rows} × {cols}"),
        ));
    }
    Ok((rows as usize, cols as usize))
}

/// Receives and parses a public key under this party's key-size policy,
/// checking its size against the config.
pub(crate) async fn recv_pk<K: HePublicKey>(
    ch: &dyn Channel,
    from: &PartyId,
    tag: &Tag,
    cfg: &Config,
) -> Result<K> {
    let b = ch.recv(from, tag).await?;
    let pk = K::from_bytes_with_policy(&b, cfg.key_policy)
        .map_err(|e| decode_err(from, tag, format!("public key: {e}")))?;
    let bits = cfg.key_bits;
    if pk.modulus_bits() != bits {
        return Err(decode_err(
            from,
            tag,
            format!(
                "public key has {} bits, the job requires {bits}",
                pk.modulus_bits()
            ),
        ));
    }
    Ok(pk)
}

/// A one-byte flag (epoch end: continue / stop).
pub(crate) fn dec_flag(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<bool> {
    match b {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(decode_err(from, tag, "expected a one-byte flag (0 or 1)")),
    }
}
