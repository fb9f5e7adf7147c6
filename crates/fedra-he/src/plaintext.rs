//! Signed big-integer plaintexts.
//!
//! A [`Plaintext`] is a signed integer (sign + big-endian magnitude). Each
//! scheme maps it into its plaintext ring: Paillier uses the residue
//! `m mod n` (negatives become `n - |m|`, see [`Plaintext::to_residue_be`]) and
//! decryption interprets residues above `n/2` as negative
//! ([`Plaintext::from_residue_centered_be`]); Okamoto–Uchiyama does the same
//! modulo its secret prime `p`.

use std::cmp::Ordering;
use std::fmt;

use crate::bn::{Nat, with_ctx};
use crate::error::HeError;

/// A signed arbitrary-precision integer used as plaintext.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Plaintext {
    negative: bool,
    /// Big-endian magnitude without leading zeros (empty for zero).
    magnitude: Vec<u8>,
}

fn strip(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).map(<[u8]>::to_vec).unwrap_or_default()
}

impl Plaintext {
    /// Zero.
    pub fn zero() -> Self {
        Self::default()
    }

    /// From sign and big-endian magnitude (leading zeros allowed). Negative
    /// zero is normalised to zero.
    pub fn from_sign_magnitude_be(negative: bool, magnitude: &[u8]) -> Self {
        let magnitude = strip(magnitude);
        let negative = negative && !magnitude.is_empty();
        Plaintext {
            negative,
            magnitude,
        }
    }

    /// From a signed 64-bit integer.
    pub fn from_i64(v: i64) -> Self {
        Self::from_sign_magnitude_be(v < 0, &v.unsigned_abs().to_be_bytes())
    }

    /// From an unsigned 64-bit integer.
    pub fn from_u64(v: u64) -> Self {
        Self::from_sign_magnitude_be(false, &v.to_be_bytes())
    }

    /// From a signed 128-bit integer.
    pub fn from_i128(v: i128) -> Self {
        Self::from_sign_magnitude_be(v < 0, &v.unsigned_abs().to_be_bytes())
    }

    /// From an unsigned 128-bit integer.
    pub fn from_u128(v: u128) -> Self {
        Self::from_sign_magnitude_be(false, &v.to_be_bytes())
    }

    /// True for values < 0.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True for 0.
    pub fn is_zero(&self) -> bool {
        self.magnitude.is_empty()
    }

    /// Big-endian magnitude without leading zeros (empty for zero).
    pub fn magnitude_be(&self) -> &[u8] {
        &self.magnitude
    }

    /// Number of bits of the magnitude (0 for zero).
    pub fn bits(&self) -> u32 {
        match self.magnitude.first() {
            None => 0,
            Some(&b) => (self.magnitude.len() as u32 - 1) * 8 + (8 - b.leading_zeros()),
        }
    }

    /// The value as `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        self.to_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        let m = self.magnitude_u128()?;
        if self.negative {
            if m == 1u128 << 127 {
                Some(i128::MIN)
            } else {
                i128::try_from(m).ok().map(|v| -v)
            }
        } else {
            i128::try_from(m).ok()
        }
    }

    /// The magnitude as `u128`, if it fits.
    pub fn magnitude_u128(&self) -> Option<u128> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut buf = [0u8; 16];
        let start = 16 - self.magnitude.len();
        buf.get_mut(start..)?.copy_from_slice(&self.magnitude);
        Some(u128::from_be_bytes(buf))
    }

    /// The value as a non-negative `u128`, if it is non-negative and fits.
    pub fn to_u128(&self) -> Option<u128> {
        if self.negative {
            None
        } else {
            self.magnitude_u128()
        }
    }

    /// Approximate value as `f64` divided by `2^frac_bits` (correctly
    /// handles magnitudes far beyond 64 bits).
    pub fn to_f64_scaled(&self, frac_bits: u32) -> f64 {
        let bits = self.bits();
        let mag = if bits <= 64 {
            let mut buf = [0u8; 8];
            let start = 8 - self.magnitude.len();
            if let Some(dst) = buf.get_mut(start..) {
                dst.copy_from_slice(&self.magnitude);
            }
            pow2(u64::from_be_bytes(buf) as f64, -(i64::from(frac_bits)))
        } else {
            // Top 64 bits, then scale by the remaining exponent.
            let shift = bits - 64;
            let top = self.shr_u64(shift);
            pow2(top as f64, i64::from(shift) - i64::from(frac_bits))
        };
        if self.negative { -mag } else { mag }
    }

    fn shr_u64(&self, shift: u32) -> u64 {
        // Extract bits [shift, shift + 64) of the magnitude.
        let mut out = 0u64;
        let len = self.magnitude.len() as u32;
        for i in (0..64u32).rev() {
            let bit = shift + i;
            let byte_from_end = bit / 8;
            if byte_from_end >= len {
                continue;
            }
            let idx = (len - 1 - byte_from_end) as usize;
            let b = self.magnitude.get(idx).copied().unwrap_or(0);
            if (b >> (bit % 8)) & 1 == 1 {
                out |= 1u64 << i;
            }
        }
        out
    }

    /// Compares magnitudes.
    pub fn cmp_magnitude(&self, other: &Plaintext) -> Ordering {
        self.magnitude
            .len()
            .cmp(&other.magnitude.len())
            .then_with(|| self.magnitude.cmp(&other.magnitude))
    }

    /// Negation.
    pub fn neg(&self) -> Plaintext {
        Plaintext {
            negative: !self.negative && !self.magnitude.is_empty(),
            magnitude: self.magnitude.clone(),
        }
    }

    /// Exact product (used for scale tracking of fixed-point values).
    pub fn checked_mul(&self, other: &Plaintext) -> Result<Plaintext, HeError> {
        let a = self.magnitude_nat()?;
        let b = other.magnitude_nat()?;
        let p = with_ctx(|ctx| a.mul(&b, ctx))?;
        Ok(Plaintext::from_sign_magnitude_be(
            self.negative != other.negative,
            &p.to_be(),
        ))
    }

    /// Exact sum.
    pub fn checked_add(&self, other: &Plaintext) -> Result<Plaintext, HeError> {
        let a = self.magnitude_nat()?;
        let b = other.magnitude_nat()?;
        if self.negative == other.negative {
            return Ok(Plaintext::from_sign_magnitude_be(
                self.negative,
                &a.add(&b)?.to_be(),
            ));
        }
        match a.ucmp(&b) {
            Ordering::Less => Ok(Plaintext::from_sign_magnitude_be(
                other.negative,
                &b.sub(&a)?.to_be(),
            )),
            _ => Ok(Plaintext::from_sign_magnitude_be(
                self.negative,
                &a.sub(&b)?.to_be(),
            )),
        }
    }

    /// Maps the value into `[0, modulus)`: non-negative `m` stays `m`,
    /// negative `m` becomes `modulus - |m|`. Requires `|m| <= (modulus-1)/2`
    /// so that [`Plaintext::from_residue_centered_be`] inverts it.
    pub fn to_residue_be(&self, modulus_be: &[u8]) -> Result<Vec<u8>, HeError> {
        let n = Nat::from_be(modulus_be)?;
        Ok(self.to_residue(&n)?.to_be())
    }

    /// Inverse of [`Plaintext::to_residue_be`]: residues `r > modulus/2`
    /// (more precisely `r > (modulus-1)/2`) are read as `r - modulus`.
    pub fn from_residue_centered_be(
        residue_be: &[u8],
        modulus_be: &[u8],
    ) -> Result<Plaintext, HeError> {
        let n = Nat::from_be(modulus_be)?;
        let r = Nat::from_be(residue_be)?;
        if r.ucmp(&n) != Ordering::Less {
            return Err(HeError::InvalidParameter {
                name: "residue",
                reason: "residue must be below the modulus",
            });
        }
        let half = n.shr(1)?;
        Plaintext::from_residue_centered(&r, &n, &half)
    }

    pub(crate) fn magnitude_nat(&self) -> Result<Nat, HeError> {
        Nat::from_be(&self.magnitude)
    }

    /// Residue in `[0, n)`; errors if `|m| > (n-1)/2`.
    pub(crate) fn to_residue(&self, n: &Nat) -> Result<Nat, HeError> {
        let mag = self.magnitude_nat()?;
        let half = n.shr(1)?; // (n-1)/2 for odd n
        if mag.ucmp(&half) == Ordering::Greater {
            return Err(HeError::PlaintextOutOfRange {
                bits: self.bits(),
                capacity_bits: half.bits().saturating_sub(1),
            });
        }
        if self.negative { n.sub(&mag) } else { Ok(mag) }
    }

    /// Centered lift of a residue `r` in `[0, n)` given `half = floor(n/2)`.
    pub(crate) fn from_residue_centered(
        r: &Nat,
        n: &Nat,
        half: &Nat,
    ) -> Result<Plaintext, HeError> {
        if r.ucmp(half) == Ordering::Greater {
            Ok(Plaintext::from_sign_magnitude_be(true, &n.sub(r)?.to_be()))
        } else {
            Ok(Plaintext::from_sign_magnitude_be(false, &r.to_be()))
        }
    }
}

fn pow2(x: f64, exp: i64) -> f64 {
    // Multiply in steps so that intermediate powers stay finite.
    let mut v = x;
    let mut e = exp;
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    // |e| <= 1000 fits in i32.
    v * 2f64.powi(e as i32)
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_i128() {
            Some(v) => write!(f, "Plaintext({v})"),
            None => {
                write!(f, "Plaintext({}0x", if self.negative { "-" } else { "" })?;
                for b in &self.magnitude {
                    write!(f, "{b:02x}")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl From<i64> for Plaintext {
    fn from(v: i64) -> Self {
        Plaintext::from_i64(v)
    }
}

impl From<u64> for Plaintext {
    fn from(v: u64) -> Self {
        Plaintext::from_u64(v)
    }
}

impl From<i32> for Plaintext {
    fn from(v: i32) -> Self {
        Plaintext::from_i64(i64::from(v))
    }
}

impl From<u32> for Plaintext {
    fn from(v: u32) -> Self {
        Plaintext::from_u64(u64::from(v))
    }
}

impl From<i128> for Plaintext {
    fn from(v: i128) -> Self {
        Plaintext::from_i128(v)
    }
}

impl From<u128> for Plaintext {
    fn from(v: u128) -> Self {
        Plaintext::from_u128(v)
    }
}
