"""l2ood.outputs: a run's per-image outputs file, written atomically and read back as written; a
damaged one is named with its fix."""

import numpy as np
import pytest
from l2ood.fileio import DamagedFileError
from l2ood.outputs import load_outputs, save_outputs


def outputs(n=5, c=3) -> dict:
    rng = np.random.default_rng(0)
    return {"feature_norm": rng.random(n, dtype=np.float32), "logits": rng.standard_normal((n, c), dtype=np.float32),
            "labels": rng.integers(0, c, n).astype(np.int64), "fc_bias": rng.standard_normal(c, dtype=np.float32),
            "head": np.array("l2")}  # fmt: skip


def test_outputs_are_read_back_as_written(tmp_path):
    out = outputs()
    path = tmp_path / "seed0" / "outputs" / "digits-near.npz"
    path.parent.mkdir(parents=True)
    save_outputs(path, out)
    got = load_outputs(path)
    assert sorted(got) == sorted(out)
    for name, array in out.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array)
    assert got["head"].item() == "l2"
    assert sorted(p.name for p in path.parent.iterdir()) == ["digits-near.npz"]  # no temporary file left


def test_a_cut_short_outputs_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "outputs" / "digits-near.npz"
    path.parent.mkdir()
    save_outputs(path, outputs())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedFileError, match=rf"{path}.*Delete the folder {path.parent} and run snakemake again"):
        load_outputs(path)
