"""Detectors that reshape the head's input or weights before the energy: ReAct, DICE."""

import numpy as np

from .base import Detector, logsumexp


class ReAct(Detector):
    """Energy after clipping features at the 90th percentile of training activations (Sun et al. 2021)."""

    label = "ReAct"
    family = "shaping"
    uses_train = True

    def __init__(self, percentile: float = 90.0):
        self.percentile = percentile

    def _fit(self, z, y):
        self.threshold = float(np.percentile(z, self.percentile))  # over all N x d activations

    def _score(self, z):
        return logsumexp(self.head.logits(np.minimum(z, self.threshold)))


class DICE(Detector):
    """Energy with the weights whose contribution W * mean training h is in the lowest 90% zeroed (Sun & Li 2022)."""

    label = "DICE"
    family = "shaping"
    uses_train = True

    def __init__(self, sparsity: float = 90.0):
        self.sparsity = sparsity  # percent of weights dropped

    def _fit(self, z, y):
        contribution = self.head.weight * self.head.head_input(z).mean(axis=0)[None, :]
        threshold = np.percentile(contribution, self.sparsity)
        self.masked_weight = np.where(contribution > threshold, self.head.weight, 0.0)

    def _score(self, z):
        return logsumexp(self.head.logits(z, self.masked_weight))
