"""Neural-collapse measures: exact zeros on a collapsed simplex ETF, positive on random features."""

import numpy as np
import pytest

from l2ood import collapse as C


def simplex_etf(c: int, d: int, scale: float = 3.0) -> np.ndarray:
    """C unit vectors in R^d with pairwise cosine -1/(C-1), centred (M = sqrt(C/(C-1)) (I - 11^T/C))."""
    m = np.sqrt(c / (c - 1)) * (np.eye(c) - np.ones((c, c)) / c)
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, c)))
    return scale * m @ basis.T


def test_collapsed_features_give_zeros():
    c, d, per = 5, 16, 20
    means = simplex_etf(c, d)
    labels = np.repeat(np.arange(c), per)
    feats = means[labels]  # every image on its class mean
    assert C.nc1(feats, labels) == pytest.approx(0.0, abs=1e-12)
    assert C.equinormality(feats, labels) == pytest.approx(0.0, abs=1e-12)
    assert C.equiangularity(feats, labels) == pytest.approx(0.0, abs=1e-12)


def test_random_features_are_not_collapsed():
    rng = np.random.default_rng(1)
    feats, labels = rng.normal(size=(300, 16)), np.repeat(np.arange(5), 60)
    m = C.collapse_measures(feats, labels)
    assert m["nc1"] > 1.0  # within-class spread dwarfs the between-class spread
    assert m["equinormality"] > 0.01 and m["equiangularity"] > 0.01


def test_nc1_matches_the_definition():
    rng = np.random.default_rng(2)
    feats, labels = rng.normal(size=(200, 12)) + np.repeat(rng.normal(size=(4, 12)), 50, axis=0), np.repeat(np.arange(4), 50)
    means = np.stack([feats[labels == k].mean(0) for k in range(4)])
    centred = feats - means[labels]
    sw = centred.T @ centred / len(feats)
    b = means - means.mean(0)
    sb = b.T @ b / 4
    assert C.nc1(feats, labels) == pytest.approx(np.trace(sw @ np.linalg.pinv(sb)) / 4, rel=1e-8)


def test_equinormality_by_hand():
    # two classes with centred means of norms 1 and 3 -> cv = std([1, 3]) / mean = 1 / 2
    feats = np.array([[1.0, 0], [-3.0, 0], [1.0, 0], [-3.0, 0]])
    labels = np.array([0, 1, 0, 1])  # global mean of means (-1, 0): centred means (2, 0), (-2, 0) -> equal
    assert C.equinormality(feats, labels) == pytest.approx(0.0)
    feats3 = np.array([[1.0, 0], [0, 1.0], [-4.0, -4.0]])
    assert C.equinormality(feats3, np.arange(3)) > 0.3
    # four classes at (+-1, 0), (0, +-3): centred norms 1, 1, 3, 3, mean 2; the sample std (ddof=1, as
    # Papyan et al.'s torch.std) is sqrt((1 + 1 + 1 + 1) / 3), so cv = sqrt(4/3) / 2 = 1/sqrt(3) = 0.577
    # (ddof=0 would give 1 / 2)
    feats4 = np.array([[1.0, 0], [-1.0, 0], [0, 3.0], [0, -3.0]])
    assert C.equinormality(feats4, np.arange(4)) == pytest.approx(1 / np.sqrt(3))


def test_feature_change_groups():
    change = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])  # (E=2, N=4)
    labels, rows = C.change_by_norm_group(change, np.array([1.0, 5.0, 15.0, 50.0]), edges=[0, 10, 20, np.inf])
    assert len(labels) == 3
    np.testing.assert_allclose(rows, [[1.5, 1.5], [3.0, 3.0], [4.0, 4.0]])
    assert C.norm_variability(np.array([[1.0, 1.0], [1.0, 3.0]])) == pytest.approx([0.0, 0.5])
