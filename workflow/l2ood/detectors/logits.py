"""Detectors on the head's logits and the norms: MSP, MaxLogit, energy, GEN, feature norm, logit norm.

These are the scores of one forward pass: each is a function ``of(norm, logits)`` of what inference
stores per image (``l2ood.outputs``: the feature norm ||z|| and the logits). That function is the one
place each score is written: the detectors call it on the head's logits of stored features
(``OnePass._score``), and ``l2ood.scores`` calls it on the per-image outputs of ``l2ood.evaluate``.
"""

import numpy as np

from .base import Detector, gen_log, logsumexp, msp_log_odds


class OnePass(Detector):
    """A score of the feature norm and the logits alone: ``of(norm, logits)``, norm (N,), logits (N, C)."""

    family = "logits"

    def of(self, norm: np.ndarray, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score(self, z):
        return self.of(np.linalg.norm(z, axis=1), self.head.logits(z))


class MSP(OnePass):
    """Maximum softmax probability (Hendrycks & Gimpel 2017), as its log-odds log(MSP/(1-MSP))."""

    label = "MSP"

    def of(self, norm, logits):
        return msp_log_odds(logits)


class MaxLogit(OnePass):
    """Largest logit (Hendrycks et al. 2022)."""

    label = "MaxLogit"

    def of(self, norm, logits):
        return logits.max(axis=1)


class Energy(OnePass):
    """Negative energy T logsumexp(l / T), T = 1 (Liu et al. 2020; OpenOOD ebo.yml temperature 1)."""

    label = "Energy"

    def of(self, norm, logits):
        return logsumexp(logits)


class GEN(OnePass):
    """Generalized entropy (Liu et al. 2023): -log sum_{top M} p^g (1-p)^g, g = 0.1, M = 100 (OpenOOD gen.yml)."""

    label = "GEN"

    def __init__(self, gamma: float = 0.1, m: int = 100):
        self.gamma, self.m = gamma, m

    def of(self, norm, logits):
        return -gen_log(logits, self.gamma, self.m)


class FeatureNorm(OnePass):
    """The paper's score: ||z||, the feature's L2 norm before normalization."""

    label = "Feature norm"
    family = "norm"
    uses_head = False

    def of(self, norm, logits):
        return norm


class LogitNorm(OnePass):
    """||W h + b||, the L2 norm of the logits (the paper's Table 3)."""

    label = "Logit norm"
    family = "norm"

    def of(self, norm, logits):
        return np.linalg.norm(logits, axis=1)
