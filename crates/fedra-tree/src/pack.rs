//! Packing signed fixed-point `g`/`h` values into one plaintext.
//!
//! A row's values `v_0, v_1, …` (`g_0, h_0, g_1, h_1, …` for each output) become
//! the single signed integer `P = Σ_j v_j · 2^(j·s)`. Sums of such integers are
//! again of that form as long as every slot sum stays inside
//! `(-2^(s-1), 2^(s-1))`, which the guest guarantees by choosing the slot width
//! `s` from the largest `|g|`, `h` and the row count: no carry ever crosses a slot
//! boundary ambiguously, and decoding takes centered remainders slot by slot.
//! Homomorphic addition of the packed ciphertexts therefore adds all slots at once.

use fedra_he::Plaintext;

use crate::error::{Result, TreeError};

/// Packs `values` (each `|v| < 2^(s-1)`) with slot width `s` (`2..=126` bits).
pub(crate) fn pack(values: &[i128], s: u32) -> Plaintext {
    let total_bits = values.len() as u32 * s + 2;
    let limbs = total_bits.div_ceil(64) as usize + 1;
    let mut acc = vec![0u64; limbs];
    for (j, &v) in values.iter().enumerate() {
        add_shifted(&mut acc, v, j as u32 * s);
    }
    let negative = acc.last().is_some_and(|&l| l >> 63 == 1);
    if negative {
        negate(&mut acc);
    }
    let mut be = Vec::with_capacity(limbs * 8);
    for l in acc.iter().rev() {
        be.extend_from_slice(&l.to_be_bytes());
    }
    Plaintext::from_sign_magnitude_be(negative, &be)
}

/// Two's-complement `acc += v << shift` (v sign-extended over the whole width).
fn add_shifted(acc: &mut [u64], v: i128, shift: u32) {
    let ext: u64 = if v < 0 { u64::MAX } else { 0 };
    let word = (shift / 64) as usize;
    let bit = shift % 64;
    // v << bit spans up to three limbs, then sign extension.
    let u = v as u128;
    let lo = (u as u64) << bit;
    let mid = if bit == 0 {
        (u >> 64) as u64
    } else {
        (u >> (64 - bit)) as u64
    };
    let hi = if bit == 0 {
        ext
    } else {
        ((v >> (128 - bit)) as i64) as u64
    };
    let mut carry = 0u64;
    for (i, slot) in acc.iter_mut().enumerate().skip(word) {
        let add = match i - word {
            0 => lo,
            1 => mid,
            2 => hi,
            _ => ext,
        };
        let (s1, c1) = slot.overflowing_add(add);
        let (s2, c2) = s1.overflowing_add(carry);
        *slot = s2;
        carry = u64::from(c1) + u64::from(c2);
    }
}

fn negate(acc: &mut [u64]) {
    let mut carry = 1u64;
    for l in acc.iter_mut() {
        let (s, c) = (!*l).overflowing_add(carry);
        *l = s;
        carry = u64::from(c);
    }
}

/// Decodes `count` slots of width `s` from a decrypted sum; errors if the value has
/// bits beyond the layout (a slot overflowed, or the ciphertext was not a sum of
/// packed values).
pub(crate) fn unpack(p: &Plaintext, s: u32, count: usize) -> Result<Vec<i128>> {
    let mag = p.magnitude_be();
    let mut limbs: Vec<u64> = mag
        .rchunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[8 - c.len()..].copy_from_slice(c);
            u64::from_be_bytes(b)
        })
        .collect();
    limbs.push(0);
    let half = 1u128 << (s - 1);
    let mask = if s == 128 {
        u128::MAX
    } else {
        (1u128 << s) - 1
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let low = (limbs.first().copied().unwrap_or(0) as u128)
            | ((limbs.get(1).copied().unwrap_or(0) as u128) << 64);
        let x = low & mask;
        shr(&mut limbs, s);
        let v = if x >= half {
            increment(&mut limbs);
            x as i128 - (1i128 << s)
        } else {
            x as i128
        };
        out.push(if p.is_negative() { -v } else { v });
    }
    if limbs.iter().any(|&l| l != 0) {
        return Err(TreeError::Model(
            "a decrypted histogram sum does not fit its slot layout (overflow or a malformed ciphertext)"
                .into(),
        ));
    }
    Ok(out)
}

fn shr(limbs: &mut [u64], s: u32) {
    let words = (s / 64) as usize;
    let bits = s % 64;
    let n = limbs.len();
    for i in 0..n {
        let a = limbs.get(i + words).copied().unwrap_or(0);
        let b = limbs.get(i + words + 1).copied().unwrap_or(0);
        limbs[i] = if bits == 0 {
            a
        } else {
            (a >> bits) | (b << (64 - bits))
        };
    }
}

fn increment(limbs: &mut [u64]) {
    for l in limbs.iter_mut() {
        let (s, c) = l.overflowing_add(1);
        *l = s;
        if !c {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_examples() {
        let p = pack(&[-3, 5], 8);
        assert_eq!(p.to_i64(), Some(-3 + 5 * 256));
        assert_eq!(unpack(&p, 8, 2).unwrap(), vec![-3, 5]);
        let p = pack(&[3, -5], 8);
        assert_eq!(p.to_i64(), Some(3 - 5 * 256));
        assert_eq!(unpack(&p, 8, 2).unwrap(), vec![3, -5]);
        assert!(unpack(&Plaintext::from_i64(1 << 20), 8, 2).is_err());
    }

    proptest! {
        #[test]
        fn sums_of_packed_values_unpack_to_slot_sums(
            s in 20u32..120,
            rows in proptest::collection::vec(proptest::collection::vec(any::<i64>(), 6), 1..20),
        ) {
            // Keep |v| small enough that 20 summands fit the slot.
            let lim = 1i128 << (s - 7);
            let rows: Vec<Vec<i128>> = rows
                .into_iter()
                .map(|r| r.into_iter().map(|v| (v as i128) % lim).collect())
                .collect();
            let mut sum = Plaintext::zero();
            let mut want = vec![0i128; 6];
            for r in &rows {
                sum = sum.checked_add(&pack(r, s)).unwrap();
                for (w, v) in want.iter_mut().zip(r) {
                    *w += v;
                }
            }
            prop_assert_eq!(unpack(&sum, s, 6).unwrap(), want);
        }
    }
}
