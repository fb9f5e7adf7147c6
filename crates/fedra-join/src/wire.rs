//! The join's two messages, encoded by hand (they are the whole traffic of a join,
//! so they stay compact): a batch of `(id, time)` and a bitmap of joined positions.
//!
//! Batch: `u8 last` · `u32 n` · n × (`u16 id length` · id bytes · `f64 time`), little-endian.

/// Largest number of records in one batch.
pub const MAX_BATCH: usize = 1 << 20;
/// Longest example id accepted.
const MAX_ID: usize = 1024;

pub(crate) fn encode_batch<'a>(
    items: impl ExactSizeIterator<Item = (&'a str, f64)>,
    last: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + items.len() * 24);
    out.push(u8::from(last));
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (id, t) in items {
        let id = &id.as_bytes()[..id.len().min(MAX_ID)];
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("message ends {} bytes early", n - self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Decodes a batch; every length and value is checked.
pub(crate) fn decode_batch(msg: &[u8]) -> Result<(Vec<(String, f64)>, bool), String> {
    let mut r = Reader(msg);
    let last = match r.array::<1>()?[0] {
        0 => false,
        1 => true,
        b => return Err(format!("bad end-of-stream flag {b}")),
    };
    let n = u32::from_le_bytes(r.array()?) as usize;
    if n > MAX_BATCH {
        return Err(format!(
            "{n} records in one batch, more than the {MAX_BATCH} allowed"
        ));
    }
    // Each record takes at least 10 bytes: refuse counts the message cannot hold.
    if n.saturating_mul(10) > msg.len() {
        return Err(format!(
            "announces {n} records but holds only {} bytes",
            msg.len()
        ));
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array()?) as usize;
        if len > MAX_ID {
            return Err(format!("example id of {len} bytes, more than {MAX_ID}"));
        }
        let id = std::str::from_utf8(r.take(len)?)
            .map_err(|e| format!("example id is not UTF-8: {e}"))?;
        let t = f64::from_le_bytes(r.array()?);
        if !t.is_finite() {
            return Err("event time is not a finite number".into());
        }
        items.push((id.to_owned(), t));
    }
    if !r.0.is_empty() {
        return Err(format!("{} unexpected bytes after {n} records", r.0.len()));
    }
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
        assert!(
            decode_batch(&msg[..msg.len() - 1])
                .unwrap_err()
                .contains("early")
        );
        let mut lying = msg.clone();
        lying[1..5].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode_batch(&lying).unwrap_err().contains("announces 1000"));
        let mut extra = msg.clone();
        extra.push(0);
        assert!(decode_batch(&extra).unwrap_err().contains("unexpected"));
        let mut flag = msg;
        flag[0] = 7;
        assert!(decode_batch(&flag).is_err());
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
