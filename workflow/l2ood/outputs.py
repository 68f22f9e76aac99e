"""A run's per-image outputs: one ``outputs/{dataset}.npz`` per test set (``l2ood.layout.outputs_file``).

Inference writes them (``l2ood.inference.infer_sets``); evaluation and the figures read them. Each file holds
``feature_norm`` (N,) float32, the pre-normalization feature norm ||z||; ``logits`` (N, C) float32;
``labels`` (N,) int64; ``fc_bias`` (C,) float32, the classifier's bias; ``head``, a 0-d string array
("l2" or "nol2").
"""

from pathlib import Path

from .fileio import load_npz, save_npz


def save_outputs(path, out: dict) -> None:
    """Write one test set's outputs (the dict ``infer_sets`` gives per set) to ``path``, atomically."""
    save_npz(path, **out)


def load_outputs(path) -> dict:
    """The arrays of an outputs file, read into memory: ``{name: array}``. A damaged file raises
    ``l2ood.fileio.DamagedFileError`` naming it and the fix: its run's inference writes it again."""
    folder = Path(path).parent
    fix = f"Delete the folder {folder} and run snakemake again: the infer rule writes it again"
    return load_npz(path, fix)
