"""Detectors on the head's softmax: entropy, temperature-scaled MSP, KL matching, GradNorm.

All read the logits W h + b of the ``Head`` (h = z/||z|| or z as the head says), computed in log
space from log-softmax, never from rounded probabilities.
"""

import numpy as np
from scipy.optimize import minimize_scalar

from .base import Detector, logsumexp, msp_log_odds


def log_softmax(logits: np.ndarray) -> np.ndarray:
    return logits - logsumexp(logits)[:, None]


class Entropy(Detector):
    """Minus the softmax entropy, sum_c p_c log p_c (higher = more peaked = more ID)."""

    label = "Entropy"
    family = "logits"

    def _score(self, z):
        log_p = log_softmax(self.head.logits(z))
        return np.sum(np.exp(log_p) * log_p, axis=1)


class TemperatureScaling(Detector):
    """MSP (as its log-odds) of logits / T, T minimizing the training split's NLL (Guo et al. 2017)."""

    label = "TempScale"
    family = "logits"
    uses_train = True
    #: the range T is searched in (log-uniformly). On a training split the model classifies perfectly
    #: the NLL keeps falling as T -> 0, so T stops at the lower end: the ranking is then the logit gap's.
    T_RANGE = (1e-2, 1e2)

    def _fit(self, z, y):
        logits = self.head.logits(z)

        def nll(log_t):
            return -np.mean(log_softmax(logits / np.exp(log_t))[np.arange(len(y)), y])

        lo, hi = np.log(self.T_RANGE)
        self.temperature = float(
            np.exp(minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}).x)
        )

    def _score(self, z):
        return msp_log_odds(self.head.logits(z) / self.temperature)


class KLMatching(Detector):
    """-min_k KL(p || d_k), d_k the mean softmax of the training images predicted as k (Hendrycks et al. 2022)."""

    label = "KLM"
    family = "logits"
    uses_train = True

    def _fit(self, z, y):
        log_p = log_softmax(self.head.logits(z))
        pred = log_p.argmax(axis=1)
        # log of the mean of p over each predicted class, by log-sum-exp (no underflow to log 0)
        self.log_d = np.stack(
            [logsumexp(log_p[pred == k], axis=0) - np.log(np.sum(pred == k)) for k in np.unique(pred)]
        )

    def _score(self, z):
        log_p = log_softmax(self.head.logits(z))
        p = np.exp(log_p)
        kl = np.sum(p * log_p, axis=1)[:, None] - p @ self.log_d.T  # (N, K)
        return -kl.min(axis=1)


class GradNorm(Detector):
    """||d KL(u || softmax) / dW||_1 for the head's weight (Huang et al. 2021), in closed form.

    The loss is the cross-entropy to the uniform distribution u, L = -(1/C) sum_c log p_c (KL(u || p)
    up to a constant), T = 1 (OpenOOD gradnorm.yml). With logits l = W h + b, dL/dl_c = p_c - 1/C,
    so dL/dW = (p - u) h^T, whose entrywise L1 norm factorizes: (sum_c |p_c - 1/C|) (sum_j |h_j|).
    """

    label = "GradNorm"
    family = "logits"

    def _score(self, z):
        p = np.exp(log_softmax(self.head.logits(z)))
        h = self.head.head_input(z)
        return np.abs(p - 1.0 / p.shape[1]).sum(axis=1) * np.abs(h).sum(axis=1)
