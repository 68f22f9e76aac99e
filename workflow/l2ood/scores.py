"""OoD scores from one forward pass, all "higher = more in-distribution".

Inputs are what inference stores per image: the pre-normalization feature norm ``||z||``, the
logits the model produced, the classifier's bias and the head ("l2" or "nol2").
"""

import numpy as np

from .layout import HEADS


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def feature_norm(out: dict) -> np.ndarray:
    """The paper's score: the L2 norm of the encoder's feature, read before normalization."""
    return np.asarray(out["feature_norm"], dtype=np.float64)


def logit_norm(out: dict) -> np.ndarray:
    return np.linalg.norm(np.asarray(out["logits"], dtype=np.float64), axis=1)


def max_logit(out: dict) -> np.ndarray:
    return np.asarray(out["logits"], dtype=np.float64).max(axis=1)


def msp(out: dict) -> np.ndarray:
    """Maximum softmax probability of the model's own logits."""
    return softmax(np.asarray(out["logits"], dtype=np.float64)).max(axis=1)


def energy(out: dict) -> np.ndarray:
    """Negative energy, logsumexp of the logits (Liu et al. 2020, temperature 1)."""
    return _logsumexp(np.asarray(out["logits"], dtype=np.float64))


def unnormalized_logits(out: dict) -> np.ndarray:
    """W z + b: the logits the classifier would give the feature *without* normalization.

    For the L2 head the model computed W z/||z|| + b, so W z = ||z|| (logits - b).
    """
    logits, bias = np.asarray(out["logits"], dtype=np.float64), np.asarray(out["fc_bias"], dtype=np.float64)
    head = str(out["head"])
    if head == "l2":
        return feature_norm(out)[:, None] * (logits - bias) + bias
    if head == "nol2":
        return logits
    raise ValueError(f"outputs of an unknown head {head!r}; the heads are {sorted(HEADS)}: rerun inference")


def scaled_msp(out: dict, scale: float) -> np.ndarray:
    """Table 2's "scaled softmax": MSP of W (z / scale) + b, features scaled down before softmax."""
    logits, bias = unnormalized_logits(out), np.asarray(out["fc_bias"], dtype=np.float64)
    return softmax((logits - bias) / scale + bias).max(axis=1)


#: name -> f(outputs) -> per-image score; the scores every evaluation computes.
SCORES = {
    "feature_norm": feature_norm,
    "logit_norm": logit_norm,
    "max_logit": max_logit,
    "msp": msp,
    "energy": energy,
}

LABELS = {
    "feature_norm": "Feature norm",
    "logit_norm": "Logit norm",
    "max_logit": "MaxLogit",
    "msp": "MSP",
    "energy": "Energy",
    "scaled_msp": "Scaled softmax",
}
