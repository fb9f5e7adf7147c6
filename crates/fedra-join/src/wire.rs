//! The join's two messages (they are the whole traffic of a join, so they stay
//! compact): a batch of `(id, time)` and a bitmap of joined positions.
//!
//! Batch, with `fedra_federation::codec` (little-endian): `bool last` · `u32 n` ·
//! n × (`u16 id length` · id bytes · `f64 time`). The bitmap is raw bytes, one bit
//! per record, its length implied by the batch it answers.

use fedra_federation::codec::{CodecError, CodecErrorKind, Reader, Writer};

/// Largest number of records in one batch.
pub const MAX_BATCH: usize = 1 << 20;
/// Longest example id accepted.
const MAX_ID: usize = 1024;
/// Fewest bytes a record takes on the wire (empty id).
const MIN_RECORD: usize = 2 + 8;

pub(crate) fn encode_batch<'a>(
    items: impl ExactSizeIterator<Item = (&'a str, f64)>,
    last: bool,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(5 + items.len() * 24);
    w.bool(last).count(items.len());
    for (id, t) in items {
        let id = &id.as_bytes()[..id.len().min(MAX_ID)];
        w.u16(id.len() as u16).raw(id).f64(t);
    }
    w.into_vec()
}

/// Decodes a batch; every length and value is checked.
pub(crate) fn decode_batch(msg: &[u8]) -> Result<(Vec<(String, f64)>, bool), CodecError> {
    let mut r = Reader::new(msg);
    let last = r.bool()?;
    let n = r.count("record", MAX_BATCH, MIN_RECORD)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.position();
        let len = r.u16()? as usize;
        if len > MAX_ID {
            return Err(CodecError {
                offset: at,
                kind: CodecErrorKind::Invalid {
                    detail: format!("example id of {len} bytes, more than {MAX_ID}"),
                },
            });
        }
        let at = r.position();
        let id = std::str::from_utf8(r.take(len)?).map_err(|_| CodecError {
            offset: at,
            kind: CodecErrorKind::Invalid {
                detail: "example id is not UTF-8".into(),
            },
        })?;
        let t = r.finite_f64("event time")?;
        items.push((id.to_owned(), t));
    }
    r.finish()?;
    Ok((items, last))
}

pub(crate) fn encode_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        out[i / 8] |= 1 << (i % 8);
    }
    out
}

/// Decodes a bitmap that must describe exactly `n` records.
pub(crate) fn decode_bits(msg: &[u8], n: usize) -> Result<Vec<bool>, String> {
    if msg.len() != n.div_ceil(8) {
        return Err(format!("bitmap of {} bytes for {n} records", msg.len()));
    }
    if !n.is_multiple_of(8) && msg.last().is_some_and(|b| b >> (n % 8) != 0) {
        return Err("bits set beyond the last record".into());
    }
    Ok((0..n).map(|i| msg[i / 8] >> (i % 8) & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_bad_ones_are_refused() {
        let msg = encode_batch([("a", 1.5), ("bb", -2.0)].into_iter(), true);
        assert_eq!(
            decode_batch(&msg).unwrap(),
            (vec![("a".into(), 1.5), ("bb".into(), -2.0)], true)
        );
        for cut in 0..msg.len() {
            let e = decode_batch(&msg[..cut]).unwrap_err().to_string();
            assert!(e.contains("too short") || e.contains("count"), "{cut}: {e}");
        }
        let mut lying = msg.clone();
        lying[1..5].copy_from_slice(&1000u32.to_le_bytes());
        let e = decode_batch(&lying).unwrap_err().to_string();
        assert!(e.contains("record count 1000 "), "{e}");
        let mut huge = msg.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_batch(&huge).is_err());
        let mut extra = msg.clone();
        extra.push(0);
        let e = decode_batch(&extra).unwrap_err().to_string();
        assert!(e.contains("unexpected"), "{e}");
        let mut flag = msg.clone();
        flag[0] = 7;
        assert!(decode_batch(&flag).is_err());
        let mut long_id = msg.clone();
        long_id[5..7].copy_from_slice(&2000u16.to_le_bytes());
        let e = decode_batch(&long_id).unwrap_err().to_string();
        assert!(e.contains("more than 1024"), "{e}");
        let mut not_utf8 = msg.clone();
        not_utf8[7] = 0xff;
        let e = decode_batch(&not_utf8).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && !e.contains("255"), "{e}");
        let mut nan = msg;
        nan[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
        let e = decode_batch(&nan).unwrap_err().to_string();
        assert!(e.contains("event time is not a finite number"), "{e}");
    }

    #[test]
    fn bitmaps_round_trip_and_must_fit() {
        let bits = [true, false, true, true, false, false, false, false, true];
        assert_eq!(decode_bits(&encode_bits(&bits), 9).unwrap(), bits);
        assert!(decode_bits(&encode_bits(&bits), 10).is_ok());
        assert!(decode_bits(&encode_bits(&bits), 17).is_err());
        assert!(decode_bits(&[0xff, 0xff], 9).is_err());
    }
}
