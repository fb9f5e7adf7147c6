//! Compares every metric with scikit-learn. The expected numbers were printed by
//! `tests/sklearn_reference.py` (scikit-learn 1.9.1, numpy 2.4.6) and pasted here.

#![allow(clippy::approx_constant)] // reference values pasted from scikit-learn
use fedra_metrics::*;

type Case = (&'static str, &'static [f64], &'static [f64]);

const CLASSIFICATION: &[Case] = &[
    (
        "ties",
        &[0., 0., 1., 1., 0., 1., 0., 1., 1., 0.],
        &[0.1, 0.4, 0.4, 0.8, 0.4, 0.1, 0.3, 0.9, 0.3, 0.65],
    ),
    (
        "imbalanced",
        &[0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 0., 0., 1.],
        &[
            0.05, 0.2, 0.15, 0.3, 0.12, 0.5, 0.01, 0.33, 0.2, 0.45, 0.6, 0.07, 0.2,
        ],
    ),
    (
        "perfect",
        &[0., 0., 1., 1., 1.],
        &[0.1, 0.2, 0.7, 0.8, 0.95],
    ),
    ("inverse", &[0., 0., 1., 1., 1.], &[0.9, 0.8, 0.3, 0.2, 0.0]),
    (
        "all_tied",
        &[0., 1., 0., 1., 1.],
        &[0.5, 0.5, 0.5, 0.5, 0.5],
    ),
    (
        "minus_one_labels",
        &[-1., 1., -1., 1., 1., -1.],
        &[0.2, 0.7, 0.6, 0.6, 0.99, 1e-17],
    ),
    ("extreme_probs", &[0., 1., 0., 1.], &[0.0, 1.0, 1.0, 0.0]),
];

/// roc_auc, ks, accuracy, precision, recall, f1 (threshold 0.5), log_loss.
const CLASSIFICATION_EXPECTED: &[(&str, [f64; 7])] = &[
    (
        "ties",
        [
            0.6000000000000001,
            0.4,
            0.6,
            0.6666666666666666,
            0.4,
            0.5,
            0.728486152779339,
        ],
    ),
    (
        "imbalanced",
        [
            0.6818181818181819,
            0.4545454545454546,
            0.6923076923076923,
            0.0,
            0.0,
            0.0,
            0.4342376737179844,
        ],
    ),
    (
        "perfect",
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.19192317132250575],
    ),
    ("inverse", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.553817422261067]),
    (
        "all_tied",
        [0.5, 0.0, 0.6, 0.6, 1.0, 0.75, 0.6931471805599453],
    ),
    (
        "minus_one_labels",
        [
            0.9444444444444444,
            0.6666666666666667,
            0.8333333333333334,
            0.75,
            1.0,
            0.8571428571428571,
            0.3361641977910983,
        ],
    ),
    (
        "extreme_probs",
        [0.5, 0.0, 0.5, 0.5, 0.5, 0.5, 18.021826694558577],
    ),
];

const REGRESSION: &[Case] = &[
    (
        "regression",
        &[3.0, -0.5, 2.0, 7.0, 4.2],
        &[2.5, 0.0, 2.0, 8.0, 3.9],
    ),
    ("constant_exact", &[2.0, 2.0, 2.0], &[2.0, 2.0, 2.0]),
    ("constant_inexact", &[2.0, 2.0, 2.0], &[2.0, 2.5, 2.0]),
    ("negative_r2", &[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]),
];

/// rmse, mae, r2.
const REGRESSION_EXPECTED: &[(&str, [f64; 3])] = &[
    (
        "regression",
        [0.5639148871948674, 0.4600000000000001, 0.9480256276150627],
    ),
    ("constant_exact", [0.0, 0.0, 1.0]),
    (
        "constant_inexact",
        [0.28867513459481287, 0.16666666666666666, 0.0],
    ),
    ("negative_r2", [1.632993161855452, 1.3333333333333333, -3.0]),
];

fn close(name: &str, metric: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12,
        "{name}/{metric}: got {got:?}, scikit-learn {want:?}"
    );
}

#[test]
fn classification_matches_sklearn() {
    for ((name, y, s), (ename, want)) in CLASSIFICATION.iter().zip(CLASSIFICATION_EXPECTED) {
        assert_eq!(name, ename);
        close(name, "roc_auc", roc_auc(y, s).unwrap(), want[0]);
        close(name, "ks", ks(y, s).unwrap(), want[1]);
        close(name, "accuracy", accuracy(y, s, 0.5).unwrap(), want[2]);
        close(name, "precision", precision(y, s, 0.5).unwrap(), want[3]);
        close(name, "recall", recall(y, s, 0.5).unwrap(), want[4]);
        close(name, "f1", f1(y, s, 0.5).unwrap(), want[5]);
        close(name, "log_loss", log_loss(y, s).unwrap(), want[6]);
    }
}

#[test]
fn regression_matches_sklearn() {
    for ((name, y, p), (ename, want)) in REGRESSION.iter().zip(REGRESSION_EXPECTED) {
        assert_eq!(name, ename);
        close(name, "rmse", rmse(y, p).unwrap(), want[0]);
        close(name, "mae", mae(y, p).unwrap(), want[1]);
        close(name, "r2", r2(y, p).unwrap(), want[2]);
    }
}

#[test]
fn auc_equals_pairwise_probability_on_larger_input() {
    // AUC = P(score+ > score-) + 0.5 P(tie), computed by brute force.
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let n = 400;
    let y: Vec<f64> = (0..n)
        .map(|_| if next() < 0.3 { 1.0 } else { 0.0 })
        .collect();
    // Coarse scores so that many ties occur.
    let s: Vec<f64> = y
        .iter()
        .map(|&l| ((next() + 0.3 * l) * 10.0).floor() / 10.0)
        .collect();
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            if y[i] == 1.0 && y[j] == 0.0 {
                den += 1.0;
                num += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    assert!((roc_auc(&y, &s).unwrap() - num / den).abs() < 1e-12);
}

#[test]
fn errors_instead_of_panics() {
    assert_eq!(roc_auc(&[], &[]).unwrap_err(), MetricError::Empty);
    assert!(matches!(
        roc_auc(&[1.0, 0.0], &[0.5]).unwrap_err(),
        MetricError::LengthMismatch {
            y_true: 2,
            y_pred: 1
        }
    ));
    assert!(matches!(
        roc_auc(&[1.0, 1.0], &[0.5, 0.2]).unwrap_err(),
        MetricError::SingleClass { .. }
    ));
    assert!(matches!(
        ks(&[0.0, 0.0], &[0.5, 0.2]).unwrap_err(),
        MetricError::SingleClass { .. }
    ));
    assert!(matches!(
        roc_auc(&[2.0, 0.0], &[0.5, 0.2]).unwrap_err(),
        MetricError::InvalidLabel { index: 0, .. }
    ));
    assert!(matches!(
        roc_auc(&[1.0, 0.0], &[f64::NAN, 0.2]).unwrap_err(),
        MetricError::NonFinite { index: 0, .. }
    ));
    assert!(matches!(
        log_loss(&[1.0, 0.0], &[1.5, 0.2]).unwrap_err(),
        MetricError::InvalidProbability { index: 0, .. }
    ));
    assert!(matches!(
        r2(&[1.0], &[1.0]).unwrap_err(),
        MetricError::TooFewSamples { .. }
    ));
    assert_eq!(rmse(&[], &[]).unwrap_err().code(), "metrics.empty");
    // Single-class inputs are fine for threshold metrics (zero_division=0).
    assert_eq!(precision(&[0.0, 0.0], &[0.1, 0.2], 0.5).unwrap(), 0.0);
    assert_eq!(recall(&[0.0, 0.0], &[0.9, 0.2], 0.5).unwrap(), 0.0);
}
