//! Budget planning for DP-SGD-style training: ε for a plan, δ for an ε, and the
//! inverse questions (which noise multiplier, how many steps) — what
//! `fedra privacy epsilon …` answers.
//!
//! Everything here is for `steps` compositions of one Poisson-subsampled Gaussian
//! mechanism under the add-or-remove-one relation, accounted with RDP at
//! [`DEFAULT_ORDERS`] exactly like dp-accounting's `RdpAccountant` (see [`crate::rdp`]).
//! For heterogeneous rounds use [`crate::Accountant`].

use serde::{Deserialize, Serialize};

use crate::error::{
    DpError, Result, check_delta, check_epsilon, check_noise_multiplier, check_sampling_rate,
    check_steps,
};
use crate::rdp::{DEFAULT_ORDERS, compute_rdp, delta_from_rdp, epsilon_from_rdp};

/// Largest noise multiplier [`noise_multiplier_for`] searches.
pub const MAX_NOISE_MULTIPLIER: f64 = 1e6;

/// Relative precision of [`noise_multiplier_for`]'s bisection (tighter than the
/// 1e-6 required of it).
pub const NOISE_MULTIPLIER_REL_TOL: f64 = 1e-7;

/// Largest step count [`steps_for`] returns (2^53, the largest integer every step
/// count below which is exact in `f64`).
pub const MAX_STEPS: u64 = 1 << 53;

/// A training plan: `steps` steps of the Poisson-subsampled Gaussian mechanism, judged
/// at `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Noise standard deviation divided by the L2 sensitivity (the clipping norm);
    /// finite, `>= 0` (`0` means no noise: ε = ∞).
    pub noise_multiplier: f64,
    /// Poisson sampling probability of each example per step, in `(0, 1]`
    /// (`1` = full batch, no subsampling amplification).
    pub sampling_rate: f64,
    /// Number of steps (compositions), `>= 1`.
    pub steps: u64,
    /// Target δ, in `(0, 1)`.
    pub delta: f64,
}

impl Plan {
    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        check_noise_multiplier("noise_multiplier", self.noise_multiplier)?;
        check_sampling_rate(self.sampling_rate)?;
        check_steps(self.steps)?;
        check_delta(self.delta)
    }
}

/// ε spent and the RDP order at which the conversion is tightest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpsilonReport {
    /// The ε of the (ε, δ)-DP guarantee; `f64::INFINITY` when nothing bounds it
    /// (e.g. σ = 0). Note that `serde_json` serialises an infinite value as `null`.
    pub epsilon: f64,
    /// The δ it was computed for.
    pub delta: f64,
    /// The optimal RDP order (the first default order when ε is infinite).
    pub order: f64,
}

/// δ for a given ε and the RDP order at which the conversion is tightest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeltaReport {
    /// The δ of the (ε, δ)-DP guarantee, at most 1.
    pub delta: f64,
    /// The ε it was computed for.
    pub epsilon: f64,
    /// The optimal RDP order.
    pub order: f64,
}

/// RDP of `steps` steps at the default orders (composition multiplies by the count,
/// exactly like `count * rdp` in dp-accounting).
pub(crate) fn plan_rdp(noise_multiplier: f64, sampling_rate: f64, steps: u64) -> Result<Vec<f64>> {
    let mut rdp = compute_rdp(sampling_rate, noise_multiplier, &DEFAULT_ORDERS)?;
    scale(&mut rdp, steps);
    Ok(rdp)
}

fn scale(rdp: &mut [f64], steps: u64) {
    let n = steps as f64;
    for r in rdp {
        *r *= n;
    }
}

/// The ε of a [`Plan`] (dp-accounting's `RdpAccountant.get_epsilon_and_optimal_order`
/// after composing `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)),
/// steps)`).
///
/// # Errors
/// [`DpError::InvalidParameter`] for a field out of range (see [`Plan::validate`]).
///
/// # Example
/// ```
/// use fedra_dp::{Plan, epsilon};
/// let report = epsilon(&Plan {
///     noise_multiplier: 1.1,
///     sampling_rate: 0.01,
///     steps: 6000,
///     delta: 1e-5,
/// })?;
/// assert!((report.epsilon - 4.246599).abs() < 1e-6);
/// assert_eq!(report.order, 5.6);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn epsilon(p: &Plan) -> Result<EpsilonReport> {
    p.validate()?;
    let rdp = plan_rdp(p.noise_multiplier, p.sampling_rate, p.steps)?;
    let (epsilon, order) = epsilon_from_rdp(&DEFAULT_ORDERS, &rdp, p.delta)?;
    Ok(EpsilonReport {
        epsilon,
        delta: p.delta,
        order,
    })
}

/// The δ of `steps` steps of the Poisson-subsampled Gaussian mechanism at a given ε
/// (dp-accounting's `get_delta_and_optimal_order`).
///
/// # Errors
/// [`DpError::InvalidParameter`] unless σ is finite and `>= 0`, `q ∈ (0, 1]`,
/// `steps >= 1` and ε is finite and `> 0`.
///
/// # Example
/// ```
/// let report = fedra_dp::delta(1.1, 0.01, 6000, 4.0)?;
/// assert!((report.delta - 3.0214372733e-5).abs() < 1e-12);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn delta(
    noise_multiplier: f64,
    sampling_rate: f64,
    steps: u64,
    epsilon: f64,
) -> Result<DeltaReport> {
    check_noise_multiplier("noise_multiplier", noise_multiplier)?;
    check_sampling_rate(sampling_rate)?;
    check_steps(steps)?;
    check_epsilon("epsilon", epsilon)?;
    let rdp = plan_rdp(noise_multiplier, sampling_rate, steps)?;
    let (delta, order) = delta_from_rdp(&DEFAULT_ORDERS, &rdp, epsilon)?;
    Ok(DeltaReport {
        delta,
        epsilon,
        order,
    })
}

/// The smallest noise multiplier σ for which `steps` steps at sampling rate `q` are
/// (`target_epsilon`, `delta`)-DP, to a relative precision of
/// [`NOISE_MULTIPLIER_REL_TOL`]. The returned σ always satisfies the target (it is the
/// upper end of the final bisection bracket), so it may exceed the exact threshold by
/// at most that relative amount.
///
/// The search brackets σ by doubling/halving from 1 and then bisects. ε(σ) is
/// non-increasing in σ in practice, with one inherited exception: dp-accounting counts a
/// fractional order whose series has not converged after 1000 terms as infinite RDP,
/// and when that hits the optimal low order (α < 2, i.e. large ε, typically > 10), ε
/// can jump up slightly as σ grows. There the result still meets the target but may
/// not be the smallest such σ (dp-accounting's `calibrate_dp_mechanism` has the same
/// limitation).
///
/// # Errors
/// [`DpError::InvalidParameter`] for an out-of-range argument;
/// [`DpError::Unreachable`] when even σ = [`MAX_NOISE_MULTIPLIER`] does not reach the
/// target.
///
/// # Example
/// ```
/// let sigma = fedra_dp::noise_multiplier_for(1.0, 0.01, 1000, 1e-5)?;
/// assert!((sigma - 1.5131221626).abs() < 1e-5);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn noise_multiplier_for(target_epsilon: f64, q: f64, steps: u64, delta: f64) -> Result<f64> {
    check_epsilon("target_epsilon", target_epsilon)?;
    check_sampling_rate(q)?;
    check_steps(steps)?;
    check_delta(delta)?;
    let eps_at = |sigma: f64| -> Result<f64> {
        let rdp = plan_rdp(sigma, q, steps)?;
        Ok(epsilon_from_rdp(&DEFAULT_ORDERS, &rdp, delta)?.0)
    };
    let meets = |sigma: f64| -> Result<bool> { Ok(eps_at(sigma)? <= target_epsilon) };

    // Bracket: `lo` misses the target, `hi` meets it.
    let (mut lo, mut hi);
    if meets(1.0)? {
        hi = 1.0;
        lo = 0.5;
        // ε → ∞ as σ → 0, so this ends; the bound only guards against the absurd.
        while meets(lo)? {
            hi = lo;
            lo *= 0.5;
            if lo < 1e-300 {
                return Ok(hi);
            }
        }
    } else {
        lo = 1.0;
        hi = 2.0;
        while !meets(hi)? {
            if hi >= MAX_NOISE_MULTIPLIER {
                return Err(DpError::Unreachable {
                    target_epsilon,
                    reason: format!(
                        "epsilon is {} even with noise multiplier {MAX_NOISE_MULTIPLIER} \
                         (sampling rate {q}, {steps} steps, delta {delta})",
                        eps_at(MAX_NOISE_MULTIPLIER)?
                    ),
                });
            }
            lo = hi;
            hi = (hi * 2.0).min(MAX_NOISE_MULTIPLIER);
        }
    }
    while hi - lo > NOISE_MULTIPLIER_REL_TOL * hi {
        let mid = 0.5 * (lo + hi);
        if meets(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// The largest number of steps for which noise multiplier σ at sampling rate `q` stays
/// (`target_epsilon`, `delta`)-DP (capped at [`MAX_STEPS`]).
///
/// The per-step RDP is computed once; ε is non-decreasing in the step count, so the
/// answer is found by doubling and integer bisection.
///
/// # Errors
/// [`DpError::InvalidParameter`] for an out-of-range argument;
/// [`DpError::Unreachable`] when a single step already exceeds the target.
///
/// # Example
/// ```
/// let steps = fedra_dp::steps_for(4.246599, 0.01, 1.1, 1e-5)?;
/// assert_eq!(steps, 6000);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn steps_for(target_epsilon: f64, q: f64, noise_multiplier: f64, delta: f64) -> Result<u64> {
    check_epsilon("target_epsilon", target_epsilon)?;
    check_sampling_rate(q)?;
    check_noise_multiplier("noise_multiplier", noise_multiplier)?;
    check_delta(delta)?;
    let unit = compute_rdp(q, noise_multiplier, &DEFAULT_ORDERS)?;
    let meets = |steps: u64| -> Result<bool> {
        let mut rdp = unit.clone();
        scale(&mut rdp, steps);
        Ok(epsilon_from_rdp(&DEFAULT_ORDERS, &rdp, delta)?.0 <= target_epsilon)
    };
    if !meets(1)? {
        return Err(DpError::Unreachable {
            target_epsilon,
            reason: format!(
                "a single step already exceeds it (noise multiplier {noise_multiplier}, \
                 sampling rate {q}, delta {delta})"
            ),
        });
    }
    // `lo` meets the target, `hi` does not (or is past the cap).
    let mut lo = 1u64;
    let mut hi = 2u64;
    while meets(hi)? {
        if hi >= MAX_STEPS {
            return Ok(MAX_STEPS);
        }
        lo = hi;
        hi = hi.saturating_mul(2).min(MAX_STEPS);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if meets(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_validation_names_fields() {
        let good = Plan {
            noise_multiplier: 1.0,
            sampling_rate: 0.1,
            steps: 10,
            delta: 1e-5,
        };
        assert!(good.validate().is_ok());
        let cases = [
            (
                Plan {
                    noise_multiplier: -1.0,
                    ..good
                },
                "noise_multiplier",
            ),
            (
                Plan {
                    noise_multiplier: f64::INFINITY,
                    ..good
                },
                "noise_multiplier",
            ),
            (
                Plan {
                    sampling_rate: 0.0,
                    ..good
                },
                "sampling_rate",
            ),
            (
                Plan {
                    sampling_rate: 1.01,
                    ..good
                },
                "sampling_rate",
            ),
            (Plan { steps: 0, ..good }, "steps"),
            (Plan { delta: 0.0, ..good }, "delta"),
            (Plan { delta: 1.0, ..good }, "delta"),
            (
                Plan {
                    delta: f64::NAN,
                    ..good
                },
                "delta",
            ),
        ];
        for (plan, field) in cases {
            match epsilon(&plan) {
                Err(DpError::InvalidParameter { name, .. }) => assert_eq!(name, field),
                other => panic!("{plan:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn zero_noise_is_infinite_epsilon() {
        let r = epsilon(&Plan {
            noise_multiplier: 0.0,
            sampling_rate: 0.5,
            steps: 1,
            delta: 1e-5,
        })
        .unwrap();
        assert_eq!(r.epsilon, f64::INFINITY);
        assert_eq!(r.order, DEFAULT_ORDERS[0]);
        assert_eq!(delta(0.0, 0.5, 1, 1.0).unwrap().delta, 1.0);
    }

    #[test]
    fn unreachable_targets_are_errors() {
        let e = steps_for(0.01, 1.0, 0.5, 1e-5).unwrap_err();
        assert_eq!(e.code(), "dp.unreachable");
        let e = noise_multiplier_for(0.01, 1.0, 1_000_000_000, 1e-5).unwrap_err();
        assert_eq!(e.code(), "dp.unreachable");
        assert!(e.to_string().contains("1000000"), "{e}");
    }
}
