"""Metrics of one run and seed: every OoD set x every score, in one tidy table."""

import numpy as np
import pandas as pd

from .metrics import OOD_METRICS, accuracy, auroc
from .outputs import load_outputs
from .scores import SCORES, head_logits, max_softmax, scaled_logits, scaled_msp

#: scales tried for Table 2's scaled softmax: features divided by 10^0 .. 10^3, 10 steps a decade. Only
#: scaling *down* (>= 1), as the paper says: a scale below 1 enlarges the logits and saturates the softmax
#: (most ID images at exactly 1.0), where only its tie-free log-odds still ranks them.
SCALE_GRID = np.geomspace(1.0, 1000.0, 31)

#: the softmax scores and their logits, for ``id_softmax_at_1``
SOFTMAX_LOGITS = {"msp": lambda out, scale: head_logits(out), "scaled_msp": scaled_logits}


def softmax_at_1(logits: np.ndarray) -> float:
    """The share of images whose maximum softmax probability, computed in float64 from the stored
    float32 logits, is exactly 1.0: the images the probability itself could not rank (the log-odds the
    scores use still do)."""
    return float(np.mean(max_softmax(logits) == 1.0))


def tune_scale(id_out: dict, ood_outs: list[dict], grid=SCALE_GRID) -> float:
    """The feature scale-down whose softmax gives the best mean AUROC over ``ood_outs``.

    Tuned on the test data (ID and OoD) of one run and seed, each seed on its own, as the paper did
    for Table 2: an optimistic number, labelled as such wherever it is shown. The first (smallest) of
    equally good scales wins.
    """
    if not ood_outs:
        raise ValueError("no OoD sets to tune the softmax scale on")

    def mean_auroc(s):
        ids = scaled_msp(id_out, s)
        return np.mean([auroc(ids, scaled_msp(o, s)) for o in ood_outs])

    return float(max(grid, key=mean_auroc))


def cross_ties(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[int, int]:
    """(ID images whose score equals some OoD image's, OoD images whose score equals some ID image's).

    These are the ties AUROC counts one half: all images tied gives exactly 50.
    """
    return int(np.isin(id_scores, ood_scores).sum()), int(np.isin(ood_scores, id_scores).sum())


def evaluate_run(
    id_path, ood_paths: dict, meta: dict, scores=tuple(SCORES), scaled_softmax: bool = True, tune_on=None
) -> pd.DataFrame:
    """One row per (OoD set, score): the metrics of ``OOD_METRICS``, the ID test accuracy,
    ``id_tied`` / ``ood_tied`` (``cross_ties``) and, for the softmax scores (``SOFTMAX_LOGITS``),
    ``id_softmax_at_1`` (``softmax_at_1`` of the ID images; NaN for the other scores).

    ``meta`` (run, seed, model, head, recipe, id) is copied into every row. With
    ``scaled_softmax``, the score ``scaled_msp`` is added with its ``scale``, tuned on the OoD
    sets ``tune_on`` (default: all of ``ood_paths``), which the column ``scale_tuned_on`` names.
    """
    id_out = load_outputs(id_path)
    ood_outs = {name: load_outputs(p) for name, p in ood_paths.items()}
    acc = accuracy(id_out["logits"], id_out["labels"])
    fns = {s: SCORES[s] for s in scores}
    scale, tuned_on = np.nan, ""
    if scaled_softmax:
        tune_on = list(ood_outs) if tune_on is None else list(tune_on)
        unknown = [t for t in tune_on if t not in ood_outs]
        if unknown:
            raise ValueError(f"tune_scale_on names {unknown}, which are not OoD sets of the run: {sorted(ood_outs)}")
        scale = tune_scale(id_out, [ood_outs[t] for t in tune_on])
        tuned_on = " ".join(tune_on)
        fns["scaled_msp"] = lambda out: scaled_msp(out, scale)
    id_scores = {s: f(id_out) for s, f in fns.items()}
    at_1 = {s: softmax_at_1(SOFTMAX_LOGITS[s](id_out, scale)) for s in fns if s in SOFTMAX_LOGITS}
    keep = {k: meta[k] for k in ("run", "seed", "model", "head", "recipe", "id")}
    rows = []
    for name, out in ood_outs.items():
        for s, f in fns.items():
            ood_scores = f(out)
            metrics = {m: fn(id_scores[s], ood_scores) for m, fn in OOD_METRICS.items()}
            id_tied, ood_tied = cross_ties(id_scores[s], ood_scores)
            sm = s == "scaled_msp"
            rows.append({**keep, "ood": name, "score": s, **metrics, "accuracy": acc,
                         "id_tied": id_tied, "ood_tied": ood_tied, "id_softmax_at_1": at_1.get(s, np.nan),
                         "scale": scale if sm else np.nan, "scale_tuned_on": tuned_on if sm else ""})  # fmt: skip
    return pd.DataFrame(rows)
