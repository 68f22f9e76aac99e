"""Metrics of one run and seed: every OoD set x every score, in one tidy table."""

import numpy as np
import pandas as pd

from .metrics import OOD_METRICS, accuracy, auroc
from .outputs import load_outputs
from .scores import SCORES, scaled_msp

#: scales tried for Table 2's scaled softmax: features divided by 10^-1 .. 10^3.
SCALE_GRID = np.geomspace(0.1, 1000.0, 41)


def tune_scale(id_out: dict, ood_outs: list[dict], grid=SCALE_GRID) -> float:
    """The feature scale-down whose softmax gives the best mean AUROC over the OoD sets.

    Tuned on the test data (ID and OoD), as the paper did for Table 2: an optimistic number,
    labelled as such wherever it is shown.
    """
    def mean_auroc(s):
        ids = scaled_msp(id_out, s)
        return np.mean([auroc(ids, scaled_msp(o, s)) for o in ood_outs])

    return float(max(grid, key=mean_auroc))


def evaluate_run(id_path, ood_paths: dict, meta: dict, scores=tuple(SCORES), scaled_softmax: bool = True) -> pd.DataFrame:
    """One row per (OoD set, score): the metrics of ``OOD_METRICS`` and the ID test accuracy.

    ``meta`` (run, seed, model, head, recipe, id) is copied into every row. With
    ``scaled_softmax``, the score ``scaled_msp`` is added with its tuned ``scale``.
    """
    id_out = load_outputs(id_path)
    ood_outs = {name: load_outputs(p) for name, p in ood_paths.items()}
    acc = accuracy(id_out["logits"], id_out["labels"])
    fns = {s: SCORES[s] for s in scores}
    scale = np.nan
    if scaled_softmax:
        scale = tune_scale(id_out, list(ood_outs.values()))
        fns["scaled_msp"] = lambda out: scaled_msp(out, scale)
    id_scores = {s: f(id_out) for s, f in fns.items()}
    keep = {k: meta[k] for k in ("run", "seed", "model", "head", "recipe", "id")}
    rows = []
    for name, out in ood_outs.items():
        for s, f in fns.items():
            metrics = {m: fn(id_scores[s], f(out)) for m, fn in OOD_METRICS.items()}
            rows.append({**keep, "ood": name, "score": s, **metrics, "accuracy": acc,
                         "scale": scale if s == "scaled_msp" else np.nan})  # fmt: skip
    return pd.DataFrame(rows)
