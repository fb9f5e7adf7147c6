//! Arithmetic shared by the secure protocols and the plaintext reference, so
//! that both compute bit-for-bit the same fixed-point values.

use fedra_data::Dataset;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{Config, Objective, Penalty};
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

/// Per-objective constants: the residual is `d = a · (u + c(y))`, and the
/// per-row loss is `½·d·u + β(y)·u + γ(y)`.
pub(crate) struct Loss {
    pub objective: Objective,
    pub f: u32,
}

impl Loss {
    /// `a`.
    pub(crate) fn a(&self) -> f64 {
        match self.objective {
            Objective::Logistic => 0.25,
            Objective::Linear => 1.0,
        }
    }

    /// `round(c(y) · 2^F)`: `-2y` (logistic, y = ±1) or `-y` (linear).
    pub(crate) fn offset(&self, y: f64) -> Result<i64> {
        match self.objective {
            Objective::Logistic => encode(-2.0 * y, self.f),
            Objective::Linear => encode(-y, self.f),
        }
    }

    /// `round(β(y) · 2^F)`: `-y/4` (logistic) or `-y/2` (linear).
    pub(crate) fn beta(&self, y: f64) -> Result<i64> {
        match self.objective {
            Objective::Logistic => encode(-0.25 * y, self.f),
            Objective::Linear => encode(-0.5 * y, self.f),
        }
    }

    /// `γ(y)`: `ln 2` (logistic) or `y²/2` (linear).
    pub(crate) fn gamma(&self, y: f64) -> f64 {
        match self.objective {
            Objective::Logistic => std::f64::consts::LN_2,
            Objective::Linear => 0.5 * y * y,
        }
    }
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

/// One party's step for a batch: from the exact integer `G = X_pᵀ D'`
/// (scale 2^2F) to the updated weights. Returns this party's loss
/// contribution `½·w·Xᵀd + B·R(w)` computed with the weights before the
/// update.
pub(crate) fn step(
    cfg: &Config,
    epoch: u32,
    w: &mut [f64],
    g: &[i128],
    batch_len: usize,
    intercept: Option<usize>,
) -> f64 {
    let loss = Loss {
        objective: cfg.objective,
        f: cfg.precision_bits,
    };
    let s2 = scale(2 * cfg.precision_bits);
    let a = loss.a();
    let xtd: Vec<f64> = g.iter().map(|&gj| a * gj as f64 / s2).collect();
    let s: f64 = w.iter().zip(&xtd).map(|(w, x)| w * x).sum();
    let contribution = 0.5 * s + batch_len as f64 * penalty_value(cfg.penalty, w, intercept);
    let lr = cfg.learning_rate_at(epoch);
    let b = batch_len as f64;
    for (j, (wj, x)) in w.iter_mut().zip(&xtd).enumerate() {
        let reg = if Some(j) == intercept {
            0.0
        } else {
            match cfg.penalty {
                Penalty::None => 0.0,
                Penalty::L1 { alpha } => alpha * wj.signum() * f64::from(u8::from(*wj != 0.0)),
                Penalty::L2 { alpha } => alpha * *wj,
            }
        };
        *wj -= lr * (x / b + reg);
    }
    contribution
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
