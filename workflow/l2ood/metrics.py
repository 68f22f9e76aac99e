"""OoD detection metrics: small pure functions on two score arrays.

Convention (docs/architecture.md, section 6): every score is "higher = more in-distribution". ``id_scores``
are the scores of in-distribution test images, ``ood_scores`` those of an OoD set.

* AUROC: ID is the positive class; ties count one half (the Mann-Whitney statistic), so it
  equals ``sklearn.metrics.roc_auc_score`` with ID labelled 1.
* FPR95 (ID positive, as LogitNorm/ODIN): pick the highest threshold that keeps at least 95% of
  ID images (score >= threshold); report the share of OoD images also kept (accepted).
* FPR95 with OoD positive (OpenOOD's convention): the mirror image, the share of ID images
  flagged as OoD at the threshold that catches 95% of OoD images.
* AUPR-In / AUPR-Out: average precision with ID / OoD as the positive class.

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


def auroc(id_scores, ood_scores) -> float:
    """P(score of a random ID image > score of a random OoD image) + 0.5 P(tie)."""
    a, b = _check(id_scores, ood_scores)
    both = np.concatenate([a, b])
    # average ranks (ties share the mean rank), 1-based
    order = np.argsort(both, kind="mergesort")
    sorted_vals = both[order]
    ranks = np.empty(len(both))
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(both)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    u = ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95) -> float:
    """Share of OoD images accepted at the highest threshold that accepts >= ``tpr`` of ID images."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    a, b = _check(id_scores, ood_scores)
    k = math.ceil(round(tpr * len(a), 9))  # ID images that must be accepted (round: 0.95*20 = 19.000000000000004)
    threshold = np.sort(a)[::-1][k - 1]
    return float(np.mean(b >= threshold))


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
    scores = np.concatenate([p, n])
    is_pos = np.r_[np.ones(len(p)), np.zeros(len(n))]
    order = np.argsort(-scores, kind="mergesort")
    scores, is_pos = scores[order], is_pos[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(is_pos)[last_of_tie]
    seen = np.flatnonzero(last_of_tie) + 1
    precision, recall = tp / seen, tp / len(p)
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
    """Top-1 accuracy; an empty input raises ``UndefinedMetricError``."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(labels) == 0:
        raise UndefinedMetricError("accuracy of an empty set is undefined")
    return float(np.mean(logits.argmax(axis=1) == labels))
