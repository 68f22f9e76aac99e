"""Every post-hoc detector on one run and seed's stored features: one tidy table of metrics.

Reads what the features job stored (``l2ood.layout.FEATURES_DIR``: float16 penultimate features of
the training split and of each test set, the head's W and b) and needs neither a GPU nor the
model: adding a detector or changing a hyperparameter reruns only this step. ODIN, which needs the
network, is read from the scores the features job stored for a grid of its hyperparameters
(``load_odin``; l2ood.odin).

Logits variants (``LOGITS``), the column ``logits`` of the table:

* ``raw``: logits = W z + b (``Head(..., head_normalized=False)``). The main variant, for both
  heads: for a No-L2 model it is the model's own head; for an L2 model it is the paper's
  "normalization turned off at test time" (Appendix A.2), so the logit-based detectors keep the
  feature norm the paper shows to carry the OoD signal.
* ``normalized``: logits = W z/||z|| + b, what an L2 model computes (its predictions). Only for L2
  runs and only for the detectors that read the head (``Detector.uses_head``): Mahalanobis, RMDS,
  KNN and the feature norm read z alone and would repeat the ``raw`` numbers.

Every score, the feature norm included, is computed from the same float16 features, so the
detectors are compared on equal terms (docs/detectors.md, "What inference must store").
"""

from pathlib import Path

import numpy as np
import pandas as pd

from .detectors import DETECTORS, Head, label
from .fileio import load_npz
from .layout import FEATURES_DIR, FEATURES_HEAD, features_file, odin_file
from .metrics import OOD_METRICS, accuracy

#: logits variant -> head_normalized
LOGITS = {"raw": False, "normalized": True}
#: logits variant -> its name in printed labels (l2ood.detectors.label): "normalized" is the L2 model's own head
VARIANT_LOGITS = {"raw": "raw", "normalized": "head"}


def detector_label(name: str, variant: str = "raw") -> str:
    """The printed name of detector ``name`` on the logits ``variant``: "MSP (Wz+b)" (raw), "MSP" (normalized)."""
    if variant not in VARIANT_LOGITS:
        raise ValueError(f"unknown logits {variant!r}; the variants are {sorted(VARIANT_LOGITS)}")
    return label(name, VARIANT_LOGITS[variant])


def load_features(run_dir, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, d) float16, labels (N,) int64) of one set, as the features job stored them."""
    path = Path(run_dir) / features_file(dataset, split)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the features job stores it (rules/detectors.smk)")
    with np.load(path) as z:
        return z["features"], z["labels"]


def load_head(run_dir) -> tuple[np.ndarray, np.ndarray, str]:
    """(W (C, d), b (C,), head name) of the run's classifier."""
    with np.load(Path(run_dir) / FEATURES_DIR / FEATURES_HEAD) as z:
        return z["weight"], z["bias"], str(z["head"])


def load_odin(run_dir, dataset: str) -> dict:
    """A test set's ODIN grid as the features job stored it: temperature, epsilon, a (T, eps, N) array per logits."""
    path = Path(run_dir) / odin_file(dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the features job stores it (l2ood.odin); rerun that job")
    return load_npz(path, "delete the run's features folder; the features job writes it again")


def make_detectors(names, params: dict | None = None) -> dict:
    """``{name: detector}`` built with ``params[name]`` (keyword arguments) over the cited defaults."""
    params = params or {}
    unknown = sorted(set(names) - set(DETECTORS)) + sorted(set(params) - set(DETECTORS))
    if unknown:
        raise KeyError(f"unknown detectors {unknown} in config 'detectors:'; known: {sorted(DETECTORS)}")
    out = {}
    for name in names:
        try:
            out[name] = DETECTORS[name](**params.get(name, {}))
        except TypeError as err:
            raise TypeError(f"detectors.params.{name}: {err}") from None
    return out


def evaluate_detectors(run_dir, meta: dict, names=None, params: dict | None = None) -> pd.DataFrame:
    """One row per (OoD set, detector, logits variant) with the metrics of ``OOD_METRICS``.

    ``meta``: run, seed, model, head, recipe, id (the ID data set) and ood (the OoD sets), copied
    into every row; ``names``: the detectors (default every one of ``DETECTORS``); ``params``:
    ``{detector: {hyperparameter: value}}``. ``accuracy`` is the ID test accuracy of the model's own
    head (normalized for L2 runs) computed from the stored features.
    """
    names = list(DETECTORS) if names is None else list(names)
    weight, bias, head_name = load_head(run_dir)
    if head_name != meta["head"]:
        raise ValueError(f"{run_dir}: the stored head is {head_name!r} but the run's config says {meta['head']!r}")
    # float16 -> float64 once, not once per detector
    train_z, train_y = load_features(run_dir, meta["id"], "train")
    train_z = train_z.astype(np.float64)
    sets = {d: load_features(run_dir, d, "test")[0].astype(np.float64) for d in [meta["id"], *meta["ood"]]}
    id_z, id_y = sets[meta["id"]], load_features(run_dir, meta["id"], "test")[1]
    acc = accuracy(Head(weight, bias, head_normalized=head_name == "l2").logits(id_z), id_y)
    keep = {k: meta[k] for k in ("run", "seed", "model", "head", "recipe", "id")}
    variants = ["raw", "normalized"] if head_name == "l2" else ["raw"]
    rows = []
    for variant in variants:
        head = Head(weight, bias, head_normalized=LOGITS[variant])
        for name, detector in make_detectors(names, params).items():
            if variant != "raw" and not detector.uses_head:
                continue
            detector.fit(head, train_z, train_y)
            if detector.stored:  # ODIN: the features job's scores of the same variant
                score = lambda d: detector.score_stored(load_odin(run_dir, d), variant)  # noqa: E731
            else:
                score = lambda d: detector.score(sets[d])  # noqa: E731
            id_scores = score(meta["id"])
            for ood in meta["ood"]:
                ood_scores = score(ood)
                metrics = {m: fn(id_scores, ood_scores) for m, fn in OOD_METRICS.items()}
                rows.append({**keep, "ood": ood, "detector": name, "logits": variant, **metrics, "accuracy": acc})
    return pd.DataFrame(rows)
