"""OoD scores from one forward pass, all "higher = more in-distribution".

Inputs are what inference stores per image (``l2ood.outputs``): the pre-normalization feature
norm ``||z||``, the logits the model produced, the classifier's bias and the head ("l2" or "nol2").

Two sets of logits, and the scores built on them carry the name of the one they read:

* ``raw``: W z + b, the classifier on the feature itself, "normalization turned off at test
  time" (paper A.2). Table 3's "Norm - Logits" and "MaxLogit" read these.
* ``head``: what the model's head computed, W z/||z|| + b for an L2 model (Algorithm 1's
  predictions). For a No L2 model both are the same W z + b.

MSP and the scaled softmax are the log-odds of the maximum softmax probability,
log(p / (1 - p)) = -logsumexp_{j != top}(l_j - l_top): a strictly increasing function of the
probability (so AUROC and FPR95 are those of the probability wherever it has no ties) that
stays finite and distinct where the probability has rounded to exactly 1.0 (a logit gap above
~37 in float64). MSP and energy read the head's logits, the model's own predictions.
"""

import numpy as np

from .detectors import label, logsumexp, msp_log_odds
from .layout import HEADS


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """The maximum softmax probability itself (for plots): saturates to 1.0 at gaps above ~37."""
    logits = _f64(logits)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).max(axis=1)


def feature_norm(out: dict) -> np.ndarray:
    """The paper's score: the L2 norm of the encoder's feature, read before normalization."""
    return _f64(out["feature_norm"])


def head_logits(out: dict) -> np.ndarray:
    """The logits the model's head computed: W z/||z|| + b (L2 head) or W z + b (No L2 head)."""
    return _f64(out["logits"])


def raw_logits(out: dict) -> np.ndarray:
    """W z + b: the logits the classifier gives the feature *without* normalization.

    For the L2 head the model computed W z/||z|| + b, so W z = ||z|| (logits - b).
    """
    logits, bias = head_logits(out), _f64(out["fc_bias"])
    head = str(out["head"])
    if head == "l2":
        return feature_norm(out)[:, None] * (logits - bias) + bias
    if head == "nol2":
        return logits
    raise ValueError(f"outputs of an unknown head {head!r}; the heads are {sorted(HEADS)}: rerun inference")


def scaled_logits(out: dict, scale: float) -> np.ndarray:
    """W (z / scale) + b: the raw logits with the feature scaled down by ``scale`` (Table 2)."""
    bias = _f64(out["fc_bias"])
    return (raw_logits(out) - bias) / scale + bias


def logit_norm_raw(out: dict) -> np.ndarray:
    """||W z + b||: Table 3's "Norm - Logits"."""
    return np.linalg.norm(raw_logits(out), axis=1)


def logit_norm_head(out: dict) -> np.ndarray:
    """||head logits||; for an L2 model ||W z/||z|| + b||, which carries no feature magnitude."""
    return np.linalg.norm(head_logits(out), axis=1)


def max_logit_raw(out: dict) -> np.ndarray:
    """max_c (W z + b)_c: Table 3's "MaxLogit"."""
    return raw_logits(out).max(axis=1)


def max_logit_head(out: dict) -> np.ndarray:
    """max_c of the head's logits."""
    return head_logits(out).max(axis=1)


def msp(out: dict) -> np.ndarray:
    """Maximum softmax probability of the model's own logits, as its log-odds (see the module)."""
    return msp_log_odds(head_logits(out))


def energy(out: dict) -> np.ndarray:
    """Negative energy, logsumexp of the model's own logits (Liu et al. 2020, temperature 1)."""
    return logsumexp(head_logits(out))


def scaled_msp(out: dict, scale: float) -> np.ndarray:
    """Table 2's "scaled softmax": the MSP of W (z / scale) + b, as its log-odds."""
    return msp_log_odds(scaled_logits(out, scale))


#: name -> f(outputs) -> per-image score; the scores every evaluation computes.
SCORES = {
    "feature_norm": feature_norm,
    "logit_norm_raw": logit_norm_raw,
    "logit_norm_head": logit_norm_head,
    "max_logit_raw": max_logit_raw,
    "max_logit_head": max_logit_head,
    "msp": msp,
    "energy": energy,
}

#: score -> printed name, by the one naming rule of ``l2ood.detectors.label``: "MSP" is the head's own
#: logits' MSP in every table, a "(Wz+b)" name reads W z + b.
LABELS = {
    "feature_norm": label("feature_norm"),
    "logit_norm_raw": label("logit_norm", "raw"),
    "logit_norm_head": label("logit_norm", "head"),
    "max_logit_raw": label("max_logit", "raw"),
    "max_logit_head": label("max_logit", "head"),
    "msp": label("msp", "head"),
    "energy": label("energy", "head"),
    "scaled_msp": "Scaled softmax",  # W (z / scale) + b: a logits of its own, named by the scale
}
