"""A data set's spec may leave out seed, test_fraction, mean and std: their values are written once,
in l2ood.data.DEFAULTS (issue 21, item 5), and are keys the schema knows."""

import numpy as np
import yaml
from conftest import ROOT

from l2ood import data


def test_every_default_is_a_data_set_key_of_the_schema():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    keys = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    assert set(data.DEFAULTS) <= set(keys), set(data.DEFAULTS) - set(keys)


def test_a_spec_without_the_defaults_prepares_the_bytes_stated_ones_do(tmp_path):
    data.save_split(tmp_path / "like.npz", np.zeros((6, 4, 4, 3), np.uint8), np.arange(6) % 2)
    for kind in ("gaussian", "scrambled"):
        short = {"kind": kind, "image_size": 4}
        data.prepare(short, "test", tmp_path / f"{kind}.short.npz", inputs=[tmp_path / "like.npz"])
        data.prepare({**short, **data.DEFAULTS}, "test", tmp_path / f"{kind}.full.npz", inputs=[tmp_path / "like.npz"])
        assert data.md5sum(tmp_path / f"{kind}.short.npz") == data.md5sum(tmp_path / f"{kind}.full.npz")
    short = {"kind": "digits", "classes": [0, 1], "image_size": 8}
    data.prepare(short, "test", tmp_path / "d.short.npz")
    data.prepare({**short, **data.DEFAULTS}, "test", tmp_path / "d.full.npz")
    assert data.md5sum(tmp_path / "d.short.npz") == data.md5sum(tmp_path / "d.full.npz")
