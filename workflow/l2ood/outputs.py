"""A run's per-image outputs: one ``outputs/{dataset}.npz`` per test set (``l2ood.layout.outputs_file``).

Inference writes them (``l2ood.train.infer_sets``); evaluation and the figures read them. Each file holds
``feature_norm`` (N,) float32, the pre-normalization feature norm ||z||; ``logits`` (N, C) float32;
``labels`` (N,) int64; ``fc_bias`` (C,) float32, the classifier's bias; ``head``, a 0-d string array
("l2" or "nol2").
"""

import numpy as np


def save_outputs(path, out: dict) -> None:
    """Write one test set's outputs (the dict ``infer_sets`` gives per set) to ``path``."""
    np.savez(path, **out)


def load_outputs(path) -> dict:
    """The arrays of an outputs file, read into memory: ``{name: array}``."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
