//! [`SparseEmbedding`]: a hashed embedding table kept **outside** the
//! autodiff graph and updated **row-wise**.
//!
//! A training step never touches the whole table: the batch's rows are
//! de-duplicated ([`dedupe`]), gathered into the dense input of the bottom
//! MLP (one copy per occurrence, i.e. expanded by the inverse index), and
//! after the backward pass the input gradient of those columns is summed
//! back per unique row (the inverse index again) and the optimiser updates
//! those rows only ([`SparseEmbedding::apply_gradient`]). Cost per step is
//! `O(unique rows × dim)`, independent of the table size; every other row
//! and its optimiser state stay bit-identical.
//!
//! Memory: [`SparseEmbedding::bytes_per_row`] = `4·dim` (f32 weights) + the
//! optimiser state (Adagrad `4·dim`, row-wise Adagrad 4, lazy Adam and
//! FTRL `8·dim`, SGD 0).

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SplitError};

/// Largest table: 2^31 values (8 GiB of weights).
pub const MAX_TABLE_VALUES: usize = 1 << 31;

/// The row-wise optimiser of an embedding table.
///
/// ```toml
/// kind = "rowwise_adagrad"   # or "adagrad", "lazy_adam", "ftrl", "sgd"
/// lr = 0.05
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbeddingOptimizer {
    /// Plain SGD on the touched rows (no state).
    Sgd {
        /// Learning rate, finite and `> 0`.
        lr: f32,
    },
    /// Adagrad with one accumulator per value (PyTorch's sparse Adagrad):
    /// `G += g²; w −= lr·g/(√G + eps)`.
    Adagrad {
        /// Learning rate, finite and `> 0`.
        lr: f32,
        /// Initial accumulator value, `>= 0`.
        #[serde(default)]
        initial_accumulator: f32,
        /// Denominator offset, `> 0`.
        #[serde(default = "default_eps")]
        eps: f32,
    },
    /// Row-wise Adagrad (FBGEMM/TorchRec): one accumulator per row,
    /// `G += mean(g²); w −= lr·g/(√G + eps)` — 4 bytes of state per row.
    RowwiseAdagrad {
        /// Learning rate, finite and `> 0`.
        lr: f32,
        /// Initial accumulator value, `>= 0`.
        #[serde(default)]
        initial_accumulator: f32,
        /// Denominator offset, `> 0`.
        #[serde(default = "default_eps")]
        eps: f32,
    },
    /// "Lazy" Adam (TensorFlow's LazyAdam, PyTorch's SparseAdam): the
    /// moments of the touched rows only are updated, bias correction uses
    /// the table's step count (steps in which any row was touched) —
    /// `8·dim` bytes of state per row.
    LazyAdam {
        /// Learning rate, finite and `> 0`.
        lr: f32,
        /// First-moment decay in `[0, 1)`.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Second-moment decay in `[0, 1)`.
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Denominator offset, `> 0`.
        #[serde(default = "default_adam_eps")]
        eps: f32,
    },
    /// FTRL-Proximal (McMahan et al. 2013), per value: state `z`, `n`;
    /// `σ = (√(n+g²) − √n)/α; z += g − σ·w; n += g²;
    /// w = 0 if |z| ≤ λ1 else −(z − sign(z)·λ1)/((β + √n)/α + λ2)`.
    /// `z` starts where `w` equals the initial weights (so L1 zeroes a
    /// weight only once the gradients drive its `z` into `[−λ1, λ1]`;
    /// `init_scale = 0` is the classic all-zero start) — `8·dim` bytes of
    /// state per row.
    Ftrl {
        /// α (learning rate), finite and `> 0`.
        alpha: f32,
        /// β, `>= 0`.
        #[serde(default = "default_ftrl_beta")]
        beta: f32,
        /// L1 strength λ1, `>= 0`.
        #[serde(default)]
        l1: f32,
        /// L2 strength λ2, `>= 0`.
        #[serde(default)]
        l2: f32,
    },
}

fn default_ftrl_beta() -> f32 {
    1.0
}

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_adam_eps() -> f32 {
    1e-8
}

fn default_eps() -> f32 {
    1e-10
}

impl EmbeddingOptimizer {
    /// Row-wise Adagrad with learning rate `lr`.
    pub fn rowwise_adagrad(lr: f32) -> Self {
        EmbeddingOptimizer::RowwiseAdagrad {
            lr,
            initial_accumulator: 0.0,
            eps: default_eps(),
        }
    }

    /// Element-wise Adagrad with learning rate `lr`.
    pub fn adagrad(lr: f32) -> Self {
        EmbeddingOptimizer::Adagrad {
            lr,
            initial_accumulator: 0.0,
            eps: default_eps(),
        }
    }

    /// State values (f32) per row for a table of width `dim`.
    pub fn state_per_row(&self, dim: usize) -> usize {
        match self {
            EmbeddingOptimizer::Sgd { .. } => 0,
            EmbeddingOptimizer::Adagrad { .. } => dim,
            EmbeddingOptimizer::RowwiseAdagrad { .. } => 1,
            EmbeddingOptimizer::LazyAdam { .. } | EmbeddingOptimizer::Ftrl { .. } => 2 * dim,
        }
    }

    fn validate(&self) -> Result<()> {
        let (lr, init, eps) = match *self {
            EmbeddingOptimizer::Sgd { lr } => (lr, 0.0, 1.0),
            EmbeddingOptimizer::LazyAdam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2)) {
                    return Err(SplitError::config(
                        "embedding optimizer beta1/beta2",
                        format!("must be in [0, 1) (got {beta1}, {beta2})"),
                    ));
                }
                (lr, 0.0, eps)
            }
            EmbeddingOptimizer::Ftrl {
                alpha,
                beta,
                l1,
                l2,
            } => {
                if ![beta, l1, l2].iter().all(|v| v.is_finite() && *v >= 0.0) {
                    return Err(SplitError::config(
                        "embedding optimizer beta/l1/l2",
                        format!("must be finite and >= 0 (got {beta}, {l1}, {l2})"),
                    ));
                }
                (alpha, 0.0, 1.0)
            }
            EmbeddingOptimizer::Adagrad {
                lr,
                initial_accumulator,
                eps,
            }
            | EmbeddingOptimizer::RowwiseAdagrad {
                lr,
                initial_accumulator,
                eps,
            } => (lr, initial_accumulator, eps),
        };
        if !(lr.is_finite() && lr > 0.0) {
            return Err(SplitError::config(
                "embedding optimizer lr",
                format!("must be finite and > 0 (got {lr})"),
            ));
        }
        if !(init.is_finite() && init >= 0.0) {
            return Err(SplitError::config(
                "embedding optimizer initial_accumulator",
                format!("must be finite and >= 0 (got {init})"),
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(SplitError::config(
                "embedding optimizer eps",
                format!("must be finite and > 0 (got {eps})"),
            ));
        }
        Ok(())
    }
}

/// One embedding table: `rows × dim`, hashed ids, its optimiser.
///
/// ```toml
/// rows = 1000000
/// dim = 16
/// init_scale = 0.05                           # weights ~ U(±init_scale)
/// optimizer = { kind = "rowwise_adagrad", lr = 0.05 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Number of rows (hash buckets), `>= 1`.
    pub rows: usize,
    /// Width of a row, `>= 1`.
    pub dim: usize,
    /// Initial weights are uniform in `±init_scale` (finite, `>= 0`).
    #[serde(default = "default_init_scale")]
    pub init_scale: f32,
    /// The row-wise optimiser.
    pub optimizer: EmbeddingOptimizer,
}

fn default_init_scale() -> f32 {
    0.05
}

impl TableSpec {
    /// A table with the default initialisation and row-wise Adagrad.
    pub fn new(rows: usize, dim: usize, lr: f32) -> Self {
        TableSpec {
            rows,
            dim,
            init_scale: default_init_scale(),
            optimizer: EmbeddingOptimizer::rowwise_adagrad(lr),
        }
    }

    /// Checks sizes and the optimiser.
    pub fn validate(&self) -> Result<()> {
        if self.rows == 0 || self.dim == 0 || self.dim > 4096 {
            return Err(SplitError::config(
                "table",
                format!(
                    "rows must be >= 1 and dim in 1..=4096 (got {} × {})",
                    self.rows, self.dim
                ),
            ));
        }
        let values = self.rows.saturating_mul(self.dim);
        if values > MAX_TABLE_VALUES {
            return Err(SplitError::config(
                "table",
                format!(
                    "{} × {} = {values} values is more than {MAX_TABLE_VALUES}",
                    self.rows, self.dim
                ),
            ));
        }
        if !(self.init_scale.is_finite() && self.init_scale >= 0.0) {
            return Err(SplitError::config(
                "table.init_scale",
                format!("must be finite and >= 0 (got {})", self.init_scale),
            ));
        }
        self.optimizer.validate()
    }

    /// Bytes of memory per row: weights plus optimiser state.
    pub fn bytes_per_row(&self) -> usize {
        4 * (self.dim + self.optimizer.state_per_row(self.dim))
    }
}

/// 64-bit finaliser of SplitMix64: a fast bijective mix of the id bits.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit id for a categorical string value (FNV-1a, then
/// [`mix64`]); e.g. Criteo's hexadecimal category strings.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// De-duplicates row indices: `(unique, inverse)` with
/// `unique[inverse[i]] == rows[i]`, unique rows in first-seen order.
pub fn dedupe(rows: &[usize]) -> (Vec<usize>, Vec<u32>) {
    let mut seen = std::collections::HashMap::with_capacity(rows.len());
    let mut unique = Vec::new();
    let inverse = rows
        .iter()
        .map(|&r| {
            *seen.entry(r).or_insert_with(|| {
                unique.push(r);
                (unique.len() - 1) as u32
            })
        })
        .collect();
    (unique, inverse)
}

/// A hashed embedding table with a row-wise optimiser (see the
/// [module docs](self)).
#[derive(Clone)]
pub struct SparseEmbedding {
    spec: TableSpec,
    weights: Vec<f32>,
    state: Vec<f32>,
    steps: u64,
}

impl std::fmt::Debug for SparseEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseEmbedding")
            .field("spec", &self.spec)
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// The uniform `[0, 1)` float from 24 random bits.
fn unit(rng: &mut dyn RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A table's full state (checkpoints): weights, optimiser state, steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableState {
    /// Weights, row-major `rows × dim`.
    pub weights: Vec<f32>,
    /// Optimiser state (see [`SparseEmbedding::state`]).
    pub state: Vec<f32>,
    /// Optimiser steps taken.
    pub steps: u64,
}

impl SparseEmbedding {
    /// This table's state, for a checkpoint.
    pub fn to_state(&self) -> TableState {
        TableState {
            weights: self.weights.clone(),
            state: self.state.clone(),
            steps: self.steps,
        }
    }

    /// A table from a checkpointed state (sizes checked against `spec`,
    /// values finite).
    pub fn from_state(spec: TableSpec, s: TableState) -> Result<Self> {
        spec.validate()?;
        let (w, st) = (
            spec.rows * spec.dim,
            spec.rows * spec.optimizer.state_per_row(spec.dim),
        );
        if s.weights.len() != w || s.state.len() != st {
            return Err(SplitError::Data(format!(
                "table state has {} weights and {} state values; the spec needs {w} and {st}",
                s.weights.len(),
                s.state.len()
            )));
        }
        if s.weights.iter().chain(&s.state).any(|v| !v.is_finite()) {
            return Err(SplitError::Data(
                "table state holds a non-finite value".into(),
            ));
        }
        Ok(SparseEmbedding {
            spec,
            weights: s.weights,
            state: s.state,
            steps: s.steps,
        })
    }

    /// A table initialised uniformly in `±init_scale` from `rng` (row by
    /// row), optimiser state at its initial value.
    pub fn new(spec: TableSpec, rng: &mut dyn RngCore) -> Result<Self> {
        spec.validate()?;
        let n = spec.rows * spec.dim;
        let s = spec.init_scale;
        let weights: Vec<f32> = (0..n).map(|_| (2.0 * unit(rng) - 1.0) * s).collect();
        let init = match spec.optimizer {
            EmbeddingOptimizer::Adagrad {
                initial_accumulator,
                ..
            }
            | EmbeddingOptimizer::RowwiseAdagrad {
                initial_accumulator,
                ..
            } => initial_accumulator,
            EmbeddingOptimizer::Sgd { .. }
            | EmbeddingOptimizer::LazyAdam { .. }
            | EmbeddingOptimizer::Ftrl { .. } => 0.0,
        };
        let mut state = vec![init; spec.rows * spec.optimizer.state_per_row(spec.dim)];
        if let EmbeddingOptimizer::Ftrl {
            alpha,
            beta,
            l1,
            l2,
        } = spec.optimizer
        {
            // z such that the FTRL weight at n = 0 is the initial weight.
            let d = spec.dim;
            for (r, w) in weights.chunks_exact(d).enumerate() {
                for (j, &w) in w.iter().enumerate() {
                    state[2 * r * d + j] = if w == 0.0 {
                        0.0
                    } else {
                        -w * (beta / alpha + l2) - w.signum() * l1
                    };
                }
            }
        }
        Ok(SparseEmbedding {
            spec,
            weights,
            state,
            steps: 0,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.spec.rows
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    /// Bytes per row: weights plus optimiser state.
    pub fn bytes_per_row(&self) -> usize {
        self.spec.bytes_per_row()
    }

    /// Bytes of the whole table (weights and optimiser state).
    pub fn memory_bytes(&self) -> usize {
        4 * (self.weights.len() + self.state.len())
    }

    /// The row of a (hashed) id: `mix64(id) mod rows`.
    pub fn row_of(&self, id: u64) -> usize {
        (mix64(id) % self.spec.rows as u64) as usize
    }

    /// Row `r` (panics never: `None` if out of range).
    pub fn row(&self, r: usize) -> Option<&[f32]> {
        let d = self.spec.dim;
        self.weights.get(r * d..(r + 1) * d)
    }

    /// All weights, row-major (for tests and checkpoints).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The optimiser state, row-major (for tests and checkpoints): per
    /// row, Adagrad's `dim` accumulators, row-wise Adagrad's one, lazy
    /// Adam's `dim` first then `dim` second moments, or FTRL's `dim` `z`
    /// then `dim` `n`.
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Optimiser steps taken (calls of [`SparseEmbedding::apply_gradient`]
    /// that touched at least one row).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Applies the optimiser to the rows `unique` (distinct, in range)
    /// with their gradients `grads` (row-major `unique.len() × dim`,
    /// finite). No other row or state value is read or written.
    pub fn apply_gradient(&mut self, unique: &[usize], grads: &[f32]) -> Result<()> {
        let d = self.spec.dim;
        if grads.len() != unique.len() * d {
            return Err(SplitError::Data(format!(
                "embedding gradient has {} values for {} rows of {d}",
                grads.len(),
                unique.len()
            )));
        }
        if let Some(&r) = unique.iter().find(|&&r| r >= self.spec.rows) {
            return Err(SplitError::Data(format!(
                "embedding row {r} is out of range (table of {} rows)",
                self.spec.rows
            )));
        }
        if let Some(i) = grads.iter().position(|g| !g.is_finite()) {
            return Err(SplitError::Data(format!(
                "embedding gradient value {i} is not finite"
            )));
        }
        if unique.is_empty() {
            return Ok(());
        }
        self.steps += 1;
        let t = self.steps.min(i32::MAX as u64) as i32;
        for (&r, g) in unique.iter().zip(grads.chunks_exact(d)) {
            let w = &mut self.weights[r * d..(r + 1) * d];
            match self.spec.optimizer {
                EmbeddingOptimizer::Sgd { lr } => {
                    for (w, g) in w.iter_mut().zip(g) {
                        *w -= lr * g;
                    }
                }
                EmbeddingOptimizer::Adagrad { lr, eps, .. } => {
                    let s = &mut self.state[r * d..(r + 1) * d];
                    for ((w, g), s) in w.iter_mut().zip(g).zip(s.iter_mut()) {
                        *s += g * g;
                        *w -= lr * g / (s.sqrt() + eps);
                    }
                }
                EmbeddingOptimizer::RowwiseAdagrad { lr, eps, .. } => {
                    let mean_sq = g.iter().map(|g| g * g).sum::<f32>() / d as f32;
                    let s = &mut self.state[r];
                    *s += mean_sq;
                    let step = lr / (s.sqrt() + eps);
                    for (w, g) in w.iter_mut().zip(g) {
                        *w -= step * g;
                    }
                }
                EmbeddingOptimizer::LazyAdam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                } => {
                    let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                    let (m, v) = self.state[2 * r * d..2 * (r + 1) * d].split_at_mut(d);
                    for (((w, g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *w -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
                    }
                }
                EmbeddingOptimizer::Ftrl {
                    alpha,
                    beta,
                    l1,
                    l2,
                } => {
                    let (z, n) = self.state[2 * r * d..2 * (r + 1) * d].split_at_mut(d);
                    for (((w, g), z), n) in w.iter_mut().zip(g).zip(z).zip(n) {
                        let n1 = *n + g * g;
                        let sigma = (n1.sqrt() - n.sqrt()) / alpha;
                        *z += g - sigma * *w;
                        *n = n1;
                        *w = if z.abs() <= l1 {
                            0.0
                        } else {
                            -(*z - z.signum() * l1) / ((beta + n1.sqrt()) / alpha + l2)
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dedupe_inverts() {
        let rows = [5, 3, 5, 9, 3, 3];
        let (u, inv) = dedupe(&rows);
        assert_eq!(u, vec![5, 3, 9]);
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(u[inv[i] as usize], r);
        }
    }

    #[test]
    fn memory_per_row_is_known() {
        assert_eq!(TableSpec::new(10, 16, 0.1).bytes_per_row(), 68);
        let mut t = TableSpec::new(10, 16, 0.1);
        t.optimizer = EmbeddingOptimizer::adagrad(0.1);
        assert_eq!(t.bytes_per_row(), 128);
        t.optimizer = EmbeddingOptimizer::Sgd { lr: 0.1 };
        assert_eq!(t.bytes_per_row(), 64);
        t.optimizer = EmbeddingOptimizer::LazyAdam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert_eq!(t.bytes_per_row(), 192);
    }

    #[test]
    fn every_optimizer_updates_only_the_given_rows() {
        use rand_core::SeedableRng;
        for opt in [
            EmbeddingOptimizer::Sgd { lr: 0.1 },
            EmbeddingOptimizer::adagrad(0.1),
            EmbeddingOptimizer::rowwise_adagrad(0.1),
            EmbeddingOptimizer::LazyAdam {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            EmbeddingOptimizer::Ftrl {
                alpha: 0.1,
                beta: 1.0,
                l1: 0.0,
                l2: 0.0,
            },
        ] {
            let spec = TableSpec {
                optimizer: opt,
                ..TableSpec::new(50, 3, 0.1)
            };
            let mut t = SparseEmbedding::new(spec, &mut rand_chacha::ChaCha20Rng::seed_from_u64(1))
                .unwrap();
            let before = t.clone();
            let rows = [7usize, 31];
            t.apply_gradient(&rows, &[1.0, -2.0, 0.5, 0.1, 0.0, -0.3])
                .unwrap();
            let s = opt.state_per_row(3);
            for r in 0..50 {
                let same_w = t.row(r) == before.row(r);
                let same_s = t.state()[r * s..(r + 1) * s] == before.state()[r * s..(r + 1) * s];
                assert_eq!(same_w && same_s, !rows.contains(&r), "{opt:?} row {r}");
            }
            // The first step moves a weight against its gradient's sign.
            assert!(t.row(7).unwrap()[0] < before.row(7).unwrap()[0], "{opt:?}");
            assert!(t.apply_gradient(&[50], &[0.0; 3]).is_err());
            assert!(t.apply_gradient(&[1], &[0.0, f32::NAN, 0.0]).is_err());
        }
    }

    #[test]
    fn ftrl_starts_at_the_initial_weights_and_l1_makes_zeros() {
        use rand_core::SeedableRng;
        let ftrl = |l1| TableSpec {
            optimizer: EmbeddingOptimizer::Ftrl {
                alpha: 0.05,
                beta: 1.0,
                l1,
                l2: 0.1,
            },
            ..TableSpec::new(4, 8, 0.1)
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let mut t = SparseEmbedding::new(ftrl(0.5), &mut rng).unwrap();
        let before = t.row(1).unwrap().to_vec();
        t.apply_gradient(&[1], &[0.0; 8]).unwrap();
        for (a, b) in t.row(1).unwrap().iter().zip(&before) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // From zero weights, small gradients against strong L1 leave the
        // row exactly zero; without L1 it moves.
        for (l1, zero) in [(50.0, true), (0.0, false)] {
            let spec = TableSpec {
                init_scale: 0.0,
                ..ftrl(l1)
            };
            let mut t = SparseEmbedding::new(spec, &mut rng).unwrap();
            for _ in 0..3 {
                t.apply_gradient(&[2], &[1e-3; 8]).unwrap();
            }
            assert_eq!(t.row(2).unwrap().iter().all(|v| *v == 0.0), zero);
        }
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(hash_str("68fd1e64"), hash_str("68fd1e64"));
        assert_ne!(hash_str("68fd1e64"), hash_str("68fd1e65"));
        assert_ne!(mix64(0), mix64(1));
    }
}
