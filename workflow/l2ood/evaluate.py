"""Metrics of one run and seed: every OoD set x every score, in one tidy table."""

import numpy as np
import pandas as pd

from .metrics import OOD_METRICS, accuracy
from .scores import SCORES


def load_outputs(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def evaluate_run(id_path, ood_paths: dict, meta: dict, scores=tuple(SCORES)) -> pd.DataFrame:
    """One row per (OoD set, score): the metrics of ``OOD_METRICS`` and the ID test accuracy.

    ``meta`` (run, seed, model, head, recipe, id) is copied into every row.
    """
    id_out = load_outputs(id_path)
    acc = accuracy(id_out["logits"], id_out["labels"])
    id_scores = {s: SCORES[s](id_out) for s in scores}
    keep = {k: meta[k] for k in ("run", "seed", "model", "head", "recipe", "id")}
    rows = []
    for name, path in ood_paths.items():
        ood_out = load_outputs(path)
        for s in scores:
            ood = SCORES[s](ood_out)
            rows.append(
                {**keep, "ood": name, "score": s, **{m: f(id_scores[s], ood) for m, f in OOD_METRICS.items()}, "accuracy": acc}
            )
    return pd.DataFrame(rows)
