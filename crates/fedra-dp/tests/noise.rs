//! Statistics of the Gaussian noise, from a seeded ChaCha20 generator.
//!
//! Each test draws 10⁶ samples and checks statistics against bounds of **5.5 standard
//! errors** of their sampling distributions. False-failure rate for a correct sampler
//! under a *fresh random* seed, per check: ≈ 3.8·10⁻⁸ for the means, variances,
//! 2σ-tail count and lag-1 correlation (normal approximation, excellent at n = 10⁶);
//! 2.1·10⁻⁷ for the 4σ-tail count (exact binomial: only ~63 expected hits); ~10⁻⁷ for
//! the fourth moment (a skewed statistic, so somewhat above the normal value). All 12
//! statistical checks together: below 10⁻⁶.
//!
//! The seeds are fixed, so the tests are deterministic — each always passes or always
//! fails. The rates above say what a failure means: with a correct sampler it would
//! be a one-in-a-million coincidence for a new seed, so a failure after a change
//! means the sampler (or its use of the generator) is broken.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use fedra_dp::add_gaussian_noise;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const N: usize = 1_000_000;
/// Standard errors allowed.
const Z: f64 = 5.5;

struct Moments {
    mean: f64,
    var: f64,
}

fn moments(x: &[f64]) -> Moments {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    Moments { mean, var }
}

/// Samples `std · Z + base` via `add_gaussian_noise`, returned as `f64`.
fn draw(seed: u64, base: f64, std: f64) -> Vec<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut v = vec![base; N];
    add_gaussian_noise(&mut v, std, &mut rng).unwrap();
    v
}

#[test]
fn mean_and_variance_are_right() {
    for (seed, base, std) in [(1u64, 0.0, 1.0), (2, 10.0, 2.5), (3, -3.0, 0.01)] {
        let x = draw(seed, base, std);
        let m = moments(&x);
        let n = N as f64;
        // Sample mean ~ N(base, std²/n).
        let mean_bound = Z * std / n.sqrt();
        assert!(
            (m.mean - base).abs() < mean_bound,
            "seed {seed}: mean {} vs {base} (bound {mean_bound})",
            m.mean
        );
        // Sample variance: sd = std²·sqrt(2/(n−1)) for normal data.
        let var_bound = Z * std * std * (2.0 / (n - 1.0)).sqrt();
        assert!(
            (m.var - std * std).abs() < var_bound,
            "seed {seed}: variance {} vs {} (bound {var_bound})",
            m.var,
            std * std
        );
    }
}

#[test]
fn tails_and_shape_are_gaussian() {
    let x = draw(4, 0.0, 1.0);
    let n = N as f64;
    // P(|Z| > 2) = erfc(√2) = 0.0455002638963584; the count is binomial.
    let p2 = 0.045_500_263_896_358_4;
    let beyond2 = x.iter().filter(|v| v.abs() > 2.0).count() as f64;
    let sd = (n * p2 * (1.0 - p2)).sqrt();
    assert!(
        (beyond2 - n * p2).abs() < Z * sd,
        "{beyond2} beyond 2σ, expected {}",
        n * p2
    );
    // P(|Z| > 4) = 6.334248366623996e-5.
    let p4 = 6.334_248_366_623_996e-5;
    let beyond4 = x.iter().filter(|v| v.abs() > 4.0).count() as f64;
    let sd4 = (n * p4 * (1.0 - p4)).sqrt();
    assert!((beyond4 - n * p4).abs() < Z * sd4, "{beyond4} beyond 4σ");
    // Fourth moment E[Z⁴] = 3, Var[Z⁴] = 105 − 9 = 96.
    let m4 = x.iter().map(|v| v.powi(4)).sum::<f64>() / n;
    assert!((m4 - 3.0).abs() < Z * (96.0 / n).sqrt(), "E[Z^4] = {m4}");
    // Box–Muller's two outputs are independent: lag-1 correlation (pairs and across
    // pairs) ~ N(0, 1/n).
    let corr = x.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1.0);
    assert!(corr.abs() < Z / n.sqrt(), "lag-1 correlation {corr}");
    // Box–Muller from 53-bit uniforms never exceeds sqrt(2·53·ln 2) ≈ 8.57.
    assert!(x.iter().all(|v| v.abs() < 8.58));
}

#[test]
fn f32_noise_has_the_same_statistics() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut v = vec![1.0f32; N];
    add_gaussian_noise(&mut v, 0.5, &mut rng).unwrap();
    let x: Vec<f64> = v.iter().map(|v| f64::from(*v)).collect();
    let m = moments(&x);
    let n = N as f64;
    // f32 rounding adds a variance of ~ulp²/12 ≈ 1e-15, far below the bound.
    assert!((m.mean - 1.0).abs() < Z * 0.5 / n.sqrt(), "{}", m.mean);
    assert!(
        (m.var - 0.25).abs() < Z * 0.25 * (2.0 / (n - 1.0)).sqrt(),
        "{}",
        m.var
    );
}

#[test]
fn same_seed_same_noise_different_seed_different_noise() {
    assert_eq!(draw(9, 0.0, 1.0)[..100], draw(9, 0.0, 1.0)[..100]);
    assert_ne!(draw(9, 0.0, 1.0)[..100], draw(10, 0.0, 1.0)[..100]);
}
