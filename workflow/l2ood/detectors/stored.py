"""Detectors that compare a test image with patterns stored from the training split: SHE, NNGuide, OpenMax."""

import numpy as np
from scipy.optimize import brentq

from .base import Detector, logsumexp, unit
from .distance import KNN_BLOCK


def _stored_members(head, z: np.ndarray, y: np.ndarray, what: str) -> list[np.ndarray]:
    """Per class c, the indices of the training images of class c the head classifies correctly (as
    OpenOOD and pytorch-ood store them); a class with none correct falls back to all its images (no
    pattern at all would leave its predictions unscored), and one with no image is an error."""
    right = head.logits(z).argmax(axis=1) == y
    out = []
    for c in range(head.num_classes):
        members = np.flatnonzero((y == c) & right)
        if len(members) == 0:
            members = np.flatnonzero(y == c)
        if len(members) == 0:
            raise ValueError(f"{what}: class {c} has no training features: its stored pattern needs at least one image")
        out.append(members)
    return out


class SHE(Detector):
    """Simplified Hopfield energy (Zhang et al. 2023): h . S_yhat, S_c the mean h of the correctly classified training images of class c.

    h is what the head multiplies (z/||z|| for a normalizing head), as ViM and fDBD; yhat the head's
    prediction. OpenOOD she.yml: metric inner_product.
    """

    label = "SHE"
    family = "distance"
    uses_train = True

    def _fit(self, z, y):
        h = self.head.head_input(z)
        self.patterns = np.stack([h[m].mean(axis=0) for m in _stored_members(self.head, z, y, "SHE")])

    def _score(self, z):
        pred = self.head.logits(z).argmax(axis=1)
        return np.sum(self.head.head_input(z) * self.patterns[pred], axis=1)


class NNGuide(Detector):
    """Nearest-neighbour guidance (Park et al. 2023): energy(z) x mean of the K = 100 largest z/||z|| . E(z_i) z_i/||z_i||.

    The bank: every training feature, normalized and scaled by its energy E = logsumexp(logits); K as
    OpenOOD nnguide.yml.
    """

    label = "NNGuide"
    family = "distance"
    uses_train = True

    def __init__(self, k: int = 100):
        self.k = k

    def _fit(self, z, y):
        if len(z) < self.k:
            raise ValueError(f"NNGuide with k={self.k} needs at least {self.k} training features, got {len(z)}")
        self.bank = unit(z) * logsumexp(self.head.logits(z))[:, None]

    def _score(self, z):
        q = unit(z)
        guidance = np.empty(len(q))
        rows = max(1, KNN_BLOCK // len(self.bank))  # blocks of test rows, as KNN: CIFAR's whole N x 50,000 is GBs
        for i in range(0, len(q), rows):
            sim = q[i : i + rows] @ self.bank.T
            guidance[i : i + rows] = np.partition(sim, -self.k, axis=1)[:, -self.k :].mean(axis=1)
        return guidance * logsumexp(self.head.logits(z))


def weibull_fit(x: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (shape c, scale s) of a 2-parameter Weibull (location 0) for positive x with
    at least two distinct values.

    c solves 1/c + mean(log u) - sum(u^c log u) / sum(u^c) = 0 with u = x / max(x) (the shape is
    scale-free; decreasing in c, positive near 0, mean(log u) < 0 as c -> inf), then
    s = max(x) mean(u^c)^(1/c). Written out because scipy's generic fit loses precision on libmr's
    translated tails (values around 10,000 that differ in the last digits: c in the thousands).
    """
    top = x.max()
    log_u = np.log(x / top)

    def g(log_c):
        c = np.exp(log_c)
        w = np.exp(c * log_u)  # u^c, in (0, 1]
        return 1 / c + log_u.mean() - np.sum(w * log_u) / np.sum(w)

    hi = 0.0
    while g(hi) > 0:
        hi += 2.0
    c = np.exp(brentq(g, -20.0, hi, xtol=1e-14, rtol=1e-14))
    return float(c), float(top * np.mean(np.exp(c * log_u)) ** (1 / c))


def weibull_cdf(x: np.ndarray, shape: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """1 - exp(-(x/scale)^shape), without overflow for shapes in the thousands."""
    with np.errstate(over="ignore"):
        return -np.expm1(-np.exp(shape * np.log(x / scale)))


#: libmr's FitHigh translation: the tail is shifted to start at this value before the Weibull fit.
LIBMR_TRANSLATION = 10000.0


class OpenMax(Detector):
    """OpenMax (Bendale & Boult 2016) on the logits: log(1 - P_unknown) - log P_unknown, higher = more ID.

    Per class, the mean logit vector (MAV) of the correctly classified training images and a Weibull fitted
    to the largest ``tail`` = 20 of their Euclidean distances to it; a test image's top ``alpha`` = 3
    logits are reduced by the Weibull CDF of its distance to that class's MAV, weighted (alpha+1-r)/alpha
    by rank r, the removed mass becomes the unknown class's logit (OpenOOD's openmax_postprocessor:
    tail 20, alpha 3, Euclidean distance).
    """

    label = "OpenMax"
    family = "logits"
    uses_train = True

    def __init__(self, tail: int = 20, alpha: int = 3):
        self.tail, self.alpha = tail, alpha

    def _fit(self, z, y):
        logits = self.head.logits(z)
        members = _stored_members(self.head, z, y, "OpenMax")
        self.mav = np.stack([logits[m].mean(axis=0) for m in members])
        self.weibull = []
        for c, m in enumerate(members):
            dist = np.linalg.norm(logits[m] - self.mav[c], axis=1)
            tail = np.sort(dist)[-self.tail :]
            # libmr's fit_high: shift the tail to start at LIBMR_TRANSLATION, fit a 2-parameter Weibull
            # (location 0) by maximum likelihood; the shift is applied to test distances too
            shift = LIBMR_TRANSLATION - tail.min()
            if np.ptp(tail + shift) > 0:
                shape, scale = weibull_fit(tail + shift)
            else:  # one distinct (shifted) distance: one image, duplicates; no Weibull, a step there
                shape, scale = np.inf, LIBMR_TRANSLATION
            self.weibull.append((shape, scale, shift))

    def _score(self, z):
        logits = self.head.logits(z)
        n, c = logits.shape
        alpha = min(self.alpha, c)
        top = np.argsort(-logits, axis=1)[:, :alpha]
        weight = np.zeros_like(logits)
        for r in range(alpha):
            cls = top[:, r]
            dist = np.linalg.norm(logits - self.mav[cls], axis=1)
            shape, scale, shift = (np.array([self.weibull[k][i] for k in cls]) for i in range(3))
            step = np.isinf(shape)
            cdf = np.where(step, dist + shift > scale, 0.0)
            cdf[~step] = weibull_cdf(dist[~step] + shift[~step], shape[~step], scale[~step])
            weight[np.arange(n), cls] = cdf * (alpha - r) / alpha
        revised = logits * (1 - weight)
        unknown = np.sum(logits * weight, axis=1)
        return logsumexp(revised) - unknown
