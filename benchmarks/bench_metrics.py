"""The OoD metrics (``l2ood.metrics``) against scikit-learn's, timed in the same run.

Scores of the paper's size: ``--n-id`` ID images (CIFAR-10's test set, 10,000) against ``--n-ood``
OoD images (SVHN's test set, 26,032), float32 scores as inference stores them, read as float64.
Two kinds of score: continuous (a feature norm: almost no ties) and tied (MSP near 1, rounded to
float32's resolution there: long runs of equal values). Each metric and its scikit-learn
counterpart are timed alternately, ``--repeats`` times after a warm-up, so machine load hits both
alike; the table gives the medians and the ratio sklearn / ours (above 1: ours is faster). Every
pair of values is checked to agree to 1e-12 first.

    PYTHONPATH=workflow python benchmarks/bench_metrics.py              # about 5 s on 2 cores
    PYTHONPATH=workflow python benchmarks/bench_metrics.py --smoke      # a second: checks that it runs
"""

import argparse
import platform
import statistics
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from l2ood import metrics as M


def sk_fpr95(y, s):
    """scikit-learn's FPR at the first ROC point with TPR >= 0.95 (ID positive)."""
    fpr, tpr, _ = roc_curve(y, s)
    return fpr[np.searchsorted(tpr, 0.95, side="left")]


#: name -> (ours(id, ood), sklearn's(labels, scores))
PAIRS = {
    "AUROC": (M.auroc, roc_auc_score),
    "FPR95": (M.fpr95, sk_fpr95),
    "AUPR-In": (M.aupr_in, average_precision_score),
}


def scores(kind: str, n_id: int, n_ood: int, rng) -> tuple[np.ndarray, np.ndarray]:
    if kind == "continuous":
        a, b = rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.0, n_ood)
    else:  # MSP of confident models: most scores within a few float32 steps of 1
        a, b = 1 - rng.exponential(1e-6, n_id), 1 - rng.exponential(1e-5, n_ood)
    return a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)


def seconds(f, *args) -> float:
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-id", type=int, default=10_000)
    parser.add_argument("--n-ood", type=int, default=26_032)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 3 repeats: checks that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.n_id, args.n_ood, args.repeats = 500, 800, 3

    rng = np.random.default_rng(0)
    machine = platform.processor() or platform.machine()
    print(f"{args.n_id:,} ID x {args.n_ood:,} OoD scores, median of {args.repeats}; {machine}")
    print("\n| scores | metric | ours (ms) | scikit-learn (ms) | sklearn / ours |\n|---|---|---:|---:|---:|")
    for kind in ("continuous", "tied"):
        a, b = scores(kind, args.n_id, args.n_ood, rng)
        y, s = np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b]
        for name, (ours, theirs) in PAIRS.items():
            mine, ref = ours(a, b), theirs(y, s)  # also the warm-up
            if abs(mine - ref) > 1e-12:
                raise SystemExit(f"{name} on {kind} scores: ours {mine!r}, scikit-learn's {ref!r}")
            t_ours, t_sk = [], []
            for _ in range(args.repeats):
                t_ours.append(seconds(ours, a, b))
                t_sk.append(seconds(theirs, y, s))
            m_ours, m_sk = statistics.median(t_ours), statistics.median(t_sk)
            print(f"| {kind} | {name} | {1e3 * m_ours:.2f} | {1e3 * m_sk:.2f} | {m_sk / m_ours:.2f} |")


if __name__ == "__main__":
    main()
