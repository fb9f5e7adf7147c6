//! Protection of the gradients the leader returns to followers, and a meter
//! of how much they leak about the labels.
//!
//! **The leak.** With sigmoid cross-entropy, the gradient of example `i`
//! with respect to its cut output is `(p_i − y_i)·∂z_i/∂cut_i`; when the
//! positive class is rare, positives get gradients with much larger norms,
//! so a follower can guess labels from `‖g_i‖` alone — the *norm attack*
//! of Li et al., "Label Leakage and Protection in Two-party Split
//! Learning" (ICLR 2022, arXiv 2102.08504). [`LeakMeter`] measures it the
//! way the paper does: the ROC AUC of the norms against the true labels,
//! per batch, averaged over the batches that hold both classes (0.5 = no
//! leak, 1 = the norms give the labels away). The leader computes it on
//! exactly the matrices it sends (it knows the labels; the follower does
//! not).
//!
//! **Defences** ([`GradientProtection`]), applied by the leader to each
//! follower's gradient before sending:
//! * `max_norm` (the paper's heuristic): every row gets isotropic Gaussian
//!   noise with `σ_i² = (‖g_max‖² − ‖g_i‖²)/k` (`g_max` the batch's largest
//!   row, `k` the cut width), so every row's expected squared norm is
//!   `‖g_max‖²`. No formal guarantee.
//! * `gaussian` (DP): each row of the gradient of the *summed* loss
//!   (`batch ×` the mean-loss row) is clipped to L2 norm `C`, gets
//!   `N(0, σ²C²)` per coordinate, and is divided by the batch size again.
//!   The release of one step is a Gaussian mechanism with sensitivity `C`
//!   for adding or removing one example's row; [`crate::TrainReport`]
//!   reports ε from `fedra-dp`'s RDP accountant with `q = batch / rows`
//!   per step. **Caveats:** batches are a shuffled partition, not Poisson
//!   samples, so `q` is the usual approximation; and the accountant covers
//!   what the follower receives *directly* — a label also influences the
//!   leader's top model (trained without noise), hence later gradients of
//!   other examples, which this accounting does not cover.
//!
//! Noise comes from the caller's CSPRNG.

use fedra_dp::{Accountant, Event, add_gaussian_noise, l2_norm};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SplitError};

/// What the leader does to a follower's gradient before sending it.
///
/// ```toml
/// protection = { kind = "none" }
/// # protection = { kind = "max_norm" }
/// # protection = { kind = "gaussian", clip_norm = 1.0, noise_multiplier = 1.0, delta = 1e-5 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GradientProtection {
    /// Send the exact gradient.
    #[default]
    None,
    /// Li et al.'s max-norm noise (heuristic, no formal guarantee).
    MaxNorm,
    /// Per-example clipping and Gaussian noise, with accounting.
    Gaussian {
        /// L2 bound `C` of each example's (summed-loss) gradient row, `> 0`.
        clip_norm: f64,
        /// Noise multiplier `σ >= 0`.
        noise_multiplier: f64,
        /// δ at which ε is reported, in `(0, 1)`.
        delta: f64,
    },
}

impl GradientProtection {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if let GradientProtection::Gaussian {
            clip_norm,
            noise_multiplier,
            delta,
        } = *self
        {
            if !(clip_norm.is_finite() && clip_norm > 0.0) {
                return Err(SplitError::config(
                    "protection.clip_norm",
                    format!("must be finite and > 0 (got {clip_norm})"),
                ));
            }
            if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
                return Err(SplitError::config(
                    "protection.noise_multiplier",
                    format!("must be finite and >= 0 (got {noise_multiplier})"),
                ));
            }
            if !(delta > 0.0 && delta < 1.0) {
                return Err(SplitError::config(
                    "protection.delta",
                    format!("must be in (0, 1) (got {delta})"),
                ));
            }
        }
        Ok(())
    }

    /// Applies the protection in place to a row-major `rows × k` gradient
    /// of the mean loss.
    pub fn apply<R: CryptoRng + ?Sized>(
        &self,
        grad: &mut [f32],
        rows: usize,
        k: usize,
        mut rng: &mut R,
    ) -> Result<()> {
        if grad.len() != rows * k || k == 0 {
            return Err(SplitError::Data(format!(
                "gradient of {} values for {rows} × {k}",
                grad.len()
            )));
        }
        match *self {
            GradientProtection::None => {}
            GradientProtection::MaxNorm => {
                let norms: Vec<f64> = grad.chunks_exact(k).map(l2_norm).collect();
                let max2 = norms.iter().fold(0f64, |m, n| m.max(n * n));
                for (row, n) in grad.chunks_exact_mut(k).zip(&norms) {
                    let std = ((max2 - n * n).max(0.0) / k as f64).sqrt();
                    add_gaussian_noise(row, std, &mut rng)?;
                }
            }
            GradientProtection::Gaussian {
                clip_norm,
                noise_multiplier,
                ..
            } => {
                let b = rows as f64;
                for row in grad.chunks_exact_mut(k) {
                    let n = l2_norm(row) * b;
                    let scale = if n > clip_norm { clip_norm / n } else { 1.0 };
                    let mut sum_row: Vec<f64> =
                        row.iter().map(|v| f64::from(*v) * b * scale).collect();
                    add_gaussian_noise(&mut sum_row, noise_multiplier * clip_norm, &mut rng)?;
                    for (o, v) in row.iter_mut().zip(&sum_row) {
                        *o = (v / b) as f32;
                    }
                }
            }
        }
        Ok(())
    }

    /// ε after `steps` steps at sampling rate `q` (Gaussian only).
    pub fn epsilon(&self, q: f64, steps: u64) -> Result<Option<f64>> {
        match *self {
            GradientProtection::Gaussian {
                noise_multiplier,
                delta,
                ..
            } if steps > 0 => {
                let mut acc = Accountant::new();
                acc.record(Event {
                    noise_multiplier,
                    sampling_rate: q.clamp(f64::MIN_POSITIVE, 1.0),
                    steps,
                })?;
                Ok(Some(acc.epsilon(delta)?.epsilon))
            }
            _ => Ok(None),
        }
    }
}

/// The norm-attack leak meter (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeakMeter {
    auc_sum: f64,
    batches: u64,
}

impl LeakMeter {
    /// Adds one batch: the gradient rows as sent (`rows × k`) and the 0/1
    /// labels. Batches with a single class are skipped.
    pub fn add(&mut self, grad: &[f32], k: usize, labels: &[f32]) {
        if k == 0 {
            return;
        }
        let norms: Vec<f64> = grad.chunks_exact(k).map(l2_norm).collect();
        let y: Vec<f64> = labels.iter().map(|v| f64::from(*v)).collect();
        if let Ok(auc) = fedra_metrics::roc_auc(&y, &norms) {
            self.auc_sum += auc;
            self.batches += 1;
        }
    }

    /// Mean per-batch leak AUC (`None` before any two-class batch).
    pub fn auc(&self) -> Option<f64> {
        (self.batches > 0).then(|| self.auc_sum / self.batches as f64)
    }

    /// Batches measured.
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn gaussian_clips_rows_of_the_summed_gradient() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        // 2 rows × 2: mean-loss rows; summed rows are ×2: (6, 8) norm 10, (0.3, 0.4) norm 0.5.
        let mut g = vec![3.0, 4.0, 0.15, 0.2];
        let p = GradientProtection::Gaussian {
            clip_norm: 1.0,
            noise_multiplier: 0.0,
            delta: 1e-5,
        };
        p.apply(&mut g, 2, 2, &mut rng).unwrap();
        let want = [0.3, 0.4, 0.15, 0.2];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
        // Google dp-accounting 0.6 (shared NOTES): σ 1.1, q 256/60000,
        // 2350 steps, δ 1e-5 → ε 1.099707 (RDP).
        let p = GradientProtection::Gaussian {
            clip_norm: 1.0,
            noise_multiplier: 1.1,
            delta: 1e-5,
        };
        let eps = p.epsilon(256.0 / 60000.0, 2350).unwrap().unwrap();
        assert!((eps - 1.099707).abs() < 1e-5, "{eps}");
        assert_eq!(GradientProtection::MaxNorm.epsilon(0.1, 10).unwrap(), None);
    }

    #[test]
    fn max_norm_equalises_expected_norms() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let k = 256;
        let mut g: Vec<f32> = (0..2 * k).map(|i| if i < k { 1.0 } else { 0.01 }).collect();
        GradientProtection::MaxNorm
            .apply(&mut g, 2, k, &mut rng)
            .unwrap();
        let n0 = l2_norm(&g[..k]);
        let n1 = l2_norm(&g[k..]);
        assert_eq!(n0, 16.0, "the largest row is unchanged");
        assert!((n1 / n0 - 1.0).abs() < 0.15, "{n0} {n1}");
    }

    #[test]
    fn the_meter_sees_norms_that_follow_labels() {
        let mut m = LeakMeter::default();
        m.add(&[3.0, 0.1, 2.0, 0.2], 1, &[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m.auc(), Some(1.0));
        m.add(&[3.0, 0.1], 1, &[1.0, 1.0]);
        assert_eq!(m.batches(), 1);
    }
}
