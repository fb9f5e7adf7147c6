//! # fedra-metrics — evaluation metrics that agree with scikit-learn
//!
//! Pure functions over slices. Every function documents the scikit-learn
//! function it reproduces; the integration tests compare against numbers
//! printed by `tests/sklearn_reference.py` to 1e-12.
//!
//! Binary labels are `1.0` (positive) and `0.0` or `-1.0` (negative), as
//! accepted by scikit-learn without an explicit `pos_label`. Scores must be
//! finite. Empty inputs, length mismatches, non-finite values, labels other
//! than those and AUC/KS over a single class are errors ([`MetricError`]),
//! never panics or NaN.
//!
//! ```
//! let y = [0.0, 0.0, 1.0, 1.0];
//! let s = [0.1, 0.4, 0.35, 0.8];
//! assert!((fedra_metrics::roc_auc(&y, &s).unwrap() - 0.75).abs() < 1e-12);
//! ```

use std::cmp::Ordering;

/// Errors of the metric functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// No samples.
    #[error("empty input: at least one sample is needed")]
    Empty,
    /// Fewer samples than the metric is defined for.
    #[error("{metric} needs at least {min} samples, got {got}")]
    TooFewSamples {
        /// The metric.
        metric: &'static str,
        /// Minimum number of samples.
        min: usize,
        /// Number given.
        got: usize,
    },
    /// The two inputs have different lengths.
    #[error("length mismatch: {y_true} true values but {y_pred} predictions")]
    LengthMismatch {
        /// Length of `y_true`.
        y_true: usize,
        /// Length of the predictions / scores.
        y_pred: usize,
    },
    /// AUC and KS are undefined when `y_true` holds one class only.
    #[error("only one class ({class}) present in y_true; {metric} is not defined in that case")]
    SingleClass {
        /// The metric.
        metric: &'static str,
        /// The class present.
        class: f64,
    },
    /// A label that is not a binary class label.
    #[error(
        "label {value} at index {index} is not a binary label (1 for positive; 0 or -1 for negative)"
    )]
    InvalidLabel {
        /// Position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// NaN or infinite input.
    #[error("non-finite value {value} at index {index} of {what}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A probability outside `[0, 1]`.
    #[error("probability {value} at index {index} is outside [0, 1]")]
    InvalidProbability {
        /// Position.
        index: usize,
        /// The value.
        value: f64,
    },
}

impl MetricError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MetricError::Empty => "metrics.empty",
            MetricError::TooFewSamples { .. } => "metrics.too_few_samples",
            MetricError::LengthMismatch { .. } => "metrics.length_mismatch",
            MetricError::SingleClass { .. } => "metrics.single_class",
            MetricError::InvalidLabel { .. } => "metrics.invalid_label",
            MetricError::NonFinite { .. } => "metrics.non_finite",
            MetricError::InvalidProbability { .. } => "metrics.invalid_probability",
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, MetricError>;

fn check_pair(y_true: &[f64], y_pred: &[f64]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(MetricError::LengthMismatch {
            y_true: y_true.len(),
            y_pred: y_pred.len(),
        });
    }
    if y_true.is_empty() {
        return Err(MetricError::Empty);
    }
    for (what, v) in [("y_true", y_true), ("y_pred", y_pred)] {
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(MetricError::NonFinite { what, index, value });
        }
    }
    Ok(())
}

/// `true` for the positive class; errors on non-binary labels.
fn binary_labels(y_true: &[f64]) -> Result<Vec<bool>> {
    y_true
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            if value == 1.0 {
                Ok(true)
            } else if value == 0.0 || value == -1.0 {
                Ok(false)
            } else {
                Err(MetricError::InvalidLabel { index, value })
            }
        })
        .collect()
}

/// The ROC curve as scikit-learn's `roc_curve(..., drop_intermediate=False)`
/// computes it: `(fpr, tpr, thresholds)`, starting at `(0, 0)` with an
/// infinite threshold, one point per distinct score in decreasing order.
pub fn roc_curve(y_true: &[f64], score: &[f64]) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    roc_curve_named(y_true, score, "roc_curve")
}

fn roc_curve_named(
    y_true: &[f64],
    score: &[f64],
    metric: &'static str,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    check_pair(y_true, score)?;
    let pos = binary_labels(y_true)?;
    let n_pos = pos.iter().filter(|&&p| p).count();
    if n_pos == 0 || n_pos == pos.len() {
        return Err(MetricError::SingleClass {
            metric,
            class: if n_pos == 0 { y_true[0] } else { 1.0 },
        });
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    // Scores are finite (checked), so total_cmp agrees with numeric order
    // except for -0.0 < 0.0, which must count as a tie: compare by value.
    order.sort_by(|&a, &b| score[b].partial_cmp(&score[a]).unwrap_or(Ordering::Equal));
    let mut fps = vec![0.0];
    let mut tps = vec![0.0];
    let mut thresholds = vec![f64::INFINITY];
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        if pos[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_group = order.get(k + 1).is_none_or(|&next| score[next] != score[i]);
        if last_of_group {
            tps.push(tp);
            fps.push(fp);
            thresholds.push(score[i]);
        }
    }
    let fpr = fps.iter().map(|f| f / fp).collect();
    let tpr = tps.iter().map(|t| t / tp).collect();
    Ok((fpr, tpr, thresholds))
}

/// Area under the ROC curve, like scikit-learn's `roc_auc_score` for binary
/// labels: trapezoidal area over the ROC curve whose points group tied
/// scores (a tie between a positive and a negative counts one half).
/// Errors if `y_true` holds a single class (scikit-learn raises too).
pub fn roc_auc(y_true: &[f64], score: &[f64]) -> Result<f64> {
    let (fpr, tpr, _) = roc_curve_named(y_true, score, "roc_auc")?;
    let mut area = 0.0;
    for k in 1..fpr.len() {
        area += (fpr[k] - fpr[k - 1]) * (tpr[k] + tpr[k - 1]) / 2.0;
    }
    Ok(area)
}

/// Kolmogorov–Smirnov statistic: `max(tpr − fpr)` over the points of
/// scikit-learn's `roc_curve`.
pub fn ks(y_true: &[f64], score: &[f64]) -> Result<f64> {
    let (fpr, tpr, _) = roc_curve_named(y_true, score, "ks")?;
    Ok(fpr
        .iter()
        .zip(&tpr)
        .map(|(f, t)| t - f)
        .fold(f64::NEG_INFINITY, f64::max))
}

/// Confusion counts `(tp, fp, tn, fn)` with "predicted positive" meaning
/// `score >= threshold`.
pub fn confusion(y_true: &[f64], score: &[f64], threshold: f64) -> Result<(u64, u64, u64, u64)> {
    check_pair(y_true, score)?;
    let pos = binary_labels(y_true)?;
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (&p, &s) in pos.iter().zip(score) {
        match (p, s >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
    }
    Ok((tp, fp, tn, fn_))
}

fn ratio(num: u64, den: u64) -> f64 {
    // scikit-learn's zero_division=0.
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Fraction of correct predictions (`score >= threshold` predicts the
/// positive class), like `accuracy_score(y, score >= threshold)`.
pub fn accuracy(y_true: &[f64], score: &[f64], threshold: f64) -> Result<f64> {
    let (tp, fp, tn, fn_) = confusion(y_true, score, threshold)?;
    Ok(ratio(tp + tn, tp + fp + tn + fn_))
}

/// `tp / (tp + fp)`, 0 when nothing is predicted positive (scikit-learn's
/// `precision_score(..., zero_division=0)`).
pub fn precision(y_true: &[f64], score: &[f64], threshold: f64) -> Result<f64> {
    let (tp, fp, _, _) = confusion(y_true, score, threshold)?;
    Ok(ratio(tp, tp + fp))
}

/// `tp / (tp + fn)`, 0 when there are no positives (`recall_score(...,
/// zero_division=0)`).
pub fn recall(y_true: &[f64], score: &[f64], threshold: f64) -> Result<f64> {
    let (tp, _, _, fn_) = confusion(y_true, score, threshold)?;
    Ok(ratio(tp, tp + fn_))
}

/// `2tp / (2tp + fp + fn)`, 0 when that is 0/0 (`f1_score(...,
/// zero_division=0)`).
pub fn f1(y_true: &[f64], score: &[f64], threshold: f64) -> Result<f64> {
    let (tp, fp, _, fn_) = confusion(y_true, score, threshold)?;
    Ok(ratio(2 * tp, 2 * tp + fp + fn_))
}

/// Mean binary cross-entropy of predicted positive-class probabilities, like
/// scikit-learn ≥ 1.5's `log_loss(y, p, labels=[0, 1])`: probabilities are
/// clipped to `[ε, 1 − ε]` (after forming `1 − p` for the
/// negative class) with `ε = f64::EPSILON` (`eps="auto"`).
/// Probabilities outside `[0, 1]` are an error.
pub fn log_loss(y_true: &[f64], prob: &[f64]) -> Result<f64> {
    check_pair(y_true, prob)?;
    let pos = binary_labels(y_true)?;
    if let Some((index, &value)) = prob
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        return Err(MetricError::InvalidProbability { index, value });
    }
    let eps = f64::EPSILON;
    let mut total = 0.0;
    for (&p, &q) in pos.iter().zip(prob) {
        // scikit-learn stacks [1 - q, q] and then clips each column.
        let r = if p { q } else { 1.0 - q };
        total -= r.clamp(eps, 1.0 - eps).ln();
    }
    Ok(total / pos.len() as f64)
}

/// Root mean squared error (`root_mean_squared_error`).
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_pair(y_true, y_pred)?;
    let s: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    Ok((s / y_true.len() as f64).sqrt())
}

/// Mean absolute error (`mean_absolute_error`).
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_pair(y_true, y_pred)?;
    let s: f64 = y_true.iter().zip(y_pred).map(|(a, b)| (a - b).abs()).sum();
    Ok(s / y_true.len() as f64)
}

/// Coefficient of determination, like `r2_score` (with `force_finite=True`):
/// `1 − SS_res / SS_tot`; for constant `y_true` it is 1.0 if the predictions
/// are exact and 0.0 otherwise. Needs at least two samples (scikit-learn
/// returns NaN with a warning for one).
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_pair(y_true, y_pred)?;
    if y_true.len() < 2 {
        return Err(MetricError::TooFewSamples {
            metric: "r2",
            min: 2,
            got: y_true.len(),
        });
    }
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let ss_res: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    let ss_tot: f64 = y_true.iter().map(|a| (a - mean) * (a - mean)).sum();
    Ok(match (ss_res != 0.0, ss_tot != 0.0) {
        (_, true) => 1.0 - ss_res / ss_tot,
        (true, false) => 0.0,
        (false, false) => 1.0,
    })
}
