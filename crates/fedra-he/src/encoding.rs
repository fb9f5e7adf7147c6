//! Fixed-point encoding of real numbers with explicit precision and
//! overflow detection.
//!
//! A real `x` is encoded as the integer `round(x · 2^frac_bits)` (an
//! [`Encoded`] value that remembers its `frac_bits`). Signed integers are
//! mapped into the scheme's ring by the scheme itself (negatives become
//! `n - |x|`, decryption reads residues above `n/2` as negative).
//!
//! Overflow detection:
//! * [`FixedPoint::encode`] rejects values whose scaled magnitude needs more
//!   than `max_encode_bits` bits.
//! * [`FixedPoint::decode`] rejects decrypted magnitudes of
//!   `max_decode_bits` bits or more. Homomorphic sums/products that wrap
//!   around the plaintext modulus come back as (centered) values of
//!   magnitude close to the modulus, far above the bound, so they surface
//!   as [`HeError::DecodeOverflow`] instead of a silently wrong number.
//!   This is guaranteed as long as the true result's magnitude is below
//!   `M - 2^max_decode_bits` (M = plaintext modulus), which holds for any
//!   realistic number of additions; use [`FixedPoint::check_capacity`] to
//!   ensure `max_decode_bits` is below the scheme's capacity.
//!
//! Scale tracking: multiplying two encoded values adds their `frac_bits`
//! ([`Encoded::checked_mul`]); a ciphertext multiplied by an encoded scalar
//! must be decoded with `frac_bits(ct) + frac_bits(scalar)` – the caller
//! tracks this (e.g. by keeping the `frac_bits` next to the ciphertext).

use crate::error::HeError;
use crate::plaintext::Plaintext;

/// A fixed-point integer: `value / 2^frac_bits`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encoded {
    value: Plaintext,
    frac_bits: u32,
}

impl Encoded {
    /// Wraps a raw integer with its scale.
    pub fn new(value: Plaintext, frac_bits: u32) -> Self {
        Encoded { value, frac_bits }
    }

    /// The scaled integer.
    pub fn value(&self) -> &Plaintext {
        &self.value
    }

    /// Consumes into the scaled integer.
    pub fn into_plaintext(self) -> Plaintext {
        self.value
    }

    /// Number of fractional bits (the scale exponent).
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Exact product; the scale is the sum of both scales.
    pub fn checked_mul(&self, other: &Encoded) -> Result<Encoded, HeError> {
        Ok(Encoded {
            value: self.value.checked_mul(&other.value)?,
            frac_bits: self.frac_bits + other.frac_bits,
        })
    }

    /// Exact sum; scales must match.
    pub fn checked_add(&self, other: &Encoded) -> Result<Encoded, HeError> {
        if self.frac_bits != other.frac_bits {
            return Err(HeError::ScaleMismatch {
                left: self.frac_bits,
                right: other.frac_bits,
            });
        }
        Ok(Encoded {
            value: self.value.checked_add(&other.value)?,
            frac_bits: self.frac_bits,
        })
    }
}

/// Fixed-point encoder configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPoint {
    frac_bits: u32,
    max_encode_bits: u32,
    max_decode_bits: u32,
}

impl FixedPoint {
    /// `frac_bits` fractional bits (precision `2^-frac_bits`); encoded
    /// magnitudes must be `< 2^max_encode_bits` (≤ 126); decoded magnitudes
    /// must be `< 2^max_decode_bits` (≥ `max_encode_bits`).
    pub fn new(
        frac_bits: u32,
        max_encode_bits: u32,
        max_decode_bits: u32,
    ) -> Result<Self, HeError> {
        if max_encode_bits == 0 || max_encode_bits > 126 {
            return Err(HeError::InvalidParameter {
                name: "max_encode_bits",
                reason: "must be in 1..=126",
            });
        }
        if frac_bits > 1000 {
            return Err(HeError::InvalidParameter {
                name: "frac_bits",
                reason: "must be at most 1000",
            });
        }
        if max_decode_bits < max_encode_bits {
            return Err(HeError::InvalidParameter {
                name: "max_decode_bits",
                reason: "must be at least max_encode_bits",
            });
        }
        Ok(FixedPoint {
            frac_bits,
            max_encode_bits,
            max_decode_bits,
        })
    }

    /// Precision in fractional bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Maximum encodable magnitude in bits (of the scaled integer).
    pub fn max_encode_bits(&self) -> u32 {
        self.max_encode_bits
    }

    /// Safe decoding bound in bits.
    pub fn max_decode_bits(&self) -> u32 {
        self.max_decode_bits
    }

    /// Largest real magnitude accepted by [`FixedPoint::encode`]
    /// (approximately `2^(max_encode_bits - frac_bits)`).
    pub fn max_abs_value(&self) -> f64 {
        2f64.powi(self.max_encode_bits as i32 - self.frac_bits as i32)
    }

    /// Checks that decoding bounds fit a scheme's plaintext capacity
    /// (`max_decode_bits < capacity_bits`, leaving room to detect wraps).
    pub fn check_capacity(&self, capacity_bits: u32) -> Result<(), HeError> {
        if self.max_decode_bits >= capacity_bits {
            return Err(HeError::InvalidParameter {
                name: "max_decode_bits",
                reason: "must be below the scheme's plaintext capacity",
            });
        }
        Ok(())
    }

    /// Encodes `x` as `round(x · 2^frac_bits)`.
    pub fn encode(&self, x: f64) -> Result<Encoded, HeError> {
        if !x.is_finite() {
            return Err(HeError::NonFinite);
        }
        let limit = 2f64.powi(self.max_encode_bits as i32);
        let scaled = (x * 2f64.powi(self.frac_bits as i32)).round();
        if !scaled.is_finite() || scaled.abs() >= limit {
            let bits = if scaled.is_finite() {
                (scaled.abs().log2().floor() as u32).saturating_add(1)
            } else {
                u32::MAX
            };
            return Err(HeError::EncodeOverflow {
                bits,
                max_bits: self.max_encode_bits,
            });
        }
        // |scaled| < 2^126, so the cast is exact.
        Ok(Encoded::new(
            Plaintext::from_i128(scaled as i128),
            self.frac_bits,
        ))
    }

    /// Encodes an integer exactly (scale `frac_bits`).
    pub fn encode_i64(&self, v: i64) -> Result<Encoded, HeError> {
        let scaled = i128::from(v)
            .checked_mul(1i128 << self.frac_bits.min(126))
            .filter(|_| self.frac_bits <= 126);
        match scaled {
            Some(s) if s.unsigned_abs() < (1u128 << self.max_encode_bits) => {
                Ok(Encoded::new(Plaintext::from_i128(s), self.frac_bits))
            }
            _ => Err(HeError::EncodeOverflow {
                bits: 64 + self.frac_bits,
                max_bits: self.max_encode_bits,
            }),
        }
    }

    /// Decodes an [`Encoded`] value, using its own scale.
    pub fn decode(&self, e: &Encoded) -> Result<f64, HeError> {
        self.decode_plaintext(&e.value, e.frac_bits)
    }

    /// Decodes a decrypted plaintext that carries `frac_bits` fractional
    /// bits (`self.frac_bits()` for plain sums, the sum of both scales after
    /// a multiplication). Errors with [`HeError::DecodeOverflow`] if the
    /// magnitude reaches `2^max_decode_bits`.
    pub fn decode_plaintext(&self, p: &Plaintext, frac_bits: u32) -> Result<f64, HeError> {
        let bits = p.bits();
        if bits > self.max_decode_bits {
            return Err(HeError::DecodeOverflow {
                bits,
                max_bits: self.max_decode_bits,
            });
        }
        Ok(p.to_f64_scaled(frac_bits))
    }
}
