//! Fixed-base exponentiation with precomputed windows.
//!
//! For a base `b`, modulus `m` and window `w` the table stores
//! `b^(d * 2^(w*i)) mod m` for every window position `i` and digit `d` in
//! `1..2^w`. Then `b^e = prod_i table[i][e_i]` where `e_i` are the `w`-bit
//! digits of `e`: one modular multiplication per non-zero digit and no
//! squarings.
//!
//! [`MontFixedBase`] (used by encryption) keeps the table in Montgomery
//! form as flat `u64` limbs and multiplies with [`crate::mont`]; the
//! original OpenSSL/Barrett `FixedBase` is kept under `cfg(test)` as the
//! reference implementation (both give the same residue, bit for bit).
//!
//! Cost with `w = 8`: `255 * ⌈bits/8⌉` stored residues (2048-bit Paillier
//! with 1024-bit exponents: 128 * 255 * 512 B ≈ 16 MiB) and as many
//! multiplications to build (rows are built in parallel). Lookups are
//! data-dependent memory accesses (not cache-timing constant) and zero
//! digits are skipped; this leaks timing information about the random
//! exponent to a co-located attacker. This is the usual trade-off of
//! DJN/HEU-style fixed-base encryption.

use std::sync::Arc;

use rayon::prelude::*;
use zeroize::Zeroize;

#[cfg(test)]
use crate::bn::{Barrett, Ctx};
use crate::bn::{Nat, SecretNat, with_ctx};
use crate::error::HeError;
use crate::mont::{Modulus, MontAcc};

/// Default window width in bits.
pub(crate) const DEFAULT_WINDOW: u32 = 8;

/// Precomputed powers of a fixed base in Montgomery form.
pub(crate) struct MontFixedBase {
    m: Arc<Modulus>,
    window: u32,
    rows: usize,
    /// `2^window - 1` entries per row.
    per_row: usize,
    /// `table[(i * per_row + d - 1) * k ..][..k]` is the Montgomery form of
    /// `base^(d * 2^(window*i)) mod m`.
    table: Vec<u64>,
}

impl Drop for MontFixedBase {
    fn drop(&mut self) {
        // Tables modulo secret factors (CRT encryption) reveal them.
        self.table.zeroize();
    }
}

impl MontFixedBase {
    /// Builds a table for exponents of up to `max_exp_bits` bits with
    /// `window`-bit digits (`1..=16`). `base` may be any value (it is
    /// reduced modulo `m`).
    pub(crate) fn new(
        base: &Nat,
        m: Arc<Modulus>,
        max_exp_bits: u32,
        window: u32,
    ) -> Result<Self, HeError> {
        if !(1..=16).contains(&window) {
            return Err(HeError::InvalidParameter {
                name: "window",
                reason: "fixed-base window must be 1..=16 bits",
            });
        }
        let k = m.limbs();
        let rows = max_exp_bits.div_ceil(window).max(1) as usize;
        let per_row = (1usize << window) - 1;
        // The modulus may be a secret factor: clear the copies on drop.
        let modulus = SecretNat::new(crate::mont::limbs_to_nat(m.n_limbs())?);
        let reduced = SecretNat::new(with_ctx(|ctx| base.rem(modulus.get(), ctx))?);
        let mut cur = m.mont_from_nat(reduced.get())?;
        // Row generators base^(2^(window*i)), by repeated squaring.
        let mut gens: Vec<Vec<u64>> = Vec::with_capacity(rows);
        let mut tmp = m.zero();
        for _ in 0..rows {
            gens.push(cur.clone());
            for _ in 0..window {
                m.mul(&mut tmp, &cur, &cur);
                std::mem::swap(&mut cur, &mut tmp);
            }
        }
        cur.zeroize();
        let mut table = vec![0u64; rows * per_row * k];
        table
            .par_chunks_mut(per_row * k)
            .zip(gens.par_iter())
            .for_each(|(row, g)| {
                let Some((head, mut rest)) = row.split_at_mut_checked(k) else {
                    return;
                };
                head.copy_from_slice(g);
                let mut prev: &[u64] = head;
                while let Some((next, tail)) = rest.split_at_mut_checked(k) {
                    m.mul(next, prev, g);
                    prev = next;
                    rest = tail;
                }
            });
        for g in &mut gens {
            g.zeroize();
        }
        Ok(MontFixedBase {
            m,
            window,
            rows,
            per_row,
            table,
        })
    }

    /// Table size in bytes.
    pub(crate) fn table_bytes(&self) -> usize {
        self.table.len() * 8
    }

    /// Multiplies `acc` (Montgomery form) by `base^e` for a big-endian
    /// exponent `e`. Errors if `e` is longer than the table.
    pub(crate) fn accumulate(&self, acc: &mut MontAcc, exp: &[u8]) -> Result<(), HeError> {
        let start = exp.iter().position(|&b| b != 0).unwrap_or(exp.len());
        let exp = exp.get(start..).unwrap_or_default();
        let bits = exp.len() * 8;
        let w = self.window as usize;
        let digits = bits.div_ceil(w);
        if digits > self.rows {
            // Only an error if the extra digits are non-zero.
            let top_bits = exp.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
            let sig = bits.saturating_sub(8) + top_bits;
            if sig.div_ceil(w) > self.rows {
                return Err(HeError::InvalidParameter {
                    name: "exponent",
                    reason: "exponent longer than the fixed-base table",
                });
            }
        }
        let k = self.m.limbs();
        let mask = (1u32 << self.window) - 1;
        for i in 0..digits.min(self.rows) {
            let d = digit(exp, i * w, mask) as usize;
            if d == 0 {
                continue;
            }
            let at = (i * self.per_row + d - 1) * k;
            if let Some(entry) = self.table.get(at..at + k) {
                acc.mul_by(&self.m, entry);
            }
        }
        Ok(())
    }
}

/// The digit `(e >> bit) & mask` of a big-endian exponent (`mask` < 2^16).
#[inline]
fn digit(exp_be: &[u8], bit: usize, mask: u32) -> u32 {
    let len = exp_be.len();
    let byte = bit / 8;
    let mut v = 0u32;
    for j in 0..3 {
        let idx = byte + j;
        if idx < len
            && let Some(&b) = exp_be.get(len - 1 - idx)
        {
            v |= u32::from(b) << (8 * j);
        }
    }
    (v >> (bit % 8)) & mask
}

/// Precomputed powers of a fixed base (OpenSSL/Barrett reference
/// implementation, 8-bit windows).
#[cfg(test)]
pub(crate) struct FixedBase {
    red: Barrett,
    /// `rows[i][d - 1] = base^(d * 256^i) mod modulus`.
    rows: Vec<Vec<Nat>>,
}

#[cfg(test)]
impl FixedBase {
    /// Builds a table for exponents of up to `max_exp_bytes` bytes.
    pub(crate) fn new(
        base: &Nat,
        modulus: &Nat,
        max_exp_bytes: usize,
        ctx: &mut Ctx,
    ) -> Result<Self, HeError> {
        let red = Barrett::new(modulus, ctx)?;
        let mut rows = Vec::with_capacity(max_exp_bytes);
        let mut cur = base.rem(modulus, ctx)?; // base^(256^i)
        for _ in 0..max_exp_bytes {
            let mut row: Vec<Nat> = Vec::with_capacity(255);
            row.push(cur.try_clone()?);
            for _ in 1..255 {
                let next = match row.last() {
                    Some(prev) => red.mod_mul(prev, &cur, ctx)?,
                    None => cur.try_clone()?,
                };
                row.push(next);
            }
            // cur^256 = cur^255 * cur
            cur = match row.last() {
                Some(last) => red.mod_mul(last, &cur, ctx)?,
                None => cur,
            };
            rows.push(row);
        }
        Ok(FixedBase { red, rows })
    }

    /// `base^e mod m` for a big-endian exponent `e`.
    pub(crate) fn pow_be(&self, exp: &[u8], ctx: &mut Ctx) -> Result<Nat, HeError> {
        let start = exp.iter().position(|&b| b != 0).unwrap_or(exp.len());
        let exp = exp.get(start..).unwrap_or_default();
        if exp.len() > self.rows.len() {
            return Err(HeError::InvalidParameter {
                name: "exponent",
                reason: "exponent longer than the fixed-base table",
            });
        }
        let mut acc: Option<Nat> = None;
        for (row, &digit) in self.rows.iter().zip(exp.iter().rev()) {
            if digit == 0 {
                continue;
            }
            let Some(entry) = row.get(usize::from(digit) - 1) else {
                continue; // unreachable: rows have 255 entries
            };
            acc = match acc {
                None => Some(entry.try_clone()?),
                Some(a) => Some(self.red.mod_mul(&a, entry, ctx)?),
            };
        }
        match acc {
            Some(a) => Ok(a),
            None => Nat::one(),
        }
    }
}
