"""Reference numbers for tests/linear.rs (scikit-learn 1.9.1, numpy 2.4.6).

Run: python3 crates/fedra-linear/tests/sklearn_reference.py
Uses the same stratified 80/20 split as the Rust tests: within each class,
rows sorted by (id * 2654435761 + 42) mod 2^32 (then id); first 20 % = test.
"""
import os

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score, root_mean_squared_error

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../data/fate/")


def read(path):
    a = np.genfromtxt(path, delimiter=",", names=True)
    names = list(a.dtype.names)
    return names, np.column_stack([a[n] for n in names])


def split(ids, y, test_frac=0.2):
    key = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(42)) % np.uint64(2**32)
    test = np.zeros(len(ids), bool)
    for c in np.unique(y):
        idx = np.where(y == c)[0]
        idx = idx[np.lexsort((ids[idx], key[idx]))]
        test[idx[: int(round(len(idx) * test_frac))]] = True
    return test


def load(name):
    gn, g = read(D + f"{name}_hetero_guest.csv")
    hn, h = read(D + f"{name}_hetero_host.csv")
    ids = g[:, gn.index("id")].astype(np.int64)
    assert (ids == h[:, hn.index("id")]).all()
    y = g[:, gn.index("y")]
    gx = g[:, [i for i, n in enumerate(gn) if n not in ("id", "y")]]
    hx = h[:, [i for i, n in enumerate(hn) if n != "id"]]
    return ids, y, gx, hx


for name in ["breast", "default_credit"]:
    ids, y, gx, hx = load(name)
    X = np.hstack([gx, hx])
    test = split(ids, y)
    m = LogisticRegression().fit(X[~test], y[~test])
    print(f"{name}: LogisticRegression() test AUC {roc_auc_score(y[test], m.predict_proba(X[test])[:, 1])!r}"
          f" train AUC {roc_auc_score(y[~test], m.predict_proba(X[~test])[:, 1])!r}")
    # The exact minimiser of the Taylor-approximated loss (what hetero LR optimises):
    # 0.25 u = 0.5 y' (y' = ±1) in least squares, on standardised features.
    mu, sd = X[~test].mean(0), X[~test].std(0)
    Z = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
    sol = np.linalg.lstsq(Z[~test], 2 * np.where(y[~test] == 1, 1.0, -1.0), rcond=None)[0]
    print(f"{name}: Taylor-loss optimum test AUC {roc_auc_score(y[test], Z[test] @ sol)!r}")

# Regression: default_credit guest column x0 from the other 22 columns.
ids, y, gx, hx = load("default_credit")
test = split(ids, y)
t = gx[:, 0]
X = np.hstack([gx[:, 1:], hx])
m = LinearRegression().fit(X[~test], t[~test])
print(f"regression: LinearRegression() test RMSE {root_mean_squared_error(t[test], m.predict(X[test]))!r}")
