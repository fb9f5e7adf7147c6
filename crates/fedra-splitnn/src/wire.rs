//! Message encoding: f32 matrices with an explicit shape header, and the
//! follower's hello. Every received message is checked against the exact
//! shape the protocol expects (before decoding values), then every value
//! for NaN/infinity and against the configured magnitude bound. Errors
//! name the sender and the tag ([`FedError::Decode`]).
//!
//! Matrix layout: `b"SM"`, version `1`, 5 zero bytes, `rows: u64 BE`,
//! `cols: u64 BE`, then `rows·cols` little-endian f32, row-major.

use bytes::Bytes;
use fedra_federation::{FedError, PartyId, Tag};

use crate::error::{Result, SplitError};

const MAGIC: [u8; 8] = [b'S', b'M', 1, 0, 0, 0, 0, 0];
const HEADER: usize = 24;

pub(crate) fn decode_err(from: &PartyId, tag: &Tag, detail: impl Into<String>) -> SplitError {
    SplitError::Fed(FedError::Decode {
        party: from.to_string(),
        tag: tag.to_string(),
        detail: detail.into(),
    })
}

/// Encodes a row-major `rows × cols` matrix.
pub fn encode_matrix(rows: usize, cols: usize, v: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(HEADER + 4 * v.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(rows as u64).to_be_bytes());
    out.extend_from_slice(&(cols as u64).to_be_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// Decodes a matrix from `from` that must be exactly `rows × cols`, every
/// value finite with `|v| <= max_abs`.
pub fn decode_matrix(
    from: &PartyId,
    tag: &Tag,
    b: &[u8],
    rows: usize,
    cols: usize,
    max_abs: f32,
) -> Result<Vec<f32>> {
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(HEADER))
        .ok_or_else(|| decode_err(from, tag, "expected size overflows"))?;
    if b.len() != expected {
        return Err(decode_err(
            from,
            tag,
            format!(
                "{} bytes, expected {expected} for a {rows} × {cols} f32 matrix",
                b.len()
            ),
        ));
    }
    if b[..8] != MAGIC {
        return Err(decode_err(
            from,
            tag,
            "not a version-1 matrix (bad magic bytes)",
        ));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[8..16]);
    let r = u64::from_be_bytes(a);
    a.copy_from_slice(&b[16..24]);
    let c = u64::from_be_bytes(a);
    if r != rows as u64 || c != cols as u64 {
        return Err(decode_err(
            from,
            tag,
            format!("shape {r} × {c}, expected {rows} × {cols}"),
        ));
    }
    let mut out = Vec::with_capacity(rows * cols);
    for (i, ch) in b[HEADER..].chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
        if !v.is_finite() {
            return Err(decode_err(
                from,
                tag,
                format!(
                    "value at row {}, column {} is not finite ({v})",
                    i / cols.max(1),
                    i % cols.max(1)
                ),
            ));
        }
        if v.abs() > max_abs {
            return Err(decode_err(
                from,
                tag,
                format!(
                    "value at row {}, column {} is {v}, beyond the bound ±{max_abs}",
                    i / cols.max(1),
                    i % cols.max(1)
                ),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// Fixed-width list of `u64` (the hello).
pub(crate) fn encode_u64s(v: &[u64]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>())
}

pub(crate) fn decode_u64s(from: &PartyId, tag: &Tag, b: &[u8], n: usize) -> Result<Vec<u64>> {
    if b.len() != 8 * n {
        return Err(decode_err(
            from,
            tag,
            format!("{} bytes, expected {}", b.len(), 8 * n),
        ));
    }
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_be_bytes(a)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matrices_round_trip_and_are_checked() {
        let p = PartyId::new("host").unwrap();
        let t = Tag::new("split", 3, "emb");
        let v = [1.0, -2.5, 0.0, 3.25, 1e-30, -7.0];
        let b = encode_matrix(2, 3, &v);
        assert_eq!(decode_matrix(&p, &t, &b, 2, 3, 10.0).unwrap(), v);
        for (bytes, rows, cols, max, needle) in [
            (b.to_vec(), 3, 2, 10.0, "shape 2 × 3"),
            (b.to_vec(), 2, 4, 10.0, "expected 56"),
            (b[..30].to_vec(), 2, 3, 10.0, "30 bytes"),
            (b.to_vec(), 2, 3, 5.0, "beyond the bound"),
            (
                encode_matrix(2, 3, &[0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]).to_vec(),
                2,
                3,
                5.0,
                "not finite",
            ),
            (
                encode_matrix(2, 3, &[0.0, 0.0, 0.0, 0.0, 0.0, f32::INFINITY]).to_vec(),
                2,
                3,
                5.0,
                "row 1, column 2",
            ),
        ] {
            let e = decode_matrix(&p, &t, &bytes, rows, cols, max).unwrap_err();
            let s = e.to_string();
            assert!(s.contains(needle) && s.contains("host"), "{s}");
            assert_eq!(e.party(), Some("host"));
        }
        let mut bad = b.to_vec();
        bad[0] = b'X';
        assert!(decode_matrix(&p, &t, &bad, 2, 3, 10.0).is_err());
    }
}
