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

The registry ``SCORES`` names each score by the detector it is (``l2ood.detectors``) and the logits it
reads: the function (``OnePass.of``) and the printed name (``l2ood.detectors.label``) are the
detector's, so a score and a detector of the same label are the same numbers.
"""

from dataclasses import dataclass

import numpy as np

from .detectors import DETECTORS, OnePass, label
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


#: which logits a score reads (the keys of ``l2ood.detectors.LOGITS_LABELS``) -> those logits of outputs
LOGITS = {"head": head_logits, "raw": raw_logits}


@dataclass(frozen=True)
class Score:
    """The one-pass detector ``detector`` (a ``OnePass`` of ``DETECTORS``) on the ``logits`` of the outputs."""

    detector: str
    logits: str = "head"

    def __post_init__(self):
        if not issubclass(DETECTORS[self.detector], OnePass):
            raise TypeError(f"{self.detector} needs the features, not one pass's outputs: it is no score")

    @property
    def label(self) -> str:
        return label(self.detector, self.logits)

    def __call__(self, out: dict) -> np.ndarray:
        return DETECTORS[self.detector]().of(feature_norm(out), LOGITS[self.logits](out))


#: name -> per-image score of the outputs (``Score(out)``); the scores every evaluation computes. Table 3's
#: "Norm - Logits" and "MaxLogit" read the raw logits W z + b.
SCORES = {
    "feature_norm": Score("feature_norm"),
    "logit_norm_raw": Score("logit_norm", "raw"),
    "logit_norm_head": Score("logit_norm", "head"),
    "max_logit_raw": Score("max_logit", "raw"),
    "max_logit_head": Score("max_logit", "head"),
    "msp": Score("msp", "head"),
    "energy": Score("energy", "head"),
}


def scaled_msp(out: dict, scale: float) -> np.ndarray:
    """Table 2's "scaled softmax": the MSP of W (z / scale) + b, as its log-odds."""
    return DETECTORS["msp"]().of(feature_norm(out), scaled_logits(out, scale))


#: score -> printed name, by the one naming rule of ``l2ood.detectors.label``: "MSP" is the head's own
#: logits' MSP in every table, a "(Wz+b)" name reads W z + b.
LABELS = {name: score.label for name, score in SCORES.items()}
LABELS["scaled_msp"] = "Scaled softmax"  # W (z / scale) + b: a logits of its own, named by the scale
