"""Detectors on the head's logits and the norms: MSP, MaxLogit, energy, GEN, feature norm, logit norm."""

import numpy as np

from .base import Detector, gen_log, logsumexp, msp_log_odds


class MSP(Detector):
    """Maximum softmax probability (Hendrycks & Gimpel 2017), as its log-odds log(MSP/(1-MSP))."""

    label = "MSP"

    def _score(self, z):
        return msp_log_odds(self.head.logits(z))


class MaxLogit(Detector):
    """Largest logit (Hendrycks et al. 2022)."""

    label = "MaxLogit"

    def _score(self, z):
        return self.head.logits(z).max(axis=1)


class Energy(Detector):
    """Negative energy T logsumexp(l / T), T = 1 (Liu et al. 2020; OpenOOD ebo.yml temperature 1)."""

    label = "Energy"

    def _score(self, z):
        return logsumexp(self.head.logits(z))


class GEN(Detector):
    """Generalized entropy (Liu et al. 2023): -log sum_{top M} p^g (1-p)^g, g = 0.1, M = 100 (OpenOOD gen.yml)."""

    label = "GEN"

    def __init__(self, gamma: float = 0.1, m: int = 100):
        self.gamma, self.m = gamma, m

    def _score(self, z):
        return -gen_log(self.head.logits(z), self.gamma, self.m)


class FeatureNorm(Detector):
    """The paper's score: ||z||, the feature's L2 norm before normalization."""

    label = "Feature norm"
    uses_head = False

    def _score(self, z):
        return np.linalg.norm(z, axis=1)


class LogitNorm(Detector):
    """||W h + b||, the L2 norm of the logits (the paper's Table 3)."""

    label = "Logit norm"

    def _score(self, z):
        return np.linalg.norm(self.head.logits(z), axis=1)


#: name -> detector class (constructed with its cited defaults); the first docstring line says what it is.
