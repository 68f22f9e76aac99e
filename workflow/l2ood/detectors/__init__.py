"""Post-hoc OoD detectors on stored features: pure numpy, float64 inside, "higher = more in-distribution".

Every detector reads the same things about one model (docs/detectors.md has the table with sources):

* ``features`` z, (N, d): the encoder's penultimate features *before* any L2 normalization;
* a ``Head``: the classifier's weight W (C, d), bias b (C,) and ``head_normalized``, which says how
  the head turns a feature into logits:

  - ``head_normalized=False``: logits = W z + b, the "normalization turned off at test time" of the
    paper's Appendix A.2; for a No-L2 model this is exactly what the model computes;
  - ``head_normalized=True``: logits = W z/||z|| + b, what an L2-head model computes.

  For a No-L2 model only False is the model's own head; True asks "what if this head read unit
  features". The caller decides; nothing here guesses from the run name.
* for fitted detectors, the training split's features and labels (``fit``).

What ``head_normalized`` changes: everything built from the head, i.e. the logits and the detectors
on them (MSP, MaxLogit, energy, GEN, logit norm), and the detectors that rework the head's input
h = phi(z) (phi = z/||z|| or identity): ReAct clips z and feeds the clipped feature through the head
(normalizing it again when the head does: ReAct inserted in front of the head); DICE sparsifies W
with the mean training h; ViM and fDBD work in the space W acts on, h. What it does not change: the
feature-space detectors Mahalanobis, RMDS and KNN read z (KNN normalizes it anyway), and the feature
norm is ||z||.

Usage::

    head = Head(W, b, head_normalized=False)
    scores = score_all(head, {"cifar10": z_id, "svhn": z_svhn}, train_features, train_labels)
    scores["knn"]["svhn"]                      # (N_svhn,) float64, higher = more ID

or one detector: ``DETECTORS["vim"]().fit(head, train_features, train_labels).score(z)``.

Saturation: MSP and GEN are computed in log space as strictly increasing transforms of the
published scores (log-odds of the MSP, minus the log of GEN's sum), so logit gaps of 40, 100 or
1000 still give distinct scores where the softmax itself has rounded to exactly 1. A strictly
increasing transform leaves AUROC and FPR95 unchanged wherever the original has no ties.
"""

import numpy as np

from .base import FAMILIES  # noqa: F401
from .base import L2_EPS, Detector, Head, _as_features, logsumexp, msp_log_odds, unit  # noqa: F401 (re-exported)
from .distance import FDBD, KNN, KNN_BLOCK, RMDS, Mahalanobis, ViM, knn_distances, vim_dim  # noqa: F401
from .logits import GEN, MSP, Energy, FeatureNorm, LogitNorm, MaxLogit, OnePass  # noqa: F401
from .network import ODIN  # noqa: F401
from .shaping import DICE, ReAct  # noqa: F401
from .activation import ASHB, ASHP, ASHS, SCALE  # noqa: F401
from .probability import Entropy, GradNorm, KLMatching, TemperatureScaling  # noqa: F401
from .stored import SHE, NNGuide, OpenMax  # noqa: F401

DETECTORS: dict[str, type[Detector]] = {
    "msp": MSP,
    "max_logit": MaxLogit,
    "energy": Energy,
    "gen": GEN,
    "react": ReAct,
    "dice": DICE,
    "mahalanobis": Mahalanobis,
    "rmds": RMDS,
    "knn": KNN,
    "vim": ViM,
    "fdbd": FDBD,
    "feature_norm": FeatureNorm,
    "logit_norm": LogitNorm,
    "entropy": Entropy,
    "temp_scaling": TemperatureScaling,
    "klm": KLMatching,
    "gradnorm": GradNorm,
    "openmax": OpenMax,
    "ash_p": ASHP,
    "ash_b": ASHB,
    "ash_s": ASHS,
    "scale": SCALE,
    "she": SHE,
    "nnguide": NNGuide,
    "odin": ODIN,
}

#: name -> printed name of the method (``label`` below adds which logits it read)
LABELS = {name: cls.label for name, cls in DETECTORS.items()}

#: which logits a score read -> what its printed name adds: the one naming rule every table, figure, CSV
#: and caption follows (l2ood.scores, l2ood.tables, l2ood.figures). "head": the model's own head, W z/||z||
#: + b for an L2 model and W z + b for No L2 (nothing added: "MSP" is that number everywhere); "raw":
#: W z + b, the classifier on the unnormalized feature for both heads (paper A.2), "MSP (Wz+b)".
LOGITS_LABELS = {"head": "", "raw": " (Wz+b)"}


def label(name: str, logits: str = "head") -> str:
    """The printed name of a score or detector ``name`` (a key of ``DETECTORS``) on ``logits`` (a key of
    ``LOGITS_LABELS``); a detector that does not read the head (Mahalanobis, KNN, ...) gets no suffix."""
    if logits not in LOGITS_LABELS:
        raise ValueError(f"unknown logits {logits!r}; use one of {sorted(LOGITS_LABELS)}")
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(DETECTORS)}")
    return LABELS[name] + (LOGITS_LABELS[logits] if DETECTORS[name].uses_head else "")


def by_family(names, detectors=None) -> list[tuple[str, list[str]]]:
    """``[(family, [names in it])]`` in the order of ``FAMILIES``, each family's names in their given
    order, empty families left out: how the detectors table and figure group their rows.
    ``detectors``: the registry to read ``family`` from (default ``DETECTORS``)."""
    detectors = DETECTORS if detectors is None else detectors
    bad = {n: detectors[n].family for n in names if detectors[n].family not in FAMILIES}
    if bad:
        raise ValueError(f"detectors with a family not in {FAMILIES}: {bad}; set the class attribute `family`")
    groups = [(f, [n for n in names if detectors[n].family == f]) for f in FAMILIES]
    return [(f, members) for f, members in groups if members]


def score_all(
    head: Head,
    features: dict[str, np.ndarray],
    train_features=None,
    train_labels=None,
    names=None,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit each detector once and score every test set: ``{detector: {test set: (N,) scores}}``.

    ``features``: test set name -> raw features (N, d), any float dtype (float16 as stored is fine).
    ``names``: detectors to run (default: all of ``DETECTORS`` but ODIN, which the features job scores);
    the training split is needed when one of them is fitted on it.
    """
    names = [n for n, c in DETECTORS.items() if not c.stored] if names is None else list(names)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise KeyError(f"unknown detectors {unknown}; known: {sorted(DETECTORS)}")
    stored = [n for n in names if DETECTORS[n].stored]
    if stored:
        raise ValueError(f"{stored} need the network, not features: the features job stores their scores")
    # convert once (float16 -> float64), not once per detector
    features = {dataset: _as_features(z, head.dim, f"features of {dataset}") for dataset, z in features.items()}
    if train_features is not None:
        train_features = _as_features(train_features, head.dim, "train_features")
    out = {}
    for name in names:
        detector = DETECTORS[name]().fit(head, train_features, train_labels)
        out[name] = {dataset: detector.score(z) for dataset, z in features.items()}
    return out
