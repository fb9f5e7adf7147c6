"""Prints the reference values used by tests/metrics.rs.

Run: python3 crates/fedra-metrics/tests/sklearn_reference.py
(scikit-learn 1.9.1, numpy 2.4.6 produced the values pasted into metrics.rs)
"""
import numpy as np
import sklearn
from sklearn.metrics import (accuracy_score, f1_score, log_loss, mean_absolute_error,
                             precision_score, r2_score, recall_score, roc_auc_score, roc_curve,
                             root_mean_squared_error)

CASES = {
    "ties": ([0, 0, 1, 1, 0, 1, 0, 1, 1, 0], [0.1, 0.4, 0.4, 0.8, 0.4, 0.1, 0.3, 0.9, 0.3, 0.65]),
    "imbalanced": ([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1],
                   [0.05, 0.2, 0.15, 0.3, 0.12, 0.5, 0.01, 0.33, 0.2, 0.45, 0.6, 0.07, 0.2]),
    "perfect": ([0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.8, 0.95]),
    "inverse": ([0, 0, 1, 1, 1], [0.9, 0.8, 0.3, 0.2, 0.0]),
    "all_tied": ([0, 1, 0, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.5]),
    "minus_one_labels": ([-1, 1, -1, 1, 1, -1], [0.2, 0.7, 0.6, 0.6, 0.99, 1e-17]),
    "extreme_probs": ([0, 1, 0, 1], [0.0, 1.0, 1.0, 0.0]),
}


def ks(y, s):
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.max(tpr - fpr))


print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}")
for name, (y, s) in CASES.items():
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    pred = (s >= 0.5).astype(float)
    yb = (y == 1).astype(float)
    vals = [
        roc_auc_score(y, s),
        ks(y, s),
        accuracy_score(yb, pred),
        precision_score(yb, pred, zero_division=0),
        recall_score(yb, pred, zero_division=0),
        f1_score(yb, pred, zero_division=0),
        log_loss(yb, s, labels=[0, 1]),
    ]
    print(f"(\"{name}\", [{', '.join(repr(float(v)) for v in vals)}]),")

REG = {
    "regression": ([3.0, -0.5, 2.0, 7.0, 4.2], [2.5, 0.0, 2.0, 8.0, 3.9]),
    "constant_exact": ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]),
    "constant_inexact": ([2.0, 2.0, 2.0], [2.0, 2.5, 2.0]),
    "negative_r2": ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),
}
for name, (y, p) in REG.items():
    vals = [root_mean_squared_error(y, p), mean_absolute_error(y, p), r2_score(y, p)]
    print(f"(\"{name}\", [{', '.join(repr(float(v)) for v in vals)}]),")
