"""Metrics against scikit-learn, a brute-force oracle and a worked example by hand."""

import itertools

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from l2ood import metrics as M


def labelled(id_scores, ood_scores):
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return y, np.r_[id_scores, ood_scores]


def test_hand_example_with_ties():
    # ID [3, 2, 1], OoD [2, 0]. Pairs (id, ood): (3,2) 1, (3,0) 1, (2,2) tie 0.5, (2,0) 1, (1,2) 0, (1,0) 1.
    assert M.auroc([3, 2, 1], [2, 0]) == pytest.approx(4.5 / 6)
    # 95% of 3 ID images -> all 3 kept -> threshold 1 -> OoD kept: 2 (yes), 0 (no) -> 1/2.
    assert M.fpr95([3, 2, 1], [2, 0]) == pytest.approx(0.5)
    # OoD positive: 95% of 2 OoD images -> both caught -> threshold on -score at -2 -> ID flagged: -1 >= -2 yes,
    # -2 >= -2 yes (tie), -3 no -> 2/3.
    assert M.fpr95_ood_positive([3, 2, 1], [2, 0]) == pytest.approx(2 / 3)
    # AUPR-In by hand: thresholds 3 (P 1/1, R 1/3), 2 (2 ID + 1 OoD: P 2/3, R 2/3), 1 (P 3/4, R 1), 0 (P 3/5, R 1)
    assert M.aupr_in([3, 2, 1], [2, 0]) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 4)


def test_perfect_and_inverted_separation():
    assert M.auroc([5, 6, 7], [1, 2]) == 1.0
    assert M.fpr95([5, 6, 7], [1, 2]) == 0.0
    assert M.auroc([1, 2], [5, 6, 7]) == 0.0
    assert M.fpr95([1, 2], [5, 6, 7]) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    # rounded scores: many ties
    a = np.round(rng.normal(1.0, 1.0, 200 + seed), 1)
    b = np.round(rng.normal(0.0, 1.0, 150), 1)
    y, s = labelled(a, b)
    assert M.auroc(a, b) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.aupr_in(a, b) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.aupr_out(a, b) == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert M.fpr95(a, b) == pytest.approx(fpr[np.searchsorted(tpr, 0.95, side="left")], abs=1e-12)
    fpr_o, tpr_o, _ = roc_curve(1 - y, -s)
    assert M.fpr95_ood_positive(a, b) == pytest.approx(fpr_o[np.searchsorted(tpr_o, 0.95, side="left")], abs=1e-12)


def test_threshold_counts_by_brute_force():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 6, 25).astype(float), rng.integers(0, 6, 40).astype(float)
    thresholds, tp, fp = M.threshold_counts(pos, neg)
    assert thresholds.tolist() == sorted(set(pos) | set(neg), reverse=True)
    assert tp.tolist() == [int((pos >= t).sum()) for t in thresholds]
    assert fp.tolist() == [int((neg >= t).sum()) for t in thresholds]
    # by hand: pos [3, 2, 1], neg [2, 0] -> thresholds 3, 2, 1, 0 accept (1, 0), (2, 1), (3, 1), (3, 2)
    thresholds, tp, fp = M.threshold_counts(np.array([3.0, 2.0, 1.0]), np.array([2.0, 0.0]))
    assert thresholds.tolist() == [3, 2, 1, 0] and tp.tolist() == [1, 2, 3, 3] and fp.tolist() == [0, 1, 1, 2]


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_against_sklearn_at_the_papers_size(kind):
    """10,000 ID x 26,032 OoD float32 scores (CIFAR-10 vs SVHN), with few and with many ties."""
    rng = np.random.default_rng(11)
    if kind == "continuous":
        a, b = rng.normal(1.0, 1.0, 10_000), rng.normal(0.0, 1.0, 26_032)
    else:  # MSP-like: most scores within a few float32 steps of 1
        a, b = 1 - rng.exponential(1e-6, 10_000), 1 - rng.exponential(1e-5, 26_032)
    a, b = a.astype(np.float32), b.astype(np.float32)
    y, s = labelled(a.astype(np.float64), b.astype(np.float64))
    assert M.auroc(a, b) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    # the Mann-Whitney U, exact in float64 at this size: the same float, not merely close
    assert M.auroc(a, b) == mannwhitneyu(a.astype(np.float64), b.astype(np.float64)).statistic / (len(a) * len(b))
    assert M.aupr_in(a, b) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.aupr_out(a, b) == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert M.fpr95(a, b) == pytest.approx(fpr[np.searchsorted(tpr, 0.95, side="left")], abs=1e-12)


def test_auroc_brute_force_oracle():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 5, 30), rng.integers(0, 5, 20)
    pairs = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a, b)]
    assert M.auroc(a, b) == pytest.approx(np.mean(pairs))


def test_fpr_threshold_keeps_at_least_tpr_of_id():
    # 20 ID images: 95% is exactly 19 (floating point 0.95 * 20 = 19.000000000000004 must not round up to 20)
    a = np.arange(20.0)
    # 19 of 20 kept -> threshold 1.0 -> OoD 0.5 rejected, OoD 1.0 accepted (ties are accepted)
    assert M.fpr_at_tpr(a, [0.5], 0.95) == 0.0
    assert M.fpr_at_tpr(a, [1.0], 0.95) == 1.0


@pytest.mark.parametrize("id_s, ood_s", [([], [1.0]), ([1.0], []), ([1.0, np.nan], [0.0]), ([1.0], [np.inf])])
def test_undefined_input_raises(id_s, ood_s):
    for f in M.OOD_METRICS.values():
        with pytest.raises(M.UndefinedMetricError):
            f(id_s, ood_s)


def test_empty_set_message_names_the_problem():
    with pytest.raises(M.UndefinedMetricError, match="no OoD scores"):
        M.auroc([1.0, 2.0], [])


def test_accuracy():
    assert M.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    with pytest.raises(M.UndefinedMetricError):
        M.accuracy(np.zeros((0, 2)), np.zeros(0))
