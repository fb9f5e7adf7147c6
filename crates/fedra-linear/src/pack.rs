//! Three-slot plaintexts for the `no_arbiter` linearised-sigmoid protocol.
//!
//! The guest encrypts `P = B + 2^192·A` (one ciphertext per row instead of
//! two). The host needs `Σ s1·B + Σ s2·A` for two scalar vectors `s1`, `s2`;
//! it computes `2^192·(Σ s1·P) + Σ s2·P`, whose middle slot (bits 192…383)
//! is exactly that, while the low slot (`Σ s2·B`) and the high slot
//! (`Σ s1·A`) are hidden under masks the host adds ([`mask`]) and the guest
//! discards ([`middle_slot`]). Integers are handled as little-endian
//! two's-complement `u64` limbs.

use fedra_he::Plaintext;

const LIMBS: usize = 9; // 576 bits: three slots.

/// `2^192` as a plaintext.
pub(crate) fn shift() -> Plaintext {
    let mut l = [0u64; LIMBS];
    l[3] = 1;
    to_plaintext(&l)
}

/// Two's complement little-endian limbs → plaintext.
fn to_plaintext(l: &[u64; LIMBS]) -> Plaintext {
    let negative = l[LIMBS - 1] >> 63 == 1;
    let mut m = *l;
    if negative {
        negate(&mut m);
    }
    let mut be = Vec::with_capacity(LIMBS * 8);
    for x in m.iter().rev() {
        be.extend_from_slice(&x.to_be_bytes());
    }
    Plaintext::from_sign_magnitude_be(negative, &be)
}

fn negate(l: &mut [u64; LIMBS]) {
    let mut carry = true;
    for x in l.iter_mut() {
        let (v, c) = (!*x).overflowing_add(u64::from(carry));
        *x = v;
        carry = c;
    }
}

/// Plaintext → two's complement limbs, `None` if it needs more than 575 bits.
fn to_limbs(p: &Plaintext) -> Option<[u64; LIMBS]> {
    let be = p.magnitude_be();
    if be.len() > LIMBS * 8 || p.bits() >= (LIMBS * 64) as u32 {
        return None;
    }
    let mut l = [0u64; LIMBS];
    for (k, chunk) in be.rchunks(8).enumerate() {
        let mut b = [0u8; 8];
        b[8 - chunk.len()..].copy_from_slice(chunk);
        l[k] = u64::from_be_bytes(b);
    }
    if p.is_negative() {
        negate(&mut l);
    }
    Some(l)
}

/// Sign-extends `v` into `l[at..]` and adds it (mod 2^576).
fn add_at(l: &mut [u64; LIMBS], at: usize, v: i128) {
    let ext = if v < 0 { u64::MAX } else { 0 };
    let mut carry = false;
    for (k, x) in l.iter_mut().enumerate().skip(at) {
        let w = match k - at {
            0 => v as u64,
            1 => ((v as u128) >> 64) as u64,
            _ => ext,
        };
        let (s1, c1) = x.overflowing_add(w);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        *x = s2;
        carry = c1 || c2;
    }
}

/// `B + 2^192·A`.
pub(crate) fn pack(b: i64, a: i64) -> Plaintext {
    let mut l = [0u64; LIMBS];
    add_at(&mut l, 0, i128::from(b));
    add_at(&mut l, 3, i128::from(a));
    to_plaintext(&l)
}

/// `low + 2^192·mid + 2^384·high` from uniform random limbs: `low` cut to
/// 190 bits (it hides the low slot, `|Σ x·U·B| < 2^150` with 40 bits to
/// spare), `high` to 104 bits (the high slot, `|Σ x·A| < 2^64`), and the
/// signed middle value. The sum stays below 2^490: plaintexts of 500 bits
/// suffice.
pub(crate) fn mask(low: [u64; 3], mid: i128, high: [u64; 2]) -> Plaintext {
    let mut l = [0u64; LIMBS];
    l[0] = low[0];
    l[1] = low[1];
    l[2] = low[2] & (u64::MAX >> 2);
    l[6] = high[0];
    l[7] = high[1] & (u64::MAX >> 24);
    add_at(&mut l, 3, mid);
    to_plaintext(&l)
}

/// Plaintext bits the three-slot values need (see [`mask`]).
pub(crate) const CAPACITY_BITS: u32 = 500;

/// The middle slot of `low + 2^192·mid + 2^384·high`, given
/// `|low| < 2^191` and `|mid| < 2^127`; `None` if the value cannot be of
/// that form (out of range).
pub(crate) fn middle_slot(p: &Plaintext) -> Option<i128> {
    let mut l = to_limbs(p)?;
    // floor((R + 2^191) / 2^192) = mid + 2^192·high, as |low| < 2^191.
    let mut half = [0u64; LIMBS];
    half[2] = 1 << 63;
    let mut carry = false;
    for (x, h) in l.iter_mut().zip(half) {
        let (s1, c1) = x.overflowing_add(h);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        *x = s2;
        carry = c1 || c2;
    }
    let mid = (u128::from(l[4]) << 64 | u128::from(l[3])) as i128;
    // Bits 128…191 of the middle slot must extend mid's sign.
    let ext = if mid < 0 { u64::MAX } else { 0 };
    (l[5] == ext).then_some(mid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    fn i128r(r: &mut ChaCha8Rng, bits: u32) -> i128 {
        let v = ((u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())) >> (128 - bits);
        if r.next_u32() & 1 == 1 {
            -(v as i128)
        } else {
            v as i128
        }
    }

    #[test]
    fn middle_slot_survives_any_low_and_high_slot() {
        let mut r = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..2000 {
            let (low, mid, high) = (i128r(&mut r, 127), i128r(&mut r, 126), i128r(&mut r, 105));
            // low up to 2^190 in magnitude: low · 2^63.
            let mut l = [0u64; LIMBS];
            add_at(&mut l, 0, low);
            let p = to_plaintext(&l);
            let shifted = p.checked_mul(&Plaintext::from_u64(1 << 63)).unwrap();
            let mut l = to_limbs(&shifted).unwrap();
            add_at(&mut l, 3, mid);
            add_at(&mut l, 6, high);
            assert_eq!(middle_slot(&to_plaintext(&l)), Some(mid));
        }
    }

    #[test]
    fn pack_and_mask_are_the_integers_they_claim() {
        let mut r = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..500 {
            let (b, a) = (r.next_u64() as i64, (r.next_u64() >> 1) as i64);
            let want = Plaintext::from_i64(a)
                .checked_mul(&shift())
                .unwrap()
                .checked_add(&Plaintext::from_i64(b))
                .unwrap();
            assert_eq!(pack(b, a), want);
            let mid = i128r(&mut r, 126);
            let high = [r.next_u64(), r.next_u64()];
            let m = mask([r.next_u64(), r.next_u64(), r.next_u64()], mid, high);
            assert_eq!(middle_slot(&m), Some(mid));
            assert!(m.bits() < 490);
        }
        assert_eq!(pack(-5, 0), Plaintext::from_i64(-5));
        assert!(middle_slot(&Plaintext::from_i64(-1)) == Some(0));
    }

    #[test]
    fn out_of_range_is_refused() {
        // mid = 2^127 does not fit.
        let mut l = [0u64; LIMBS];
        l[4] = 1 << 63;
        assert_eq!(middle_slot(&to_plaintext(&l)), None);
        let big = Plaintext::from_sign_magnitude_be(false, &[1u8; 80]);
        assert_eq!(middle_slot(&big), None);
    }
}
