//! Message encoding: f32 matrices with an explicit shape header, and the
//! follower's hello, written and read with [`fedra_federation::codec`]
//! (little-endian throughout). Every received message is checked against
//! the exact shape the protocol expects (before decoding values), then
//! every value for NaN/infinity and against the configured magnitude
//! bound. Errors name the sender and the tag ([`FedError::Decode`], from
//! [`FedError::malformed`]) and describe the problem, never the peer's
//! values.
//!
//! Matrix layout: `b"SM"`, version `1`, 5 zero bytes, `rows: u64 LE`,
//! `cols: u64 LE`, then `rows·cols` little-endian f32, row-major.
//! Hello layout: a fixed number of `u64 LE`.

use std::fmt::Display;

use bytes::Bytes;
use fedra_federation::codec::{Reader, Writer};
use fedra_federation::{FedError, PartyId, Tag};

use crate::error::{Result, SplitError};

const MAGIC: [u8; 8] = [b'S', b'M', 1, 0, 0, 0, 0, 0];
const HEADER: usize = 24;

/// Peer `from` sent something malformed under `tag` (`detail` describes
/// the problem, never the peer's values).
pub(crate) fn malformed(from: &PartyId, tag: &Tag, detail: impl Display) -> SplitError {
    SplitError::Fed(FedError::malformed(from, tag, detail))
}

/// Encodes a row-major `rows × cols` matrix.
pub fn encode_matrix(rows: usize, cols: usize, v: &[f32]) -> Bytes {
    let mut w = Writer::with_capacity(HEADER + 4 * v.len());
    w.raw(&MAGIC).u64(rows as u64).u64(cols as u64).f32s(v);
    w.into_bytes()
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
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| malformed(from, tag, "expected size overflows"))?;
    let expected = n
        .checked_mul(4)
        .and_then(|n| n.checked_add(HEADER))
        .ok_or_else(|| malformed(from, tag, "expected size overflows"))?;
    if b.len() != expected {
        return Err(malformed(
            from,
            tag,
            format!(
                "{} bytes, expected {expected} for a {rows} × {cols} f32 matrix",
                b.len()
            ),
        ));
    }
    let codec = |e: fedra_federation::CodecError| SplitError::Fed(e.from_peer(from, tag));
    let mut r = Reader::new(b);
    if r.array::<8>().map_err(codec)? != MAGIC {
        return Err(malformed(
            from,
            tag,
            "not a version-1 matrix (bad magic bytes)",
        ));
    }
    let (got_rows, got_cols) = (r.u64().map_err(codec)?, r.u64().map_err(codec)?);
    if got_rows != rows as u64 || got_cols != cols as u64 {
        return Err(malformed(
            from,
            tag,
            format!("shape {got_rows} × {got_cols}, expected {rows} × {cols}"),
        ));
    }
    let out = r.f32s(n).map_err(codec)?;
    r.finish().map_err(codec)?;
    let at = |i: usize| (i / cols.max(1), i % cols.max(1));
    if let Some(i) = out.iter().position(|v| !v.is_finite() || v.abs() > max_abs) {
        let (row, col) = at(i);
        let what = if out[i].is_finite() {
            format!("beyond the bound ±{max_abs}")
        } else {
            "not finite".to_owned()
        };
        return Err(malformed(
            from,
            tag,
            format!("value at row {row}, column {col} is {what}"),
        ));
    }
    Ok(out)
}

/// Fixed-width list of `u64` (the hello).
pub(crate) fn encode_u64s(v: &[u64]) -> Bytes {
    let mut w = Writer::with_capacity(8 * v.len());
    w.u64s(v);
    w.into_bytes()
}

/// Decodes exactly `n` `u64` from `from`.
pub(crate) fn decode_u64s(from: &PartyId, tag: &Tag, b: &[u8], n: usize) -> Result<Vec<u64>> {
    if b.len() != 8 * n {
        return Err(malformed(
            from,
            tag,
            format!("{} bytes, expected {}", b.len(), 8 * n),
        ));
    }
    let mut r = Reader::new(b);
    let v = r.u64s(n).map_err(|e| e.from_peer(from, tag))?;
    r.finish().map_err(|e| e.from_peer(from, tag))?;
    Ok(v)
}

/// The one-byte acknowledgement of a checkpoint phase (`ckpt-saved`,
/// `ckpt-commit`).
pub(crate) fn encode_ack() -> Bytes {
    Bytes::from_static(&[1])
}

/// Checks a checkpoint acknowledgement from `from`.
pub(crate) fn decode_ack(from: &PartyId, tag: &Tag, b: &[u8]) -> Result<()> {
    let mut r = Reader::new(b);
    let ok = r.u8().map(|x| x == 1).unwrap_or(false) && r.finish().is_ok();
    if ok {
        Ok(())
    } else {
        Err(malformed(from, tag, "expected the byte 1"))
    }
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
        // Little-endian shape; an error never quotes the peer's values.
        assert_eq!(&b[8..16], &2u64.to_le_bytes());
        let e = decode_matrix(&p, &t, &b, 2, 3, 2.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 0, column 1") && !e.contains("2.5"), "{e}");
        let secret = encode_matrix(1, 1, &[f32::from_bits(0x7fc0_1234)]);
        let e = decode_matrix(&p, &t, &secret, 1, 1, 2.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not finite") && !e.contains("NaN"), "{e}");
    }

    #[test]
    fn hellos_and_acks_are_checked() {
        let p = PartyId::new("host").unwrap();
        let t = Tag::new("split", 0, "hello");
        let b = encode_u64s(&[1, 2, 3]);
        assert_eq!(decode_u64s(&p, &t, &b, 3).unwrap(), [1, 2, 3]);
        assert_eq!(&b[..8], &1u64.to_le_bytes());
        let e = decode_u64s(&p, &t, &b, 2).unwrap_err();
        assert_eq!(e.code(), "fed.decode");
        assert!(e.to_string().contains("24 bytes, expected 16"), "{e}");
        assert!(decode_ack(&p, &t, &encode_ack()).is_ok());
        for bad in [&[][..], &[0], &[1, 1], &[2]] {
            let e = decode_ack(&p, &t, bad).unwrap_err();
            assert_eq!((e.code(), e.party()), ("fed.decode", Some("host")));
        }
    }
}
