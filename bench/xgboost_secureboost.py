"""Centralized XGBoost baseline for a SecureBoost run, on the same split.

Reads the guest's `<task>.predictions.csv` of a `secureboost` run (ids with their
part: train/test), joins the guest and host CSVs by id (centralized: every feature in
one place), trains XGBoost `tree_method=hist` with the same trees, depth, bins,
learning rate, lambda and min_child_weight, and prints one JSON line with held-out
and training AUC next to Fedra's.

    pip install xgboost scikit-learn
    fedra run examples/secureboost-default-credit/job.toml --local
    python3 bench/xgboost_secureboost.py out/secureboost-default-credit/parties/guest/sb.predictions.csv \
        data/fate/default_credit_hetero_guest.csv data/fate/default_credit_hetero_host.csv
"""

import csv
import json
import sys

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score


def read(path):
    with open(path) as f:
        r = csv.reader(f)
        head = next(r)
        return head, [row for row in r]


def main():
    preds, guest, host = sys.argv[1:4]
    trees = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    depth = int(sys.argv[5]) if len(sys.argv) > 5 else 6
    lr = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
    bins = int(sys.argv[7]) if len(sys.argv) > 7 else 32
    _, p = read(preds)
    part = {row[0]: row[1] for row in p}
    ours = {row[0]: float(row[3]) for row in p}
    gh, g = read(guest)
    hh, h = read(host)
    hx = {row[0]: [float(v) for v in row[1:]] for row in h}
    yi = gh.index("y")
    rows = {"train": ([], [], []), "test": ([], [], [])}
    for row in g:
        i = row[0]
        if i not in part or i not in hx:
            continue
        x = [float(v) for k, v in enumerate(row[1:], 1) if k != yi] + hx[i]
        X, y, o = rows[part[i]]
        X.append(x)
        y.append(float(row[yi]))
        o.append(ours[i])
    Xtr, ytr, otr = (np.array(v) for v in rows["train"])
    Xte, yte, ote = (np.array(v) for v in rows["test"])
    m = xgb.XGBClassifier(
        n_estimators=trees, max_depth=depth, learning_rate=lr, max_bin=bins,
        tree_method="hist", reg_lambda=1.0, min_child_weight=1.0, random_state=42, n_jobs=2,
    )
    m.fit(Xtr, ytr)
    print(json.dumps({
        "name": "xgboost_baseline",
        "xgboost": xgb.__version__,
        "rows_train": len(ytr), "rows_test": len(yte),
        "trees": trees, "max_depth": depth, "learning_rate": lr, "max_bin": bins,
        "xgb_auc": roc_auc_score(yte, m.predict_proba(Xte)[:, 1]),
        "xgb_train_auc": roc_auc_score(ytr, m.predict_proba(Xtr)[:, 1]),
        "fedra_auc": roc_auc_score(yte, ote),
        "fedra_train_auc": roc_auc_score(ytr, otr),
    }))


if __name__ == "__main__":
    main()
