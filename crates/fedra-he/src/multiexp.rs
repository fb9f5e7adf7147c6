//! Fast encrypted inner products ("fast accumulation"): `Π c_i^{k_i} mod m`
//! by bucket (Pippenger) multi-exponentiation over signed 64-bit scalars.
//!
//! For `N` bases and `b`-bit scalars with window `w`, the cost is about
//! `⌈b/w⌉ · (N + 2^(w+1))` modular multiplications plus `b` squarings,
//! instead of `N · (b + b/5)` for one exponentiation per base. Negative
//! scalars go to a second set of buckets (`Π c_i^{|k_i|}` over negative
//! `k_i`), which is inverted once per result.
//!
//! **Not constant time in the scalars**: bucket indices and skipped zero
//! digits depend on the scalars' bits (unlike [`HePublicKey::mul_plain`],
//! which uses a constant-time exponentiation). The scalars are the
//! evaluating party's own data, so this only matters against an attacker
//! who can time or cache-probe that party's process.
//!
//! [`HePublicKey::mul_plain`]: crate::HePublicKey::mul_plain

use rayon::prelude::*;

use crate::bn::{Barrett, Ctx, Nat, with_ctx};
use crate::error::HeError;

/// Checks the shape of a row-major `rows × columns` scalar matrix.
pub(crate) fn check_shape(rows: usize, scalars: usize, columns: usize) -> Result<(), HeError> {
    if columns == 0 {
        return Err(HeError::InvalidParameter {
            name: "columns",
            reason: "must be at least 1",
        });
    }
    if rows.checked_mul(columns) != Some(scalars) {
        return Err(HeError::LengthMismatch {
            left: rows.saturating_mul(columns),
            right: scalars,
        });
    }
    Ok(())
}

/// Window size minimising `⌈bits/w⌉ · (n + sets · 2^(w+1))`.
fn window(n: usize, bits: u32, sets: usize) -> u32 {
    (1..=16u32)
        .min_by_key(|&w| {
            let windows = bits.div_ceil(w) as usize;
            windows.saturating_mul(n + sets * (1usize << (w + 1)))
        })
        .unwrap_or(4)
}

fn mul_opt(acc: &mut Option<Nat>, x: &Nat, m: &Barrett, ctx: &mut Ctx) -> Result<(), HeError> {
    *acc = Some(match acc.take() {
        None => x.try_clone()?,
        Some(a) => m.mod_mul(&a, x, ctx)?,
    });
    Ok(())
}

/// `Σ_d d · bucket[d]` (in exponent notation) by the running-sum trick.
fn bucket_sum(buckets: &[Option<Nat>], m: &Barrett, ctx: &mut Ctx) -> Result<Option<Nat>, HeError> {
    let mut running: Option<Nat> = None;
    let mut total: Option<Nat> = None;
    for b in buckets.iter().skip(1).rev() {
        if let Some(b) = b {
            mul_opt(&mut running, b, m, ctx)?;
        }
        if let Some(r) = &running {
            mul_opt(&mut total, r, m, ctx)?;
        }
    }
    Ok(total)
}

/// `Π bases[i]^{scalar(i)} mod m` over the given rows, serially.
/// `scalar(i)` reads row `i`'s scalar. Returns `1` for an empty product.
fn multi_exp_serial(
    bases: &[Nat],
    scalar: impl Fn(usize) -> i64,
    m: &Barrett,
    ctx: &mut Ctx,
) -> Result<Nat, HeError> {
    let mut bits = 0u32;
    let mut has_neg = false;
    let mut nonzero = 0usize;
    for i in 0..bases.len() {
        let k = scalar(i);
        bits = bits.max(64 - k.unsigned_abs().leading_zeros());
        has_neg |= k < 0;
        nonzero += usize::from(k != 0);
    }
    if bits == 0 {
        return Nat::one();
    }
    let sets = if has_neg { 2 } else { 1 };
    let w = window(nonzero, bits, sets);
    let mask = (1u64 << w) - 1;
    let windows = bits.div_ceil(w);
    let mut pos: Option<Nat> = None;
    let mut neg: Option<Nat> = None;
    let mut bpos: Vec<Option<Nat>> = Vec::new();
    let mut bneg: Vec<Option<Nat>> = Vec::new();
    bpos.resize_with(1 << w, || None);
    if has_neg {
        bneg.resize_with(1 << w, || None);
    }
    for win in (0..windows).rev() {
        for acc in [&mut pos, &mut neg] {
            if let Some(a) = acc.as_mut() {
                for _ in 0..w {
                    *a = m.mod_mul(a, a, ctx)?;
                }
            }
        }
        let shift = win * w;
        for (i, base) in bases.iter().enumerate() {
            let k = scalar(i);
            let d = ((k.unsigned_abs() >> shift) & mask) as usize;
            if d == 0 {
                continue;
            }
            let buckets = if k < 0 { &mut bneg } else { &mut bpos };
            if let Some(slot) = buckets.get_mut(d) {
                mul_opt(slot, base, m, ctx)?;
            }
        }
        for (acc, buckets) in [(&mut pos, &mut bpos), (&mut neg, &mut bneg)] {
            if let Some(s) = bucket_sum(buckets, m, ctx)? {
                mul_opt(acc, &s, m, ctx)?;
            }
            buckets.iter_mut().for_each(|b| *b = None);
        }
    }
    combine(pos, neg, m, ctx)
}

fn combine(pos: Option<Nat>, neg: Option<Nat>, m: &Barrett, ctx: &mut Ctx) -> Result<Nat, HeError> {
    match (pos, neg) {
        (None, None) => Nat::one(),
        (Some(p), None) => Ok(p),
        (p, Some(n)) => {
            let inv = n.mod_inverse(m.modulus(), ctx)?;
            match p {
                Some(p) => m.mod_mul(&p, &inv, ctx),
                None => Ok(inv),
            }
        }
    }
}

/// Rows per parallel chunk below which a single column is not split.
const MIN_CHUNK_ROWS: usize = 256;

/// `Π bases[i]^{scalars[i*columns + col]} mod m` for every column, in
/// parallel (over columns, and over row chunks when there are fewer
/// columns than threads).
pub(crate) fn multi_exp_columns(
    bases: &[Nat],
    scalars: &[i64],
    columns: usize,
    m: &Nat,
) -> Result<Vec<Nat>, HeError> {
    check_shape(bases.len(), scalars.len(), columns)?;
    let m = &with_ctx(|ctx| Barrett::new(m, ctx))?;
    let threads = rayon::current_num_threads().max(1);
    let at = |i: usize, col: usize| scalars.get(i * columns + col).copied().unwrap_or(0);
    if columns >= threads || bases.len() < 2 * MIN_CHUNK_ROWS {
        return (0..columns)
            .into_par_iter()
            .map(|col| with_ctx(|ctx| multi_exp_serial(bases, |i| at(i, col), m, ctx)))
            .collect();
    }
    let chunk = bases.len().div_ceil(threads).max(MIN_CHUNK_ROWS);
    (0..columns)
        .map(|col| {
            let parts: Vec<Nat> = bases
                .par_chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    with_ctx(|ctx| multi_exp_serial(part, |i| at(c * chunk + i, col), m, ctx))
                })
                .collect::<Result<_, HeError>>()?;
            with_ctx(|ctx| {
                let mut acc: Option<Nat> = None;
                for p in &parts {
                    mul_opt(&mut acc, p, m, ctx)?;
                }
                acc.map_or_else(Nat::one, Ok)
            })
        })
        .collect()
}

/// Index of the first value not coprime to `n`, or `None`: one gcd of the
/// product `Π v_i mod n` instead of one (constant-time, slow) `BN_gcd` per
/// value. Values must be below `n²`.
pub(crate) fn first_not_coprime(values: &[Nat], n: &Nat) -> Result<Option<usize>, HeError> {
    if values.is_empty() {
        return Ok(None);
    }
    let red = with_ctx(|ctx| Barrett::new(n, ctx))?;
    let chunk = values
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(64);
    let parts: Vec<Nat> = values
        .par_chunks(chunk)
        .map(|ch| {
            with_ctx(|ctx| {
                let mut acc = Nat::one()?;
                for v in ch {
                    let r = red.reduce(v, ctx)?;
                    acc = red.mod_mul(&acc, &r, ctx)?;
                }
                Ok(acc)
            })
        })
        .collect::<Result<_, HeError>>()?;
    let all = with_ctx(|ctx| {
        let mut acc = Nat::one()?;
        for p in &parts {
            acc = red.mod_mul(&acc, p, ctx)?;
        }
        acc.gcd(n, ctx)
    })?;
    if all.is_one() {
        return Ok(None);
    }
    // Rare path (malformed input): locate the offending value.
    for (i, v) in values.iter().enumerate() {
        if !with_ctx(|ctx| v.gcd(n, ctx))?.is_one() {
            return Ok(Some(i));
        }
    }
    Ok(Some(0))
}

/// Parses ciphertext bytes into big integers on the rayon pool.
pub(crate) fn parse_all<'a>(
    cts: impl IndexedParallelIterator<Item = &'a [u8]>,
) -> Result<Vec<Nat>, HeError> {
    cts.map(Nat::from_be).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grows_with_n() {
        assert!(window(10, 64, 1) <= window(1000, 64, 1));
        assert!(window(100_000, 64, 1) >= 8);
        assert!(window(1, 3, 1) >= 1);
    }

    #[test]
    fn matches_plain_exponentiation() {
        let m = Nat::from_be(&[0xff, 0xff, 0xff, 0xfb]).unwrap(); // 4294967291 (prime)
        let bases: Vec<Nat> = (2u8..40).map(|b| Nat::from_be(&[b, 7]).unwrap()).collect();
        let scalars: Vec<i64> = (0..bases.len() as i64 * 3)
            .map(|k| (k * 7919 - 300) * if k % 5 == 0 { -1_000_003 } else { 1 })
            .collect();
        let out = multi_exp_columns(&bases, &scalars, 3, &m).unwrap();
        with_ctx(|ctx| {
            for (col, got) in out.iter().enumerate() {
                let mut want = Nat::one()?;
                for (i, b) in bases.iter().enumerate() {
                    let k = scalars[i * 3 + col];
                    let e = Nat::from_be(&k.unsigned_abs().to_be_bytes())?;
                    let mut p = b.mod_exp(&e, &m, ctx)?;
                    if k < 0 {
                        p = p.mod_inverse(&m, ctx)?;
                    }
                    want = Nat::mod_mul(&want, &p, &m, ctx)?;
                }
                assert_eq!(got.to_be(), want.to_be(), "column {col}");
            }
            Ok(())
        })
        .unwrap();
    }
}
