//! Mechanisms: Gaussian noise, L2 clipping, and the DP-SGD aggregation step
//! (per-example and micro-batch clipping, sum, noise, normalisation).
//!
//! Randomness is always passed in as a cryptographically secure generator,
//! `&mut impl rand_core::CryptoRng` — in rand_core 0.9 `CryptoRng: RngCore`, so this is
//! the house `&mut (impl CryptoRng + RngCore)` (clippy's `implied_bounds_in_impls`
//! rejects spelling out the redundant `+ RngCore`). Nothing here creates or seeds a
//! generator; a `&mut dyn`-style generator works through rand_core's `&mut R` impls.
//!
//! ## Normal sampling
//! Standard normals come from the Box–Muller transform applied to two uniforms built
//! from 53 random bits each (`u₁ ∈ (0, 1]`, `u₂ ∈ [0, 1)`); both outputs of each pair
//! are used. It is implemented here rather than taken from `rand_distr` because
//! `rand_distr`'s rand_core-0.9 line is not in the workspace's lock file (pulling
//! `rand` 0.9 for it), its ziggurat sampler is tuned for speed over a documented
//! bit budget, and a few lines of Box–Muller are easy to audit: every draw consumes
//! exactly two `u64`s and the largest magnitude it can produce is `√(2·53·ln 2) ≈ 8.57`
//! standard deviations. Results are deterministic for a given generator state, but
//! `ln`/`sin`/`cos` come from the platform's math library, so the last bits may
//! differ between platforms.
//!
//! ## Floating-point caveat (Mironov 2012)
//! The privacy analysis ([`crate::rdp`]) assumes *real-valued* Gaussian noise. This
//! module adds *floating-point* samples, which are not exactly Gaussian: the set of
//! representable outputs `x + noise` depends on `x`, so for some outputs an observer
//! can tell neighbouring inputs apart with certainty (I. Mironov, "On significance of
//! the least significant bits for differential privacy", CCS 2012 — shown for Laplace,
//! and the argument applies to Gaussian samplers as well). The Box–Muller tails are
//! also truncated at ≈ 8.57σ. The standard remedies — the snapping mechanism, or the
//! discrete Gaussian on a grid (Canonne, Kamath & Steinke 2020) — are **not**
//! implemented; treat the guarantee as holding for the idealised mechanism, which is
//! also what Opacus and TF Privacy provide. Timing is not constant either.
//!
//! ## Non-finite inputs
//! A NaN or infinite coordinate would propagate through clipping into the released
//! value, so every function that clips rejects it with [`DpError::NonFiniteInput`]
//! (row and column given); drop or zero such examples before aggregating.

use rand_core::CryptoRng;

use crate::error::{DpError, Result, check_noise_multiplier};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The floating-point element types the mechanisms accept (`f32`, `f64`). All
/// arithmetic is done in `f64`; results are rounded to the element type once.
pub trait Scalar: sealed::Sealed + Copy + Send + Sync + 'static {
    /// Machine epsilon of the type, as `f64`.
    const EPSILON: f64;
    /// Widens to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Rounds from `f64` to the nearest value of the type.
    fn from_f64(v: f64) -> Self;
}

impl Scalar for f32 {
    const EPSILON: f64 = f32::EPSILON as f64;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Scalar for f64 {
    const EPSILON: f64 = f64::EPSILON;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// 2⁻⁵³.
const TWO_POW_M53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// Box–Muller: two independent standard normals from two 53-bit uniforms.
fn standard_normal_pair(rng: &mut impl CryptoRng) -> (f64, f64) {
    // u1 ∈ (0, 1] so ln(u1) is finite; u2 ∈ [0, 1).
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
    let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Adds independent `N(0, std²)` noise to every element of `values` (in `f64`, then
/// rounded to the element type). `std = 0` leaves `values` untouched.
///
/// See the [module docs](self) for the sampler and the floating-point caveat.
///
/// # Errors
/// [`DpError::InvalidParameter`] unless `std` is finite and `>= 0`.
///
/// # Example
/// ```
/// use rand_chacha::ChaCha20Rng;
/// use rand_core::SeedableRng;
/// let mut rng = ChaCha20Rng::seed_from_u64(7);
/// let mut update = vec![0.5f32; 4];
/// fedra_dp::add_gaussian_noise(&mut update, 0.1, &mut rng)?;
/// assert!(update.iter().all(|v| (v - 0.5).abs() < 0.1 * 8.6));
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn add_gaussian_noise<T: Scalar>(
    values: &mut [T],
    std: f64,
    rng: &mut impl CryptoRng,
) -> Result<()> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(DpError::invalid("std", std, "finite and >= 0"));
    }
    if std == 0.0 {
        return Ok(());
    }
    let mut pairs = values.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (z0, z1) = standard_normal_pair(rng);
        pair[0] = T::from_f64(pair[0].to_f64() + std * z0);
        pair[1] = T::from_f64(pair[1].to_f64() + std * z1);
    }
    if let [last] = pairs.into_remainder() {
        let (z0, _) = standard_normal_pair(rng);
        *last = T::from_f64(last.to_f64() + std * z0);
    }
    Ok(())
}

/// Checks every value is finite; `row` is reported in the error.
fn check_finite<T: Scalar>(values: &[T], row: usize) -> Result<()> {
    match values.iter().position(|v| !v.to_f64().is_finite()) {
        None => Ok(()),
        Some(column) => Err(DpError::NonFiniteInput {
            row,
            column,
            value: format!("{:?}", values[column].to_f64()),
        }),
    }
}

/// The L2 norm of `values`, computed in `f64` without overflow or underflow (values
/// are rescaled by the largest magnitude when the plain sum of squares would leave the
/// normal range). NaN if a value is NaN.
pub fn l2_norm<T: Scalar>(values: &[T]) -> f64 {
    let sum: f64 = values.iter().map(|v| v.to_f64() * v.to_f64()).sum();
    if sum.is_finite() && sum >= f64::MIN_POSITIVE * 4_503_599_627_370_496.0 {
        return sum.sqrt();
    }
    let max = values.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    if max == 0.0 || !max.is_finite() {
        return if max.is_nan() { f64::NAN } else { max };
    }
    let scaled: f64 = values
        .iter()
        .map(|v| {
            let x = v.to_f64() / max;
            x * x
        })
        .sum();
    max * scaled.sqrt()
}

fn check_clip_norm(max_norm: f64) -> Result<()> {
    if max_norm.is_finite() && max_norm >= 0.0 {
        Ok(())
    } else {
        Err(DpError::invalid("clip_norm", max_norm, "finite and >= 0"))
    }
}

/// Clips `values` in place to L2 norm at most `max_norm` and returns the norm it had
/// before. A vector already within the bound is left bit-for-bit unchanged; otherwise
/// it is scaled by `max_norm / norm`, and if rounding (to `f32`, say) leaves the
/// result's [`l2_norm`] above `max_norm`, it is shrunk by a few ulps more — so
/// afterwards `l2_norm(values) <= max_norm` holds exactly, as the sensitivity bound
/// requires.
///
/// # Errors
/// [`DpError::InvalidParameter`] unless `max_norm` is finite and `>= 0`;
/// [`DpError::NonFiniteInput`] (row 0) for a NaN or infinite value.
///
/// # Example
/// ```
/// let mut g = vec![3.0f64, 4.0];
/// let norm = fedra_dp::clip_l2(&mut g, 1.0)?;
/// assert_eq!(norm, 5.0);
/// assert!(fedra_dp::l2_norm(&g) <= 1.0);
/// assert!((g[0] - 0.6).abs() < 1e-15 && (g[1] - 0.8).abs() < 1e-15);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn clip_l2<T: Scalar>(values: &mut [T], max_norm: f64) -> Result<f64> {
    check_clip_norm(max_norm)?;
    check_finite(values, 0)?;
    clip_unchecked(values, max_norm)
}

/// [`clip_l2`] after validation.
fn clip_unchecked<T: Scalar>(values: &mut [T], max_norm: f64) -> Result<f64> {
    let norm = l2_norm(values);
    if norm <= max_norm {
        return Ok(norm);
    }
    let mut factor = max_norm / norm;
    // Each pass shrinks by a few more ulps of the element type; two passes suffice in
    // practice, the bound only guards the loop.
    for attempt in 0..64 {
        for v in values.iter_mut() {
            *v = T::from_f64(v.to_f64() * factor);
        }
        let now = l2_norm(values);
        if now <= max_norm {
            return Ok(norm);
        }
        factor = (max_norm / now) * (1.0 - T::EPSILON * f64::from(2 + attempt));
    }
    // Unreachable for finite input; zeroing is the safe fallback.
    values.iter_mut().for_each(|v| *v = T::from_f64(0.0));
    Ok(norm)
}

/// Parameters of the noisy DP-SGD aggregation step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoisyAggregation {
    /// L2 clipping norm C (the sensitivity of the sum); finite, `> 0`.
    pub clip_norm: f64,
    /// Noise multiplier σ: the sum gets `N(0, σ²C²)` noise per coordinate; finite,
    /// `>= 0`. This is the σ to give the accountant.
    pub noise_multiplier: f64,
    /// The public divisor applied after the noise; finite, `> 0`. Use the **expected**
    /// batch size `q·N` (per-example clipping) or the expected number of micro-batches
    /// (micro-batch clipping) — never the actual count, which under Poisson sampling
    /// and the add-or-remove relation depends on the private data (Opacus does the
    /// same).
    pub denominator: f64,
}

impl NoisyAggregation {
    fn validate(&self) -> Result<()> {
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return Err(DpError::invalid(
                "clip_norm",
                self.clip_norm,
                "finite and > 0",
            ));
        }
        check_noise_multiplier("noise_multiplier", self.noise_multiplier)?;
        if !(self.denominator.is_finite() && self.denominator > 0.0) {
            return Err(DpError::invalid(
                "denominator",
                self.denominator,
                "finite and > 0",
            ));
        }
        Ok(())
    }
}

fn check_shape(len: usize, dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(DpError::invalid("dim", dim, ">= 1"));
    }
    if !len.is_multiple_of(dim) {
        return Err(DpError::ShapeMismatch { len, dim });
    }
    Ok(())
}

/// Noise and normalise a clipped sum, rounding to the element type.
fn finish<T: Scalar>(
    mut sum: Vec<f64>,
    p: &NoisyAggregation,
    rng: &mut impl CryptoRng,
) -> Result<Vec<T>> {
    add_gaussian_noise(&mut sum, p.noise_multiplier * p.clip_norm, rng)?;
    Ok(sum
        .into_iter()
        .map(|s| T::from_f64(s / p.denominator))
        .collect())
}

/// The DP-SGD aggregation step: clips each row of the row-major matrix
/// `per_example` (one per-example gradient of width `dim` per row) to L2 norm
/// `clip_norm`, sums the rows, adds `N(0, σ²·C²)` to each coordinate, and divides by
/// `denominator` — the **expected** batch size (see [`NoisyAggregation::denominator`]).
///
/// Zero rows are allowed (an empty Poisson batch): the result is then pure noise, as
/// it must be. All arithmetic is in `f64`.
///
/// # Errors
/// [`DpError::InvalidParameter`] for bad parameters or `dim = 0`;
/// [`DpError::ShapeMismatch`] if `per_example.len()` is not a multiple of `dim`;
/// [`DpError::NonFiniteInput`] for a NaN/infinite value (nothing is sampled then).
///
/// # Example
/// ```
/// use fedra_dp::{NoisyAggregation, clip_and_aggregate};
/// use rand_chacha::ChaCha20Rng;
/// use rand_core::SeedableRng;
/// let grads = [3.0f32, 4.0, /* row 2 */ 0.3, 0.4]; // norms 5 and 0.5
/// let params = NoisyAggregation { clip_norm: 1.0, noise_multiplier: 0.0, denominator: 2.0 };
/// let mut rng = ChaCha20Rng::seed_from_u64(1);
/// let avg = clip_and_aggregate(&grads, 2, &params, &mut rng)?;
/// // ((0.6, 0.8) + (0.3, 0.4)) / 2 without noise.
/// assert!((avg[0] - 0.45).abs() < 1e-6 && (avg[1] - 0.6).abs() < 1e-6);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn clip_and_aggregate<T: Scalar>(
    per_example: &[T],
    dim: usize,
    params: &NoisyAggregation,
    rng: &mut impl CryptoRng,
) -> Result<Vec<T>> {
    params.validate()?;
    check_shape(per_example.len(), dim)?;
    for (row, values) in per_example.chunks_exact(dim).enumerate() {
        check_finite(values, row)?;
    }
    let mut sum = vec![0.0f64; dim];
    let mut scratch = vec![0.0f64; dim];
    for values in per_example.chunks_exact(dim) {
        for (s, v) in scratch.iter_mut().zip(values) {
            *s = v.to_f64();
        }
        clip_unchecked(&mut scratch, params.clip_norm)?;
        for (acc, s) in sum.iter_mut().zip(&scratch) {
            *acc += s;
        }
    }
    finish(sum, params, rng)
}

/// Micro-batch clipping: splits the rows of `per_example` into consecutive
/// micro-batches of `microbatch_size` rows (the last may be shorter), clips each
/// micro-batch's **mean** gradient to `clip_norm`, sums those, adds `N(0, σ²·C²)` and
/// divides by `denominator` — here the **expected number of micro-batches**.
///
/// The sensitivity is C when one example changes one micro-batch only: true for the
/// replace-one relation with a fixed micro-batch assignment. With Poisson sampling and
/// add-or-remove, inserting an example into a consecutive split shifts later rows into
/// other micro-batches; assign examples to micro-batches independently of the data
/// (e.g. by a hash of their id) if that matters. With `microbatch_size = 1` this is
/// exactly [`clip_and_aggregate`].
///
/// # Errors
/// As [`clip_and_aggregate`], plus [`DpError::InvalidParameter`] for
/// `microbatch_size = 0`.
pub fn microbatch_clip_and_aggregate<T: Scalar>(
    per_example: &[T],
    dim: usize,
    microbatch_size: usize,
    params: &NoisyAggregation,
    rng: &mut impl CryptoRng,
) -> Result<Vec<T>> {
    params.validate()?;
    check_shape(per_example.len(), dim)?;
    if microbatch_size == 0 {
        return Err(DpError::invalid("microbatch_size", microbatch_size, ">= 1"));
    }
    for (row, values) in per_example.chunks_exact(dim).enumerate() {
        check_finite(values, row)?;
    }
    let mut sum = vec![0.0f64; dim];
    let mut mean = vec![0.0f64; dim];
    for micro in per_example.chunks(dim * microbatch_size) {
        let rows = micro.len() / dim;
        mean.iter_mut().for_each(|m| *m = 0.0);
        for values in micro.chunks_exact(dim) {
            for (m, v) in mean.iter_mut().zip(values) {
                *m += v.to_f64();
            }
        }
        for m in mean.iter_mut() {
            *m /= rows as f64;
        }
        clip_unchecked(&mut mean, params.clip_norm)?;
        for (acc, m) in sum.iter_mut().zip(&mean) {
            *acc += m;
        }
    }
    finish(sum, params, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn norm_survives_extreme_magnitudes() {
        assert_eq!(l2_norm(&[3e300f64, 4e300]), 5e300);
        let tiny = l2_norm(&[3e-300f64, 4e-300]);
        assert!((tiny - 5e-300).abs() <= 5e-300 * 1e-15, "{tiny}");
        assert_eq!(l2_norm::<f64>(&[]), 0.0);
        assert!(l2_norm(&[f64::NAN, 1.0]).is_nan());
    }

    #[test]
    fn std_zero_is_identity_and_bad_std_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let mut v = vec![1.0f64, -2.0, 3.0];
        add_gaussian_noise(&mut v, 0.0, &mut rng).unwrap();
        assert_eq!(v, vec![1.0, -2.0, 3.0]);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = add_gaussian_noise(&mut v, bad, &mut rng).unwrap_err();
            assert_eq!(e.code(), "dp.invalid_parameter");
        }
    }

    #[test]
    fn odd_lengths_get_noise_everywhere() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut v = vec![0.0f32; 5];
        add_gaussian_noise(&mut v, 1.0, &mut rng).unwrap();
        assert!(v.iter().all(|x| *x != 0.0));
    }

    #[test]
    fn zero_clip_norm_zeroes() {
        let mut v = vec![1.0f32, 2.0];
        assert!((clip_l2(&mut v, 0.0).unwrap() - 5f64.sqrt()).abs() < 1e-6);
        assert_eq!(v, vec![0.0, 0.0]);
    }
}
