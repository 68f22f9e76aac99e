"""Detectors that need the network, not stored features: ODIN. The features job computes their scores
(l2ood.odin, torch) for a grid of hyperparameters; the detector here only picks one pair from it."""

import numpy as np

from .base import Detector

#: ODIN's stored grid: OpenOOD v1.5's default (configs/postprocessors/odin.yml: temperature 1000, noise
#: 0.0014), the ends of the temperatures and both perturbations of pytorch-ood 0.4's sweep
#: (ODIN.hyperparameter_space, "matches the one used by OpenOOD": T in 1, 10, 100, 1000; eps 0.0014,
#: 0.0028), and eps = 0, the temperature-scaled MSP. Two temperatures, not four: each costs a backward
#: pass per image and logits variant, which doubled the demo's features jobs on a CPU.
TEMPERATURES = (1.0, 1000.0)
EPSILONS = (0.0, 0.0014, 0.0028)


class ODIN(Detector):
    """log max softmax at temperature T of the input perturbed by eps (Liang et al. 2018), read from the
    features job's grid (``score_stored``): T = 1000, eps = 0.0014 by default (OpenOOD v1.5)."""

    label = "ODIN"
    family = "network"
    #: scores come from the features job's file, not from z: ``score_stored``
    stored = True

    def __init__(self, temperature: float = 1000.0, epsilon: float = 0.0014):
        if temperature not in TEMPERATURES or epsilon not in EPSILONS:
            raise ValueError(
                f"ODIN (temperature={temperature}, epsilon={epsilon}) is not in the grid the features job "
                f"stores: temperature one of {list(TEMPERATURES)}, epsilon one of {list(EPSILONS)} "
                "(l2ood.detectors.network; a new value there reruns the features job)"
            )
        self.temperature, self.epsilon = float(temperature), float(epsilon)

    def score_stored(self, grid, variant: str) -> np.ndarray:
        """The (N,) scores of one test set from its stored grid (an npz mapping: temperature, epsilon,
        and a (T, eps, N) array per logits variant)."""
        if variant not in grid:
            raise KeyError(f"the stored ODIN grid has no {variant!r} logits (it has {sorted(grid)})")
        i = np.flatnonzero(np.asarray(grid["temperature"]) == self.temperature)
        j = np.flatnonzero(np.asarray(grid["epsilon"]) == self.epsilon)
        if len(i) != 1 or len(j) != 1:
            raise ValueError(
                f"the stored ODIN grid lacks temperature {self.temperature} or epsilon {self.epsilon}: "
                "it predates the grid of l2ood.detectors.network; rerun the features job"
            )
        return np.asarray(grid[variant][i[0], j[0]], dtype=np.float64)

    def _score(self, z):
        raise TypeError("ODIN needs the network: the features job stores its scores; use score_stored")
