//! Fixed-base exponentiation with precomputed 8-bit windows.
//!
//! For a base `b` and modulus `m` the table stores `b^(d * 256^i) mod m`
//! for every byte position `i` and digit `d` in `1..=255`. Then
//! `b^e = prod_i table[i][e_i]` where `e_i` are the bytes of `e`: one
//! modular multiplication per non-zero exponent byte and no squarings.
//!
//! Cost: `255 * bytes` stored residues (2048-bit Paillier with 1024-bit
//! exponents: 128 * 255 * 512 B ≈ 16 MiB) and as many multiplications to
//! build. Lookups are data-dependent memory accesses (not cache-timing
//! constant) and zero digits are skipped; this leaks timing information
//! about the random exponent to a co-located attacker. This is the usual
//! trade-off of DJN/HEU-style fixed-base encryption.

use crate::bn::{Barrett, Ctx, Nat};
use crate::error::HeError;

/// Precomputed powers of a fixed base.
pub(crate) struct FixedBase {
    red: Barrett,
    /// `rows[i][d - 1] = base^(d * 256^i) mod modulus`.
    rows: Vec<Vec<Nat>>,
}

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
