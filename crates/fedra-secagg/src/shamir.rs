//! Shamir secret sharing over the prime field `GF(2^61 - 1)`.
//!
//! Why this field: `p = 2^61 - 1` is a Mersenne prime, so reduction after a
//! `u64 x u64 -> u128` product is two shifts and adds; it holds evaluation
//! points for far more than 255 parties (ids go up to [`crate::MAX_CLIENTS`]);
//! and it needs no big-integer code. A byte secret is cut into 7-byte
//! (56-bit) chunks, each shared with its own random polynomial of degree
//! `t - 1`; a share holds one field element per chunk, so a 32-byte secret
//! gives 5 elements (40 bytes) per share.
//!
//! Evaluation points are the parties' ids (`1..=n`); reconstruction uses
//! Lagrange interpolation at 0. Because chunks are only 56 bits wide, a
//! reconstruction from too few or inconsistent shares almost always yields a
//! field element `>= 2^56` and is reported as an error instead of returning
//! garbage (each chunk passes by chance with probability `2^-5`).

use std::fmt;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::ids::ClientId;

/// The field modulus `2^61 - 1`.
pub const FIELD_MODULUS: u64 = (1 << 61) - 1;
const P: u64 = FIELD_MODULUS;
/// Secret bytes per field element.
pub const CHUNK_BYTES: usize = 7;

/// Field elements needed for a secret of `secret_len` bytes.
pub fn chunks_for(secret_len: usize) -> usize {
    secret_len.div_ceil(CHUNK_BYTES)
}

#[inline]
fn reduce(x: u64) -> u64 {
    // x < 2^64: fold the high bits once, then a conditional subtraction.
    let s = (x & P) + (x >> 61);
    if s >= P { s - P } else { s }
}

#[inline]
fn add(a: u64, b: u64) -> u64 {
    reduce(a + b)
}

#[inline]
fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

#[inline]
fn mul(a: u64, b: u64) -> u64 {
    let z = u128::from(a) * u128::from(b);
    // z < 2^122: low 61 bits plus the rest (< 2^61) fits in u64.
    let lo = (z as u64) & P;
    let hi = (z >> 61) as u64;
    reduce(lo + hi)
}

fn pow(mut base: u64, mut e: u64) -> u64 {
    let mut acc = 1;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    acc
}

fn inv(a: u64) -> u64 {
    pow(a, P - 2)
}

fn random_element(rng: &mut impl CryptoRng) -> u64 {
    loop {
        let v = rng.next_u64() & P;
        if v < P {
            return v;
        }
    }
}

/// One party's share of a secret: the evaluation point `x` (the party's id)
/// and one field element per 7-byte chunk of the secret. Zeroized on drop;
/// `Debug` does not print the values.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    x: u32,
    y: Vec<u64>,
}

impl Share {
    /// Builds a share from its parts (e.g. after decoding). Values are
    /// checked when the share is used.
    pub fn new(x: u32, y: Vec<u64>) -> Self {
        Self { x, y }
    }

    /// The evaluation point.
    pub fn x(&self) -> u32 {
        self.x
    }

    /// The field elements, one per chunk.
    pub fn y(&self) -> &[u64] {
        &self.y
    }

    /// Checks the share's form: `x` in `1..=max_x`, `chunks` elements, all
    /// below the modulus.
    ///
    /// # Errors
    /// [`Error::InvalidShare`].
    pub fn validate(&self, max_x: u32, chunks: usize) -> Result<()> {
        let bad = |reason| Err(Error::InvalidShare { x: self.x, reason });
        if self.x == 0 {
            return bad("x is zero (that point is the secret)");
        }
        if self.x > max_x {
            return bad("x out of range");
        }
        if self.y.len() != chunks {
            return bad("wrong number of field elements");
        }
        if self.y.iter().any(|&v| v >= P) {
            return bad("value is not a field element");
        }
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.y.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Share {}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &format_args!("<redacted; {} elements>", self.y.len()))
            .finish()
    }
}

fn check_points(xs: &[u32], max_x: u32) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for &x in xs {
        if x == 0 {
            return Err(Error::InvalidShare {
                x,
                reason: "x is zero (that point is the secret)",
            });
        }
        if x > max_x {
            return Err(Error::InvalidShare {
                x,
                reason: "x out of range",
            });
        }
        if !seen.insert(x) {
            return Err(Error::InvalidShare {
                x,
                reason: "duplicate x",
            });
        }
    }
    Ok(())
}

/// Shares `secret` with threshold `threshold` among the parties at the
/// evaluation points `xs` (distinct, non-zero).
///
/// # Errors
/// [`Error::InvalidParams`] if `threshold` is 0 or exceeds `xs.len()`;
/// [`Error::InvalidShare`] for a zero or repeated point.
pub fn split(
    secret: &[u8],
    threshold: u32,
    xs: &[u32],
    rng: &mut impl CryptoRng,
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold as usize > xs.len() {
        return Err(Error::InvalidParams {
            reason: format!("threshold {threshold} outside 1..={}", xs.len()),
        });
    }
    check_points(xs, u32::MAX)?;
    let chunks = chunks_for(secret.len());
    let mut shares: Vec<Share> = xs
        .iter()
        .map(|&x| Share {
            x,
            y: Vec::with_capacity(chunks),
        })
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u64; threshold as usize]);
    for chunk in secret.chunks(CHUNK_BYTES) {
        let mut buf = Zeroizing::new([0u8; 8]);
        buf[..chunk.len()].copy_from_slice(chunk);
        coeffs[0] = u64::from_le_bytes(*buf);
        for c in coeffs.iter_mut().skip(1) {
            *c = random_element(rng);
        }
        for share in &mut shares {
            let x = u64::from(share.x);
            // Horner from the highest coefficient.
            let v = coeffs.iter().rev().fold(0, |acc, &c| add(mul(acc, x), c));
            share.y.push(v);
        }
    }
    Ok(shares)
}

/// [`split`] among parties `1..=n`.
///
/// # Errors
/// As [`split`].
pub fn split_n(
    secret: &[u8],
    threshold: u32,
    n: u32,
    rng: &mut impl CryptoRng,
) -> Result<Vec<Share>> {
    let xs: Vec<u32> = (1..=n).collect();
    split(secret, threshold, &xs, rng)
}

/// Lagrange coefficients for interpolation at 0 from a fixed set of points;
/// computed once and applied to every secret shared among the same parties.
#[derive(Debug, Clone)]
pub struct LagrangeAtZero {
    xs: Vec<u32>,
    coeffs: Vec<u64>,
}

impl LagrangeAtZero {
    /// Coefficients for the points `xs` (distinct, in `1..=max_x`).
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for a zero, out-of-range or repeated point.
    pub fn new(xs: &[u32], max_x: u32) -> Result<Self> {
        check_points(xs, max_x)?;
        // l_i(0) = prod_{j != i} x_j / (x_j - x_i)
        let coeffs = xs
            .iter()
            .enumerate()
            .map(|(i, &xi)| {
                let (mut num, mut den) = (1u64, 1u64);
                for (j, &xj) in xs.iter().enumerate() {
                    if i != j {
                        num = mul(num, u64::from(xj));
                        den = mul(den, sub(u64::from(xj), u64::from(xi)));
                    }
                }
                mul(num, inv(den))
            })
            .collect();
        Ok(Self {
            xs: xs.to_vec(),
            coeffs,
        })
    }

    /// The points, in order.
    pub fn points(&self) -> &[u32] {
        &self.xs
    }

    /// Interpolates the secret from `shares`, which must be at exactly
    /// [`Self::points`], in that order, and already validated.
    fn combine(
        &self,
        shares: &[&Share],
        secret_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, &'static str> {
        let chunks = chunks_for(secret_len);
        let mut out = Zeroizing::new(Vec::with_capacity(chunks * CHUNK_BYTES));
        for k in 0..chunks {
            let v = shares
                .iter()
                .zip(&self.coeffs)
                .fold(0, |acc, (s, &l)| add(acc, mul(s.y[k], l)));
            let width = if k + 1 == chunks {
                secret_len - k * CHUNK_BYTES
            } else {
                CHUNK_BYTES
            };
            if v >> (8 * width) != 0 {
                return Err("interpolated value out of range (too few or inconsistent shares)");
            }
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        Ok(out)
    }

    /// Reconstructs a `secret_len`-byte secret from shares at exactly these
    /// points (in the same order).
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for a malformed share or one at the wrong
    /// point; [`Error::Reconstruction`] if the result is not a valid secret.
    pub fn reconstruct(
        &self,
        shares: &[&Share],
        secret_len: usize,
        owner: ClientId,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if shares.len() != self.xs.len() {
            return Err(Error::NotEnoughShares {
                got: shares.len(),
                needed: self.xs.len(),
            });
        }
        let chunks = chunks_for(secret_len);
        for (s, &x) in shares.iter().zip(&self.xs) {
            s.validate(u32::MAX, chunks)?;
            if s.x != x {
                return Err(Error::InvalidShare {
                    x: s.x,
                    reason: "share is not at the expected point",
                });
            }
        }
        self.combine(shares, secret_len)
            .map_err(|reason| Error::Reconstruction {
                what: "secret",
                client: owner,
                reason,
            })
    }
}

/// Reconstructs a `secret_len`-byte secret from at least `threshold` shares
/// with points in `1..=max_x`. The first `threshold` shares are used.
///
/// # Errors
/// [`Error::NotEnoughShares`], [`Error::InvalidShare`] (zero, out-of-range or
/// duplicate `x`, wrong length, non-field value) or
/// [`Error::Reconstruction`] if the interpolated value is not a valid secret
/// (which is what too few or inconsistent shares almost always give).
pub fn reconstruct(
    shares: &[Share],
    threshold: u32,
    max_x: u32,
    secret_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let t = threshold as usize;
    if t == 0 || shares.len() < t {
        return Err(Error::NotEnoughShares {
            got: shares.len(),
            needed: t.max(1),
        });
    }
    let chunks = chunks_for(secret_len);
    for s in shares {
        s.validate(max_x, chunks)?;
    }
    let xs: Vec<u32> = shares.iter().map(Share::x).collect();
    check_points(&xs, max_x)?;
    let lagrange = LagrangeAtZero::new(&xs[..t], max_x)?;
    let used: Vec<&Share> = shares[..t].iter().collect();
    lagrange.reconstruct(&used, secret_len, ClientId(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn secret(rng: &mut ChaCha20Rng) -> [u8; 32] {
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        s
    }

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(P - 1, P - 1), 1);
        assert_eq!(add(P - 1, 1), 0);
        assert_eq!(sub(0, 1), P - 1);
        for a in [1u64, 2, 12345, P - 2, 1 << 60] {
            assert_eq!(mul(a, inv(a)), 1);
        }
    }

    #[test]
    fn any_t_of_n_reconstructs() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (t, n) = (3u32, 6u32);
        let s = secret(&mut rng);
        let shares = split_n(&s, t, n, &mut rng).unwrap();
        // every 3-subset
        for a in 0..n as usize {
            for b in a + 1..n as usize {
                for c in b + 1..n as usize {
                    let subset = vec![shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(&reconstruct(&subset, t, n, 32).unwrap()[..], &s[..]);
                }
            }
        }
        // more than t also works
        assert_eq!(&reconstruct(&shares, t, n, 32).unwrap()[..], &s[..]);
    }

    #[test]
    fn odd_lengths_and_large_party_counts() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for len in [0usize, 1, 6, 7, 8, 13, 14, 33] {
            let s: Vec<u8> = (0..len).map(|i| i as u8 ^ 0xA5).collect();
            let shares = split_n(&s, 2, 3, &mut rng).unwrap();
            assert_eq!(&reconstruct(&shares[1..], 2, 3, len).unwrap()[..], &s[..]);
        }
        // > 255 parties, points far apart
        let s = secret(&mut rng);
        let xs = [1u32, 300, 70_000, 1_000_000];
        let shares = split(&s, 3, &xs, &mut rng).unwrap();
        assert_eq!(
            &reconstruct(&shares[1..], 3, 1 << 20, 32).unwrap()[..],
            &s[..]
        );
    }

    #[test]
    fn t_minus_one_shares_do_not_give_the_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (t, n) = (4u32, 7u32);
        for _ in 0..20 {
            let s = secret(&mut rng);
            let shares = split_n(&s, t, n, &mut rng).unwrap();
            let few = shares[..3].to_vec();
            assert_eq!(
                reconstruct(&few, t, n, 32).unwrap_err().code(),
                "secagg.shamir.not_enough_shares"
            );
            // Pretending the threshold is t-1 interpolates the wrong polynomial.
            match reconstruct(&few, t - 1, n, 32) {
                Ok(v) => assert_ne!(&v[..], &s[..]),
                Err(e) => assert_eq!(e.code(), "secagg.shamir.reconstruction"),
            }
        }
    }

    #[test]
    fn bad_shares_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let s = secret(&mut rng);
        let shares = split_n(&s, 2, 4, &mut rng).unwrap();
        let code = |v: Vec<Share>| reconstruct(&v, 2, 4, 32).unwrap_err().code();
        // duplicate x
        assert_eq!(
            code(vec![shares[0].clone(), shares[0].clone()]),
            "secagg.shamir.invalid_share"
        );
        // zero x
        assert_eq!(
            code(vec![
                Share::new(0, shares[0].y().to_vec()),
                shares[1].clone()
            ]),
            "secagg.shamir.invalid_share"
        );
        // out of range x
        assert_eq!(
            code(vec![
                Share::new(5, shares[0].y().to_vec()),
                shares[1].clone()
            ]),
            "secagg.shamir.invalid_share"
        );
        // wrong length
        assert_eq!(
            code(vec![
                Share::new(1, shares[0].y()[..4].to_vec()),
                shares[1].clone()
            ]),
            "secagg.shamir.invalid_share"
        );
        // non-field value
        let mut y = shares[0].y().to_vec();
        y[0] = P;
        assert_eq!(
            code(vec![Share::new(1, y), shares[1].clone()]),
            "secagg.shamir.invalid_share"
        );
        // a tampered value: reconstruction error or a different secret
        let mut y = shares[0].y().to_vec();
        y[2] = add(y[2], 1);
        match reconstruct(&[Share::new(1, y), shares[1].clone()], 2, 4, 32) {
            Ok(v) => assert_ne!(&v[..], &s[..]),
            Err(e) => assert_eq!(e.code(), "secagg.shamir.reconstruction"),
        }
        // bad split arguments
        assert!(split(&s, 0, &[1, 2], &mut rng).is_err());
        assert!(split(&s, 3, &[1, 2], &mut rng).is_err());
        assert!(split(&s, 2, &[1, 1], &mut rng).is_err());
        assert!(split(&s, 2, &[0, 1], &mut rng).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let s = Share::new(3, vec![123_456_789, 987_654_321]);
        let d = format!("{s:?}");
        assert!(!d.contains("123456789") && d.contains("redacted"), "{d}");
    }
}
