"""Activation shaping in front of the head, then the energy: ASH-P, ASH-B, ASH-S (Djurisic et al. 2023), SCALE (Xu et al. 2024).

Each reshapes the penultimate feature z of one image (OpenOOD applies them to the pooled feature,
as here) and feeds the result through the head, normalizing it again where the head does (the
shaping is inserted in front of the head, as ReAct). A per-image factor on the whole feature
therefore cancels under a normalizing head: there ASH-S equals ASH-P and SCALE equals the energy.
"""

import numpy as np

from .base import Detector, logsumexp


def _top_k(percentile: float, d: int) -> int:
    """How many activations survive pruning the lowest ``percentile`` percent of d: d - round(d p / 100),
    the count OpenOOD's ash_b and pytorch-ood's ASH keep (at least one)."""
    return max(1, d - int(np.round(d * percentile / 100.0)))


def _kept_mask(z: np.ndarray, k: int) -> np.ndarray:
    """True at each row's k largest activations."""
    keep = np.zeros(z.shape, dtype=bool)
    idx = np.argpartition(-z, k - 1, axis=1)[:, :k]
    np.put_along_axis(keep, idx, True, axis=1)
    return keep


def _sharpen(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """(N, 1) factors exp(s1/s2); 1 where s2 <= 0 (a zero feature, or negative activations only), where
    the ratio means nothing (0/0 would be NaN)."""
    ratio = np.divide(s1, s2, out=np.zeros_like(s1), where=s2 > 0)
    return np.exp(ratio)[:, None]


class _Shaping(Detector):
    family = "shaping"

    def __init__(self, percentile: float = 90.0):
        self.percentile = percentile  # percent of each image's activations pruned

    def _shape(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score(self, z):
        return logsumexp(self.head.logits(self._shape(z)))


class ASHP(_Shaping):
    """Energy after zeroing each image's lowest 90% of activations (ASH-P; OpenOOD ash.yml percentile 90)."""

    label = "ASH-P"

    def _shape(self, z):
        return np.where(_kept_mask(z, _top_k(self.percentile, z.shape[1])), z, 0.0)


class ASHB(_Shaping):
    """ASH-B: the kept top 10% all set to sum(z)/k, the other activations to 0, then the energy."""

    label = "ASH-B"

    def _shape(self, z):
        k = _top_k(self.percentile, z.shape[1])
        return np.where(_kept_mask(z, k), z.sum(axis=1, keepdims=True) / k, 0.0)


class ASHS(_Shaping):
    """ASH-S: the kept top 10% scaled by exp(s1/s2), s1 the sum before pruning, s2 after, then the energy."""

    label = "ASH-S"

    def _shape(self, z):
        pruned = np.where(_kept_mask(z, _top_k(self.percentile, z.shape[1])), z, 0.0)
        return pruned * _sharpen(z.sum(axis=1), pruned.sum(axis=1))


class SCALE(_Shaping):
    """SCALE: the whole feature scaled by exp(s1/s2), s2 the sum of the top 15% (OpenOOD scale.yml percentile 85), then the energy."""

    label = "SCALE"

    def __init__(self, percentile: float = 85.0):
        super().__init__(percentile)

    def _shape(self, z):
        k = _top_k(self.percentile, z.shape[1])
        s2 = -np.sort(-z, axis=1)[:, :k].sum(axis=1)
        return z * _sharpen(z.sum(axis=1), s2)
