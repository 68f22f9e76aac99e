"""OoD detection metrics: small pure functions on two score arrays.

Convention (docs/architecture.md, section 6): every score is "higher = more in-distribution". ``id_scores``
(N_id,) are the scores of in-distribution test images, ``ood_scores`` (N_ood,) those of an OoD set;
any array-like of numbers, flattened, read as float64.

* AUROC: ID is the positive class; ties count one half (the Mann-Whitney statistic), so it
  equals ``sklearn.metrics.roc_auc_score`` with ID labelled 1.
* FPR95 (ID positive, as LogitNorm/ODIN): pick the highest threshold that keeps at least 95% of
  ID images (score >= threshold); report the share of OoD images also kept (accepted).
* FPR95 with OoD positive (OpenOOD's convention): the mirror image, the share of ID images
  flagged as OoD at the threshold that catches 95% of OoD images.
* AUPR-In / AUPR-Out: average precision with ID / OoD as the positive class.

All of them read one table, ``threshold_counts``: for every distinct score, high to low, how many
positives and negatives score at least that much (the points of the ROC and PR curves). Tied
images enter together at their score, which is what makes every metric tie-aware.

Worked example, by hand (used in the tests):

    >>> auroc([3, 2, 1], [2, 0])      # pairs (id > ood): 1, 1, .5, 1, 0, 1 -> 4.5 / 6
    0.75
    >>> fpr_at_tpr([3, 2, 1], [2, 0]) # 95% of 3 ID images -> keep all 3 -> threshold 1
    0.5

Undefined input (an empty set, NaN or infinite scores) raises ``UndefinedMetricError``; no
function returns a number for it.
"""

import math

import numpy as np


class UndefinedMetricError(ValueError):
    """A metric was asked for on input where it is not defined (e.g. only one class)."""


def _check(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(id_scores, dtype=np.float64).ravel()
    b = np.asarray(ood_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        which = "in-distribution" if a.size == 0 else "OoD"
        raise UndefinedMetricError(
            f"no {which} scores: AUROC/FPR/AUPR need both ID and OoD images (got {a.size} ID, {b.size} OoD)"
        )
    for name, x in (("in-distribution", a), ("OoD", b)):
        if not np.isfinite(x).all():
            raise UndefinedMetricError(f"{name} scores contain {np.sum(~np.isfinite(x))} NaN or infinite values")
    return a, b


def threshold_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct score as a threshold, with the positives and negatives it accepts (score >= it).

    ``pos`` (P,) and ``neg`` (N,): finite float64 scores, positives expected higher, both non-empty.
    Returns ``thresholds`` (T,) float64, the distinct values of both arrays, strictly decreasing;
    ``tp`` (T,) and ``fp`` (T,) int64: how many of ``pos`` / ``neg`` score >= each threshold, both
    non-decreasing and ending at P and N. T <= P + N; (fp / N, tp / P) are the ROC curve's corners.
    """
    scores = np.concatenate([pos, neg])
    is_pos = np.zeros(len(scores), dtype=bool)
    is_pos[: len(pos)] = True
    # Not a stable sort: the order among equal scores does not matter, only the group's last row is kept.
    order = np.argsort(scores)[::-1]
    scores, is_pos = scores[order], is_pos[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a tie group enters the counts all at once
    tp = np.cumsum(is_pos, dtype=np.int64)[last_of_tie]
    fp = np.flatnonzero(last_of_tie) + 1 - tp  # rows seen so far, less the positives among them
    return scores[last_of_tie], tp, fp


def auroc(id_scores, ood_scores) -> float:
    """P(score of a random ID image > score of a random OoD image) + 0.5 P(tie)."""
    a, b = _check(id_scores, ood_scores)
    _, tp, fp = threshold_counts(a, b)
    # Trapezoids under the ROC staircase, in whole pairs: the OoD images entering at a threshold
    # beat the ID images above it and tie with the ID images entering with them (half each).
    # Twice the area is an integer, so the one division below is the only rounding.
    tp_before, fp_before = np.r_[0, tp[:-1]], np.r_[0, fp[:-1]]
    twice_pairs = int(np.sum((fp - fp_before) * (tp + tp_before)))
    return twice_pairs / (2 * len(a) * len(b))


def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95) -> float:
    """Share of OoD images accepted at the highest threshold that accepts >= ``tpr`` of ID images."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    a, b = _check(id_scores, ood_scores)
    k = math.ceil(round(tpr * len(a), 9))  # ID images that must be accepted (round: 0.95*20 = 19.000000000000004)
    _, tp, fp = threshold_counts(a, b)
    first = int(np.searchsorted(tp, k, side="left"))  # tp is sorted: the highest threshold accepting k
    return int(fp[first]) / len(b)


def fpr95(id_scores, ood_scores) -> float:
    """FPR at 95% TPR with ID as the positive class (LogitNorm/ODIN convention)."""
    return fpr_at_tpr(id_scores, ood_scores, 0.95)


def fpr95_ood_positive(id_scores, ood_scores) -> float:
    """FPR at 95% TPR with OoD as the positive class (OpenOOD's convention)."""
    a, b = _check(id_scores, ood_scores)
    return fpr_at_tpr(-b, -a, 0.95)


def average_precision(pos_scores, neg_scores) -> float:
    """Average precision, positives scored higher: sum over thresholds of (R_k - R_k-1) P_k.

    Thresholds are the distinct score values (tied images enter together), as scikit-learn.
    """
    p, n = _check(pos_scores, neg_scores)
    _, tp, fp = threshold_counts(p, n)
    precision, recall = tp / (tp + fp), tp / len(p)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_in(id_scores, ood_scores) -> float:
    """Area under the precision-recall curve with ID as the positive class."""
    return average_precision(id_scores, ood_scores)


def aupr_out(id_scores, ood_scores) -> float:
    """Area under the precision-recall curve with OoD as the positive class (scores negated)."""
    a, b = _check(id_scores, ood_scores)
    return average_precision(-b, -a)


#: name -> f(id_scores, ood_scores); the columns of every metrics table, in this order.
OOD_METRICS = {
    "auroc": auroc,
    "fpr95": fpr95,
    "fpr95_ood_positive": fpr95_ood_positive,
    "aupr_in": aupr_in,
    "aupr_out": aupr_out,
}


def accuracy(logits, labels) -> float:
    """Top-1 accuracy of ``logits`` (N, C) against ``labels`` (N,); an empty input raises ``UndefinedMetricError``."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(labels) == 0:
        raise UndefinedMetricError("accuracy of an empty set is undefined")
    return float(np.mean(logits.argmax(axis=1) == labels))
