//! Fixed-point quantization of `f32` model updates into `Z_{2^k}`.
//!
//! A value `x` is clipped to `[-c, c]`, scaled by `s` and rounded to an
//! integer `q` with `|q| <= M = ceil(c*s)`, then stored in two's complement in
//! `Z_{2^k}`. Summing `n` such vectors in the ring gives the exact integer sum
//! as long as it stays in `[-(2^(k-1) - 1), 2^(k-1) - 1]`, i.e. as long as
//! `n * M <= 2^(k-1) - 1`; [`QuantConfig::check`] refuses configurations
//! where it might not. [`QuantConfig::dequantize_sum`] reads the ring sum as
//! a signed integer and divides by `s`.
//!
//! # Error bound
//! For inputs already inside `[-c, c]` (clipping error aside):
//! - deterministic rounding (round to nearest, ties away from zero): each
//!   coordinate of each client is off by at most `1/(2s)`, so the
//!   dequantized sum of `n` clients is within `n/(2s)` of the true sum (and
//!   the mean within `1/(2s)`);
//! - stochastic rounding (`q = floor(xs)` or `floor(xs)+1` with probability
//!   equal to the fractional part): unbiased, each error below `1/s`, so the
//!   sum is within `n/s` and its error has variance at most `n/(4s^2)`.
//!
//! The `f64` arithmetic adds a relative error of about `2^-52`, negligible
//! for any admissible `c*s < 2^63`.
//!
//! # Weighted FedAvg
//! FedAvg wants `Σ w_u x_u / Σ w_u` with integer weights such as sample
//! counts. Each client quantizes with [`QuantConfig::quantize_weighted`],
//! which multiplies its integer vector by its own `w_u` (so `|w_u q_u| <= w_u
//! M`); the protocol sums as usual; the server divides by the total weight
//! with [`QuantConfig::dequantize_weighted_mean`]. No wrap is possible when
//! `W * M <= 2^(k-1) - 1` for the largest possible total weight `W`
//! ([`QuantConfig::check_weighted`]). The total weight is public here; if it
//! must stay private, append a coordinate carrying `w_u` to every vector and
//! divide by the aggregated coordinate instead.

use rand_core::CryptoRng;

use crate::error::{Error, Result};
use crate::ring::{Ring, RingVec};

/// How values are rounded to integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Round to nearest, ties away from zero (deterministic).
    Nearest,
    /// Randomized rounding, unbiased; needs an RNG.
    Stochastic,
}

/// Clip bound, scale and ring of the fixed-point encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantConfig {
    /// Clip bound `c > 0`: inputs are clamped to `[-c, c]`.
    pub clip: f32,
    /// Scale `s > 0`: `q = round(x * s)`.
    pub scale: f64,
    /// Target ring.
    pub ring: Ring,
}

fn limit(ring: Ring) -> u128 {
    (1u128 << (ring.bits() - 1)) - 1
}

impl QuantConfig {
    /// Checks and builds a configuration.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] unless `clip` and `scale` are finite and
    /// positive and a single clipped value fits the ring
    /// (`ceil(c*s) <= 2^(k-1) - 1`).
    pub fn new(clip: f32, scale: f64, ring: Ring) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0 && scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidParams {
                reason: format!("clip ({clip}) and scale ({scale}) must be finite and positive"),
            });
        }
        let c = Self { clip, scale, ring };
        let m = (f64::from(clip) * scale).ceil();
        if !(1.0..2f64.powi(ring.bits() as i32 - 1)).contains(&m) {
            return Err(Error::InvalidParams {
                reason: format!(
                    "clip * scale = {} must lie in [1, 2^{}-1]",
                    f64::from(clip) * scale,
                    ring.bits() - 1
                ),
            });
        }
        Ok(c)
    }

    /// The largest scale (a power of two, so that scaling is exact) for
    /// which `n_clients` clipped inputs cannot wrap.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] if even scale 1 would wrap, or bad `clip`.
    pub fn max_safe(n_clients: u64, clip: f32, ring: Ring) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) || n_clients == 0 {
            return Err(Error::InvalidParams {
                reason: format!(
                    "clip ({clip}) must be finite and positive and n_clients ({n_clients}) non-zero"
                ),
            });
        }
        let per_client = limit(ring) / u128::from(n_clients);
        if per_client == 0 {
            return Err(Error::InvalidParams {
                reason: format!("{n_clients} clients cannot share {ring} without wrapping"),
            });
        }
        // largest power of two s with ceil(c*s) <= per_client
        let mut exp = (per_client as f64 / f64::from(clip)).log2().floor() as i32;
        loop {
            let scale = 2f64.powi(exp);
            let c = Self::new(clip, scale, ring);
            if let Ok(c) = c
                && c.check(n_clients).is_ok()
            {
                return Ok(c);
            }
            exp -= 1;
            if exp < -1074 {
                return Err(Error::InvalidParams {
                    reason: format!("no scale fits {n_clients} clients with clip {clip} in {ring}"),
                });
            }
        }
    }

    /// `M`: the largest |quantized value| of one client before weighting.
    pub fn max_abs_quantized(&self) -> u64 {
        (f64::from(self.clip) * self.scale).ceil() as u64
    }

    /// Refuses configurations where the sum of `n_clients` clipped inputs
    /// could wrap around the ring.
    ///
    /// # Errors
    /// [`Error::QuantOverflow`] with the numbers.
    pub fn check(&self, n_clients: u64) -> Result<()> {
        self.check_total(n_clients, n_clients)
    }

    /// As [`Self::check`] for weighted inputs whose integer weights add up
    /// to at most `total_weight`.
    ///
    /// # Errors
    /// [`Error::QuantOverflow`] with the numbers.
    pub fn check_weighted(&self, n_clients: u64, total_weight: u64) -> Result<()> {
        self.check_total(n_clients, total_weight)
    }

    fn check_total(&self, n_clients: u64, total_weight: u64) -> Result<()> {
        let m = self.max_abs_quantized();
        let max_abs_sum = u128::from(m) * u128::from(total_weight);
        let lim = limit(self.ring);
        if max_abs_sum > lim {
            return Err(Error::QuantOverflow {
                n_clients,
                total_weight,
                max_abs_quantized: m,
                max_abs_sum,
                limit: lim,
                ring_bits: self.ring.bits(),
                clip: self.clip,
                scale: self.scale,
            });
        }
        Ok(())
    }

    fn scaled<'a>(&'a self, x: &'a [f32]) -> Result<impl Iterator<Item = f64> + 'a> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        let c = f64::from(self.clip);
        Ok(x.iter()
            .map(move |&v| f64::from(v).clamp(-c, c) * self.scale))
    }

    fn encode_ring(&self, q: impl Iterator<Item = i64>, weight: u64) -> RingVec {
        // Two's complement: the cast to unsigned of the wrapping product is
        // the residue mod 2^64, truncated to 2^32 for the smaller ring.
        let w = weight as i64;
        match self.ring {
            Ring::U32 => RingVec::U32(q.map(|v| v.wrapping_mul(w) as u32).collect()),
            Ring::U64 => RingVec::U64(q.map(|v| v.wrapping_mul(w) as u64).collect()),
        }
    }

    /// Quantizes with deterministic rounding.
    ///
    /// # Errors
    /// [`Error::NonFiniteInput`] for NaN or infinity.
    pub fn quantize(&self, x: &[f32]) -> Result<RingVec> {
        self.quantize_weighted(x, 1)
    }

    /// Quantizes with deterministic rounding and multiplies by an integer
    /// weight (e.g. the client's sample count); see the module docs.
    ///
    /// # Errors
    /// [`Error::NonFiniteInput`] for NaN or infinity; [`Error::InvalidParams`]
    /// for a weight above `i64::MAX`.
    pub fn quantize_weighted(&self, x: &[f32], weight: u64) -> Result<RingVec> {
        check_weight(weight)?;
        let q = self.scaled(x)?.map(|v| v.round() as i64);
        Ok(self.encode_ring(q, weight))
    }

    /// Quantizes with unbiased stochastic rounding drawn from `rng`, times
    /// an integer weight (1 for unweighted).
    ///
    /// # Errors
    /// As [`Self::quantize_weighted`].
    pub fn quantize_stochastic(
        &self,
        x: &[f32],
        weight: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<RingVec> {
        check_weight(weight)?;
        let q: Vec<i64> = self
            .scaled(x)?
            .map(|v| {
                let floor = v.floor();
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                (if u < v - floor { floor + 1.0 } else { floor }) as i64
            })
            .collect();
        Ok(self.encode_ring(q.into_iter(), weight))
    }

    /// Quantizes with the given rounding mode; `rng` is used only for
    /// [`Rounding::Stochastic`].
    ///
    /// # Errors
    /// As [`Self::quantize_weighted`].
    pub fn quantize_with(
        &self,
        x: &[f32],
        weight: u64,
        rounding: Rounding,
        rng: &mut impl CryptoRng,
    ) -> Result<RingVec> {
        match rounding {
            Rounding::Nearest => self.quantize_weighted(x, weight),
            Rounding::Stochastic => self.quantize_stochastic(x, weight, rng),
        }
    }

    /// Reads a ring sum as signed integers and divides by the scale: the sum
    /// of the (clipped, weighted) inputs.
    ///
    /// # Errors
    /// [`Error::RingMismatch`] if the vector is over another ring.
    pub fn dequantize_sum(&self, sum: &RingVec) -> Result<Vec<f64>> {
        let inv = 1.0 / self.scale;
        match (sum, self.ring) {
            (RingVec::U32(v), Ring::U32) => {
                Ok(v.iter().map(|&x| f64::from(x as i32) * inv).collect())
            }
            (RingVec::U64(v), Ring::U64) => {
                Ok(v.iter().map(|&x| (x as i64) as f64 * inv).collect())
            }
            _ => Err(Error::RingMismatch {
                expected: self.ring,
                got: sum.ring(),
            }),
        }
    }

    /// The weighted mean `Σ w_u x_u / Σ w_u` from a ring sum of
    /// [`Self::quantize_weighted`] vectors.
    ///
    /// # Errors
    /// [`Error::RingMismatch`]; [`Error::InvalidParams`] for a zero weight.
    pub fn dequantize_weighted_mean(&self, sum: &RingVec, total_weight: u64) -> Result<Vec<f64>> {
        if total_weight == 0 {
            return Err(Error::InvalidParams {
                reason: "total weight is zero".into(),
            });
        }
        let w = total_weight as f64;
        Ok(self
            .dequantize_sum(sum)?
            .into_iter()
            .map(|v| v / w)
            .collect())
    }
}

fn check_weight(weight: u64) -> Result<()> {
    if i64::try_from(weight).is_err() {
        return Err(Error::InvalidParams {
            reason: format!("weight {weight} exceeds i64::MAX"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn random_inputs(rng: &mut ChaCha20Rng, n: usize, dim: usize, c: f32) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) as f32 * c)
                    .collect()
            })
            .collect()
    }

    fn ring_sum(vs: &[RingVec], ring: Ring, dim: usize) -> RingVec {
        RingVec::wrapping_sum(ring, dim, vs).unwrap()
    }

    #[test]
    fn round_trip_error_bound_nearest_and_stochastic() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (n, dim, clip) = (20usize, 200usize, 2.5f32);
        for ring in [Ring::U32, Ring::U64] {
            let q = QuantConfig::max_safe(n as u64, clip, ring).unwrap();
            q.check(n as u64).unwrap();
            let xs = random_inputs(&mut rng, n, dim, clip);
            let truth: Vec<f64> = (0..dim)
                .map(|i| xs.iter().map(|x| f64::from(x[i])).sum())
                .collect();
            for rounding in [Rounding::Nearest, Rounding::Stochastic] {
                let enc: Vec<RingVec> = xs
                    .iter()
                    .map(|x| q.quantize_with(x, 1, rounding, &mut rng).unwrap())
                    .collect();
                let got = q.dequantize_sum(&ring_sum(&enc, ring, dim)).unwrap();
                let bound = match rounding {
                    Rounding::Nearest => n as f64 / (2.0 * q.scale),
                    Rounding::Stochastic => n as f64 / q.scale,
                } * (1.0 + 1e-9);
                for (g, t) in got.iter().zip(&truth) {
                    assert!(
                        (g - t).abs() <= bound,
                        "{ring} {rounding:?}: |{g} - {t}| > {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn clipping_and_extremes_do_not_wrap() {
        let n = 1000u64;
        let q = QuantConfig::max_safe(n, 1.0, Ring::U32).unwrap();
        let big = q.quantize(&[1e30, -1e30, 1.0, -1.0]).unwrap();
        let sum = ring_sum(&vec![big; n as usize], Ring::U32, 4);
        let got = q.dequantize_sum(&sum).unwrap();
        for (g, want) in got.iter().zip([1000.0, -1000.0, 1000.0, -1000.0]) {
            assert!(
                (g - want).abs() <= n as f64 / (2.0 * q.scale) + 1e-9,
                "{g} vs {want}"
            );
        }
        assert_eq!(
            q.quantize(&[0.0, f32::NAN]).unwrap_err().code(),
            "secagg.quant.non_finite"
        );
    }

    #[test]
    fn wrap_check_refuses() {
        // 2^31 - 1 = 2147483647; 1000 clients * ceil(1.0 * 2^22) = 4.19e9 > limit
        let q = QuantConfig::new(1.0, (1u64 << 22) as f64, Ring::U32).unwrap();
        let e = q.check(1000).unwrap_err();
        assert_eq!(e.code(), "secagg.quant.overflow");
        match e {
            Error::QuantOverflow {
                max_abs_quantized,
                max_abs_sum,
                limit,
                ..
            } => {
                assert_eq!(max_abs_quantized, 1 << 22);
                assert_eq!(max_abs_sum, 1000 << 22);
                assert_eq!(limit, (1 << 31) - 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(q.check(511).is_ok());
        assert!(q.check(512).is_err()); // 512 * 2^22 = 2^31 > 2^31 - 1
        assert!(QuantConfig::new(1.0, 1e30, Ring::U64).is_err());
        assert!(QuantConfig::new(0.0, 1.0, Ring::U64).is_err());
        assert!(QuantConfig::new(1.0, f64::NAN, Ring::U64).is_err());
        assert!(q.check_weighted(3, 600).is_err());
    }

    #[test]
    fn weighted_fedavg_example() {
        // Three clients with 10, 30 and 60 samples: FedAvg weights 0.1/0.3/0.6.
        let xs = [vec![1.0f32, -0.5], vec![0.5, 0.25], vec![-0.25, 1.0]];
        let w = [10u64, 30, 60];
        let total: u64 = w.iter().sum();
        let q = QuantConfig::new(1.0, (1u64 << 40) as f64, Ring::U64).unwrap();
        q.check_weighted(3, total).unwrap();
        let enc: Vec<RingVec> = xs
            .iter()
            .zip(w)
            .map(|(x, w)| q.quantize_weighted(x, w).unwrap())
            .collect();
        let mean = q
            .dequantize_weighted_mean(&ring_sum(&enc, Ring::U64, 2), total)
            .unwrap();
        let want = [
            0.1 * 1.0 + 0.3 * 0.5 + 0.6 * -0.25,
            0.1 * -0.5 + 0.3 * 0.25 + 0.6 * 1.0,
        ];
        for (g, t) in mean.iter().zip(want) {
            assert!((g - t).abs() < 1e-9, "{g} vs {t}");
        }
        // The same weights would wrap in the small ring at this scale.
        let q32 = QuantConfig::new(1.0, (1u64 << 25) as f64, Ring::U32).unwrap();
        assert!(q32.check(3).is_ok());
        assert_eq!(
            q32.check_weighted(3, total).unwrap_err().code(),
            "secagg.quant.overflow"
        );
    }
}
