//! Arithmetic shared by the secure protocols and the plaintext reference, so
//! that both compute bit-for-bit the same fixed-point values.

use fedra_data::Dataset;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{Config, Objective, Penalty, Sigmoid};
use crate::error::{LinearError, Result};
use crate::model::Scaling;

/// A party's features, standardised and fixed-point encoded.
pub(crate) struct Encoded {
    /// Row-major `rows × cols` integers `round(x · 2^F)`; the guest's last
    /// column is the intercept's constant 1 (if fitted).
    pub x: Vec<i64>,
    pub rows: usize,
    pub cols: usize,
    pub scaling: Option<Scaling>,
}

pub(crate) fn scale(f: u32) -> f64 {
    (f64::from(f)).exp2()
}

/// `round(v · 2^F)`, refusing values that do not fit comfortably in an i64.
pub(crate) fn encode(v: f64, f: u32) -> Result<i64> {
    let s = (v * scale(f)).round();
    if !s.is_finite() || s.abs() >= 2f64.powi(62) {
        return Err(LinearError::Data(format!(
            "value {v} is too large for {f}-bit fixed point (standardise the features?)"
        )));
    }
    Ok(s as i64)
}

/// Column means and (population) standard deviations; constant columns get 1.
pub(crate) fn fit_scaling(data: &Dataset) -> Scaling {
    let (n, f) = (data.n_rows(), data.n_features());
    let mut mean = vec![0.0; f];
    let mut std = vec![0.0; f];
    for j in 0..f {
        let m = data.column(j).sum::<f64>() / n.max(1) as f64;
        let var = data.column(j).map(|x| (x - m) * (x - m)).sum::<f64>() / n.max(1) as f64;
        mean[j] = m;
        std[j] = if var > 0.0 { var.sqrt() } else { 1.0 };
    }
    Scaling { mean, std }
}

pub(crate) fn check_finite(data: &Dataset) -> Result<()> {
    if let Some(k) = data.features().iter().position(|v| !v.is_finite()) {
        let f = data.n_features().max(1);
        return Err(LinearError::Data(format!(
            "non-finite value in row {} column '{}'",
            k / f,
            data.feature_names().get(k % f).map_or("?", String::as_str)
        )));
    }
    Ok(())
}

/// Standardises (if `scaling`) and encodes a dataset; adds a constant-1
/// column if `intercept`.
pub(crate) fn encode_dataset(
    data: &Dataset,
    scaling: Option<Scaling>,
    intercept: bool,
    f: u32,
) -> Result<Encoded> {
    check_finite(data)?;
    let (rows, nf) = (data.n_rows(), data.n_features());
    let cols = nf + usize::from(intercept);
    let mut x = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for (j, &v) in data.row(i).iter().enumerate() {
            let v = match &scaling {
                Some(s) => (v - s.mean[j]) / s.std[j],
                None => v,
            };
            x.push(encode(v, f)?);
        }
        if intercept {
            x.push(1i64 << f);
        }
    }
    Ok(Encoded {
        x,
        rows,
        cols,
        scaling,
    })
}

impl Encoded {
    /// `u_i = Σ_j (x_ij / 2^F) · w_j` for the given rows.
    pub(crate) fn scores(&self, rows: &[usize], w: &[f64], f: u32) -> Vec<f64> {
        let s = scale(f);
        rows.iter()
            .map(|&i| {
                self.x[i * self.cols..(i + 1) * self.cols]
                    .iter()
                    .zip(w)
                    .map(|(&x, &w)| (x as f64 / s) * w)
                    .sum()
            })
            .collect()
    }

    /// The batch's rows as a row-major scalar matrix.
    pub(crate) fn gather(&self, rows: &[usize]) -> Vec<i64> {
        let mut out = Vec::with_capacity(rows.len() * self.cols);
        for &i in rows {
            out.extend_from_slice(&self.x[i * self.cols..(i + 1) * self.cols]);
        }
        out
    }

    /// Exact `X_batchᵀ v` over the integers.
    pub(crate) fn xt_dot(&self, rows: &[usize], v: &[i128]) -> Vec<i128> {
        let mut g = vec![0i128; self.cols];
        for (&i, &vi) in rows.iter().zip(v) {
            for (gj, &x) in g
                .iter_mut()
                .zip(&self.x[i * self.cols..(i + 1) * self.cols])
            {
                *gj += i128::from(x) * vi;
            }
        }
        g
    }
}

/// Mini-batches of row indices for an epoch (the same on every party).
pub(crate) fn batches(n: usize, size: usize, seed: Option<u64>, epoch: u32) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = seed {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(epoch) << 32 | 0x5eed));
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

/// Labels as used by the objective: logistic labels become ±1.
pub(crate) fn prepare_labels(objective: Objective, labels: &[f64]) -> Result<Vec<f64>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| match objective {
            Objective::Logistic if y == 1.0 => Ok(1.0),
            Objective::Logistic if y == 0.0 || y == -1.0 => Ok(-1.0),
            Objective::Logistic => Err(LinearError::Data(format!(
                "label {y} in row {i} is not a binary label (0/1 or -1/1)"
            ))),
            Objective::Linear if y.is_finite() => Ok(y),
            Objective::Linear => Err(LinearError::Data(format!(
                "label {y} in row {i} is not finite"
            ))),
        })
        .collect()
}

/// `round(v · 2^2F)`, refusing values that do not fit in an i64 scalar.
pub(crate) fn encode2(v: f64, f: u32) -> Result<i64> {
    encode(v * scale(f), f)
}

/// The logistic function, computed without overflow.
fn sigmoid(a: f64) -> f64 {
    if a >= 0.0 {
        1.0 / (1.0 + (-a).exp())
    } else {
        let e = a.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^a)` without overflow.
fn softplus(a: f64) -> f64 {
    if a > 0.0 {
        a + (-a).exp().ln_1p()
    } else {
        a.exp().ln_1p()
    }
}

/// The curvature `α` of the residual `d = β + α·b` in the hosts' score `b`.
pub(crate) enum Alpha {
    /// The same for every row (linear regression, Taylor): `round(α · 2^F)`.
    Const(i64),
    /// One per row of the batch (the linearised sigmoid), each `round(α_i · 2^F)`.
    PerRow(Vec<i64>),
}

/// Whether the guest sends one `α` per row (a second ciphertext per row).
pub(crate) fn alpha_per_row(cfg: &Config) -> bool {
    cfg.objective == Objective::Logistic && cfg.sigmoid == Sigmoid::Linearized
}

/// What the guest derives from its own partial scores `a` (intercept
/// included) and labels for a batch: the per-row residual is
/// `d_i = β_i + α_i·b_i` with `b_i` the sum of the hosts' partial scores,
/// and the per-row loss `ℓ_i + β_i·b_i + ½·α_i·b_i²` — the loss as a
/// function of `b` expanded to second order around the guest's own score
/// (exact for linear regression and for the Taylor loss, whose `ℓ`, `β`,
/// `α` are those of the expansion around 0).
pub(crate) struct Coeffs {
    /// `round(β_i · 2^2F)`.
    pub beta: Vec<i64>,
    /// `α`, scale `2^F`.
    pub alpha: Alpha,
    /// `Σ_i ℓ_i(a_i)`.
    pub ell: f64,
}

impl Coeffs {
    /// `α_k · 2^F` for the batch's `k`-th row.
    pub(crate) fn alpha_at(&self, k: usize) -> i64 {
        match &self.alpha {
            Alpha::Const(a) => *a,
            Alpha::PerRow(v) => v.get(k).copied().unwrap_or(0),
        }
    }

    /// `D_k = B_k + A_k·U_k` (scale `2^2F`) for the hosts' summed encoded scores `u`.
    pub(crate) fn residuals(&self, u: &[i128]) -> Result<Vec<i128>> {
        self.beta
            .iter()
            .zip(u)
            .enumerate()
            .map(|(k, (&b, &u))| {
                i128::from(self.alpha_at(k))
                    .checked_mul(u)
                    .and_then(|au| au.checked_add(i128::from(b)))
                    .ok_or_else(overflow)
            })
            .collect()
    }

    /// `Σ_k 2·B_k·U_k + A_k·U_k²` (scale `2^3F`): twice the cross terms of the loss.
    pub(crate) fn cross_loss(&self, u: &[i128]) -> Result<i128> {
        let mut s = 0i128;
        for (k, (&b, &u)) in self.beta.iter().zip(u).enumerate() {
            let t = u
                .checked_mul(2 * i128::from(b))
                .and_then(|x| {
                    u.checked_mul(u)
                        .and_then(|uu| uu.checked_mul(i128::from(self.alpha_at(k))))
                        .and_then(|y| x.checked_add(y))
                })
                .and_then(|t| s.checked_add(t))
                .ok_or_else(overflow)?;
            s = t;
        }
        Ok(s)
    }
}

/// The error for a fixed-point value outside the integer range.
pub(crate) fn overflow() -> LinearError {
    LinearError::Data(
        "fixed-point overflow (diverging training? lower learning_rate or precision_bits)".into(),
    )
}

/// `round(α · 2^F)` when `α` is the same for every row (linear regression:
/// 1, the Taylor sigmoid: ¼); unused with the linearised sigmoid.
pub(crate) fn const_alpha(cfg: &Config) -> Result<i64> {
    let c = match cfg.objective {
        Objective::Linear => 1.0,
        Objective::Logistic => 0.25,
    };
    encode(c, cfg.precision_bits)
}

/// The guest's coefficients for a batch (`y` as prepared by [`prepare_labels`]).
pub(crate) fn coefficients(cfg: &Config, rows: &[usize], y: &[f64], a: &[f64]) -> Result<Coeffs> {
    let f = cfg.precision_bits;
    let per_row = alpha_per_row(cfg);
    let mut beta = Vec::with_capacity(rows.len());
    let mut alpha = Vec::with_capacity(if per_row { rows.len() } else { 0 });
    let mut ell = 0.0;
    for (&i, &a) in rows.iter().zip(a) {
        let yi = y.get(i).copied().unwrap_or(0.0);
        // Logistic labels are ±1; t is the 0/1 label.
        let t = 0.5 * (yi + 1.0);
        let (l, b, al) = match (cfg.objective, cfg.sigmoid) {
            (Objective::Linear, _) => (0.5 * (a - yi) * (a - yi), a - yi, 1.0),
            (Objective::Logistic, Sigmoid::Taylor) => (
                std::f64::consts::LN_2 + (0.5 - t) * a + 0.125 * a * a,
                0.5 - t + 0.25 * a,
                0.25,
            ),
            (Objective::Logistic, Sigmoid::Linearized) => {
                let s = sigmoid(a);
                (softplus(a) - t * a, s - t, s * (1.0 - s))
            }
        };
        ell += l;
        beta.push(encode2(b, f)?);
        if per_row {
            alpha.push(encode(al, f)?);
        }
    }
    let alpha = if per_row {
        Alpha::PerRow(alpha)
    } else {
        Alpha::Const(const_alpha(cfg)?)
    };
    Ok(Coeffs { beta, alpha, ell })
}

/// `2^(3F+1)`: the scale of loss values exchanged as integers (twice the
/// loss at the gradients' scale `2^3F`).
pub(crate) fn loss_scale(f: u32) -> f64 {
    scale(3 * f + 1)
}

/// `round(v · 2^(3F+1))`.
pub(crate) fn loss_fixed(v: f64, f: u32) -> Result<i128> {
    let s = (v * loss_scale(f)).round();
    if !s.is_finite() || s.abs() >= 2f64.powi(110) {
        return Err(LinearError::Data(format!(
            "loss term {v} overflows the fixed-point range (diverging training? lower learning_rate)"
        )));
    }
    Ok(s as i128)
}

/// The value of the penalty for `w` (the intercept, if any, is `w[skip]`).
pub(crate) fn penalty_value(p: Penalty, w: &[f64], skip: Option<usize>) -> f64 {
    let it = w
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != skip)
        .map(|(_, w)| *w);
    match p {
        Penalty::None => 0.0,
        Penalty::L1 { alpha } => alpha * it.map(f64::abs).sum::<f64>(),
        Penalty::L2 { alpha } => 0.5 * alpha * it.map(|w| w * w).sum::<f64>(),
    }
}

/// A batch's penalty term `B · R(w)` (with the weights before the update).
pub(crate) fn batch_penalty(
    cfg: &Config,
    w: &[f64],
    batch_len: usize,
    intercept: Option<usize>,
) -> f64 {
    batch_len as f64 * penalty_value(cfg.penalty, w, intercept)
}

/// One party's step for a batch: from the exact integer gradient
/// `G = X_pᵀ D` (scale `2^3F`) to the updated weights.
pub(crate) fn step(
    cfg: &Config,
    epoch: u32,
    w: &mut [f64],
    g: &[i128],
    batch_len: usize,
    intercept: Option<usize>,
) {
    let s3 = scale(3 * cfg.precision_bits);
    let lr = cfg.learning_rate_at(epoch);
    let b = batch_len as f64;
    for (j, (wj, &gj)) in w.iter_mut().zip(g).enumerate() {
        let reg = if Some(j) == intercept {
            0.0
        } else {
            match cfg.penalty {
                Penalty::None => 0.0,
                Penalty::L1 { alpha } => alpha * wj.signum() * f64::from(u8::from(*wj != 0.0)),
                Penalty::L2 { alpha } => alpha * *wj,
            }
        };
        *wj -= lr * (gj as f64 / s3 / b + reg);
    }
}

/// Early-stopping bookkeeping.
pub(crate) struct Stopper {
    best: f64,
    bad: u32,
}

impl Stopper {
    pub(crate) fn new() -> Self {
        Stopper {
            best: f64::INFINITY,
            bad: 0,
        }
    }

    /// Records an epoch loss; true if training should stop.
    pub(crate) fn update(&mut self, cfg: &Config, loss: f64) -> bool {
        let Some(es) = cfg.early_stopping else {
            return false;
        };
        if loss < self.best - es.tol {
            self.best = loss;
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        self.bad >= es.patience
    }
}
