//! Rényi-DP of the Poisson-subsampled Gaussian mechanism and the RDP → (ε, δ)
//! conversions, ported line by line from Google's `dp-accounting` 0.6
//! (`dp_accounting/rdp/rdp_privacy_accountant.py`).
//!
//! * [`DEFAULT_ORDERS`] is `DEFAULT_RDP_ORDERS` of `RdpAccountant`:
//!   `1.1, 1.2, …, 10.9` (as `1 + x/10.0`), the integers `11..=63`, and
//!   `128, 256, 512, 1024` — 156 orders (not Opacus's grid).
//! * [`compute_rdp`] is `_compute_rdp_poisson_subsampled_gaussian`: `log A_α / (α − 1)`
//!   with `A_α` from the binomial series for integer α (`_compute_log_a_int`) and the
//!   two-sided erfc series of Mironov, Talwar & Zhang 2019, §3.3, for fractional α
//!   (`_compute_log_a_frac`, at most 1000 terms; an order whose series has not
//!   converged by then is excluded, i.e. its RDP is `+∞`, exactly as dp-accounting
//!   does). `q = 1` gives `α / (2σ²)`; `σ = 0` gives `+∞`.
//! * [`epsilon_from_rdp`] is `compute_epsilon` with the improved conversion of
//!   Canonne, Kamath & Steinke 2020 (Prop. 12) /Asoodeh et al. 2020 (Eq. 20) and the KL
//!   shortcut; [`delta_from_rdp`] is `compute_delta`. Ties between orders go to the
//!   first order, like `numpy.argmin`.
//!
//! The neighbouring relation is add-or-remove-one (`ADD_OR_REMOVE_ONE`), for which
//! Poisson subsampling is analysed. Sums are evaluated in the same order as the Python
//! code, so results agree to a few ulps (the only differences come from `lgamma`/`erfc`
//! implementations: `libm` here, SciPy's `gammaln`/`log_ndtr` there).
//!
//! Numerical hygiene: no function here panics; an RDP value that would come out as NaN
//! (only possible for a σ so small that `σ²` underflows) is reported as `+∞`, the
//! conservative answer.

use crate::error::{DpError, Result, check_delta, check_noise_multiplier, check_sampling_rate};

/// Number of orders in [`DEFAULT_ORDERS`].
pub const DEFAULT_ORDERS_LEN: usize = 99 + 53 + 4;

/// The RDP orders dp-accounting's `RdpAccountant` uses by default
/// (`DEFAULT_RDP_ORDERS`): `[1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64))
/// + [128, 256, 512, 1024]`.
pub const DEFAULT_ORDERS: [f64; DEFAULT_ORDERS_LEN] = default_orders();

const fn default_orders() -> [f64; DEFAULT_ORDERS_LEN] {
    let mut orders = [0.0; DEFAULT_ORDERS_LEN];
    let mut n = 0;
    let mut x = 1;
    while x < 100 {
        orders[n] = 1.0 + x as f64 / 10.0;
        n += 1;
        x += 1;
    }
    let mut k = 11;
    while k < 64 {
        orders[n] = k as f64;
        n += 1;
        k += 1;
    }
    orders[n] = 128.0;
    orders[n + 1] = 256.0;
    orders[n + 2] = 512.0;
    orders[n + 3] = 1024.0;
    orders
}

/// Maximum number of series terms for a fractional order (`_MAX_STEPS_LOG_A_FRAC`).
const MAX_STEPS_LOG_A_FRAC: usize = 1000;

/// `log(exp(logx) + exp(logy))` (`_log_add`).
fn log_add(logx: f64, logy: f64) -> f64 {
    let (a, b) = if logx <= logy {
        (logx, logy)
    } else {
        (logy, logx)
    };
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// Log of the (generalised) binomial coefficient, `log|Γ(n+1) / (Γ(k+1) Γ(n−k+1))|`
/// (`_log_comb`, SciPy's `gammaln` is `log|Γ|` like `libm::lgamma`).
fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `log(erfc(x))`, accurate far into the upper tail (`_log_erfc`).
///
/// dp-accounting evaluates `log(2) + log_ndtr(-x·√2)`. Here: `ln(erfc(x))` while
/// `erfc(x)` is a normal float (`libm::erfc` has small *relative* error there), and the
/// asymptotic expansion `erfc(x) = e^{−x²}/(x√π) · Σ_k (−1)^k (2k−1)!!/(2x²)^k` beyond
/// `x = 26`, where 10 terms are accurate to far below an ulp.
fn log_erfc(x: f64) -> f64 {
    if x < 26.0 {
        return libm::erfc(x).ln();
    }
    let inv = 1.0 / (2.0 * x * x);
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..10 {
        term *= -((2 * k - 1) as f64) * inv;
        sum += term;
    }
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + sum.ln()
}

/// `log A_α` for integer α, `0 < q < 1` (`_compute_log_a_int`).
fn compute_log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let log1mq = (-q).ln_1p();
    let log_q = q.ln();
    let two_sigma_sq = 2.0 * (sigma * sigma);
    let alpha_f = alpha as f64;
    for i in 0..=alpha {
        let i_f = i as f64;
        let log_coef_i = log_comb(alpha_f, i_f) + i_f * log_q + (alpha - i) as f64 * log1mq;
        let s = log_coef_i + (i * i - i) as f64 / two_sigma_sq;
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `log A_α` for fractional α, `0 < q < 1` (`_compute_log_a_frac`); `+∞` when the
/// series has not converged after [`MAX_STEPS_LOG_A_FRAC`] terms.
fn compute_log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let sigma_sq = sigma * sigma;
    let z0 = sigma_sq * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let log_q = q.ln();
    let log_half = 0.5f64.ln();
    let sqrt2_sigma = std::f64::consts::SQRT_2 * sigma;
    let two_sigma_sq = 2.0 * sigma_sq;

    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;

    for i in 0..MAX_STEPS_LOG_A_FRAC {
        let i_f = i as f64;
        let log_coef = log_comb(alpha, i_f);
        let j = alpha - i_f;

        let log_t0 = log_coef + i_f * log_q + j * log1mq;
        let log_t1 = log_coef + j * log_q + i_f * log1mq;

        let log_e0 = log_half + log_erfc((i_f - z0) / sqrt2_sigma);
        let log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);

        let log_s0 = log_t0 + (i * i - i) as f64 / two_sigma_sq + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_sigma_sq + log_e1;

        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);

        let total = log_add(log_a0, log_a1);

        // Terminate when both s0 and s1 are decreasing and sufficiently small relative
        // to the total.
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// RDP of one Poisson-subsampled Gaussian step at one order (`compute_one_order`).
/// Assumes validated `q ∈ (0, 1]`, finite `σ ≥ 0`, order `> 1`.
fn rdp_one_order(q: f64, sigma: f64, alpha: f64) -> f64 {
    if alpha.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    let sigma_sq = sigma * sigma;
    if sigma_sq == 0.0 {
        // σ² underflows: Python would divide by zero; the mechanism adds no noise.
        return f64::INFINITY;
    }
    let rdp = if q == 1.0 {
        alpha / (2.0 * sigma_sq)
    } else {
        let log_a = if alpha.fract() == 0.0 {
            compute_log_a_int(q, sigma, alpha as u64)
        } else {
            compute_log_a_frac(q, sigma, alpha)
        };
        log_a / (alpha - 1.0)
    };
    if rdp.is_nan() { f64::INFINITY } else { rdp }
}

/// Largest order accepted in a custom grid. The integer-order series has α + 1 terms,
/// so this bounds the cost of one order (dp-accounting has no bound).
pub const MAX_ORDER: f64 = 10_000.0;

/// Checks an order grid: non-empty, every order in `(1, MAX_ORDER]`.
pub(crate) fn check_orders(orders: &[f64]) -> Result<()> {
    if orders.is_empty() {
        return Err(DpError::invalid("orders", orders, "a non-empty list"));
    }
    match orders.iter().find(|a| !(**a > 1.0 && **a <= MAX_ORDER)) {
        Some(a) => Err(DpError::invalid("orders", a, "in (1, 10000] (every order)")),
        None => Ok(()),
    }
}

/// RDP of **one step** of the Poisson-subsampled Gaussian mechanism (sampling rate `q`,
/// noise multiplier `σ` = noise std / L2 sensitivity) at each order in `orders`
/// (dp-accounting's `_compute_rdp_poisson_subsampled_gaussian`). Multiply by the number
/// of steps to compose; add vectors to compose different mechanisms.
///
/// Entries may be `+∞` (σ = 0, or a fractional order whose series did not converge).
///
/// # Errors
/// [`DpError::InvalidParameter`] unless `q ∈ (0, 1]`, `σ` is finite and `>= 0`, and
/// every order is in `(1, MAX_ORDER]`.
///
/// # Example
/// ```
/// use fedra_dp::rdp::compute_rdp;
/// // Without subsampling the Gaussian mechanism has RDP α / (2σ²).
/// let rdp = compute_rdp(1.0, 2.0, &[2.0, 8.0])?;
/// assert_eq!(rdp, vec![0.25, 1.0]);
/// # Ok::<(), fedra_dp::DpError>(())
/// ```
pub fn compute_rdp(q: f64, noise_multiplier: f64, orders: &[f64]) -> Result<Vec<f64>> {
    check_sampling_rate(q)?;
    check_noise_multiplier("noise_multiplier", noise_multiplier)?;
    check_orders(orders)?;
    Ok(orders
        .iter()
        .map(|&a| rdp_one_order(q, noise_multiplier, a))
        .collect())
}

/// Index of the first minimum (like `numpy.argmin` on NaN-free input).
fn argmin(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v < values[best] {
            best = i;
        }
    }
    best
}

fn check_rdp(orders: &[f64], rdp: &[f64]) -> Result<()> {
    check_orders(orders)?;
    if orders.len() != rdp.len() {
        return Err(DpError::invalid(
            "rdp",
            format_args!("{} values for {} orders", rdp.len(), orders.len()),
            "one value per order",
        ));
    }
    if let Some(r) = rdp.iter().find(|r| r.is_nan()) {
        return Err(DpError::invalid("rdp", r, "not NaN"));
    }
    Ok(())
}

/// The smallest ε such that RDP values `rdp` at `orders` imply (ε, δ)-DP, and the order
/// that attains it (dp-accounting's `compute_epsilon`). ε is `+∞` when every order has
/// infinite RDP (the returned order is then the first one).
///
/// # Errors
/// [`DpError::InvalidParameter`] unless `δ ∈ (0, 1)`, the orders are valid (see
/// [`compute_rdp`]), `rdp` has one non-NaN value per order.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<(f64, f64)> {
    check_delta(delta)?;
    check_rdp(orders, rdp)?;
    let eps: Vec<f64> = orders
        .iter()
        .zip(rdp)
        .map(|(&a, &r)| {
            if r < 0.0 {
                // Numerical instability from extreme events; dp-accounting returns 0.
                0.0
            } else if delta * delta + (-r).exp_m1() > 0.0 {
                // Bound via the KL divergence: δ <= sqrt(1 − exp(−KL)).
                0.0
            } else if a > 1.01 {
                // Improved conversion (unstable as α → 1, hence the minimum order).
                r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let best = argmin(&eps);
    Ok((eps[best].max(0.0), orders[best]))
}

/// The smallest δ such that RDP values `rdp` at `orders` imply (ε, δ)-DP, and the order
/// that attains it (dp-accounting's `compute_delta`). δ is capped at 1.
///
/// # Errors
/// [`DpError::InvalidParameter`] unless ε is finite and `>= 0`, the orders are valid,
/// and `rdp` has one non-NaN value per order.
pub fn delta_from_rdp(orders: &[f64], rdp: &[f64], epsilon: f64) -> Result<(f64, f64)> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(DpError::invalid("epsilon", epsilon, "finite and >= 0"));
    }
    check_rdp(orders, rdp)?;
    let log_deltas: Vec<f64> = orders
        .iter()
        .zip(rdp)
        .map(|(&a, &r)| {
            let mut log_delta = if r <= 0.0 {
                // r < 0: numerical instability, dp-accounting returns δ = 0;
                // r = 0: the mechanism is perfectly private at this order.
                f64::NEG_INFINITY
            } else {
                // For small α the KL bound δ <= sqrt(1 − exp(−KL)) is better.
                0.5 * (-(-r).exp()).ln_1p()
            };
            if a > 1.01 {
                let rdp_bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
                log_delta = log_delta.min(rdp_bound);
            }
            log_delta
        })
        .collect();
    let best = argmin(&log_deltas);
    Ok((log_deltas[best].exp().min(1.0), orders[best]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_match_dp_accounting() {
        assert_eq!(DEFAULT_ORDERS.len(), 156);
        assert_eq!(DEFAULT_ORDERS[0], 1.1);
        assert_eq!(DEFAULT_ORDERS[98], 10.9);
        assert_eq!(DEFAULT_ORDERS[99], 11.0);
        assert_eq!(DEFAULT_ORDERS[151], 63.0);
        assert_eq!(&DEFAULT_ORDERS[152..], &[128.0, 256.0, 512.0, 1024.0]);
        // 1 + 2/10.0 is not the literal 1.2 in binary, exactly as in Python.
        assert_eq!(DEFAULT_ORDERS[1], 1.0 + 2.0 / 10.0);
        assert!(DEFAULT_ORDERS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn log_add_is_exact_on_simple_values() {
        assert_eq!(log_add(f64::NEG_INFINITY, 1.5), 1.5);
        assert!((log_add(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((log_add(2f64.ln(), 3f64.ln()) - 5f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn log_erfc_is_continuous_across_the_switch() {
        let below = log_erfc(26.0 - 1e-9);
        let above = log_erfc(26.0);
        assert!((below - above).abs() < 1e-9 * 60.0, "{below} vs {above}");
        // Far tail and far negative side stay finite.
        assert!(log_erfc(1e6).is_finite());
        assert!((log_erfc(-40.0) - 2f64.ln()).abs() < 1e-15);
        // erfc(1) = 0.157299207050285130658...
        assert!((log_erfc(1.0) - 0.157_299_207_050_285_13f64.ln()).abs() < 1e-14);
    }

    #[test]
    fn log_a_int_and_frac_agree_near_integers() {
        // The fractional series is valid for integer α too; compare at α = 3 and α = 8.
        for (q, sigma) in [(0.01, 1.1), (0.1, 2.0), (0.3, 0.9)] {
            for alpha in [3u64, 8] {
                let a = compute_log_a_int(q, sigma, alpha);
                let b = compute_log_a_frac(q, sigma, alpha as f64);
                assert!(
                    (a - b).abs() < 1e-9 * a.abs().max(1e-3),
                    "{q} {sigma} {alpha}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let r = compute_rdp(0.5, 0.0, &DEFAULT_ORDERS).unwrap();
        assert!(r.iter().all(|v| *v == f64::INFINITY));
        let r = compute_rdp(0.5, 1e-200, &DEFAULT_ORDERS).unwrap();
        assert!(r.iter().all(|v| *v == f64::INFINITY));
        let r = compute_rdp(1e-300, 1e-3, &DEFAULT_ORDERS).unwrap();
        assert!(r.iter().all(|v| !v.is_nan()));
        let r = compute_rdp(1.0 - 1e-16, 1e5, &DEFAULT_ORDERS).unwrap();
        assert!(r.iter().all(|v| !v.is_nan()));
        let (e, order) = epsilon_from_rdp(&DEFAULT_ORDERS, &[f64::INFINITY; 156], 1e-5).unwrap();
        assert_eq!((e, order), (f64::INFINITY, 1.1));
        let (d, _) = delta_from_rdp(&DEFAULT_ORDERS, &[f64::INFINITY; 156], 1.0).unwrap();
        assert_eq!(d, 1.0);
        let (e, _) = epsilon_from_rdp(&DEFAULT_ORDERS, &[0.0; 156], 1e-5).unwrap();
        assert_eq!(e, 0.0);
        let (d, _) = delta_from_rdp(&DEFAULT_ORDERS, &[0.0; 156], 0.0).unwrap();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert!(compute_rdp(0.0, 1.0, &DEFAULT_ORDERS).is_err());
        assert!(compute_rdp(0.1, -1.0, &DEFAULT_ORDERS).is_err());
        assert!(compute_rdp(0.1, 1.0, &[]).is_err());
        assert!(compute_rdp(0.1, 1.0, &[1.0]).is_err());
        assert!(epsilon_from_rdp(&[2.0], &[1.0, 2.0], 1e-5).is_err());
        assert!(epsilon_from_rdp(&[2.0], &[f64::NAN], 1e-5).is_err());
        assert!(delta_from_rdp(&[2.0], &[1.0], -1.0).is_err());
    }
}
