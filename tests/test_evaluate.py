"""l2ood.evaluate: scores on W z + b and the head's logits, ties across the two sets, the scaled
softmax's scale tuned on the named sets and only scaling down (moved from tests/test_fidelity.py,
items 1, 4 and 5 of issue 14)."""

import numpy as np
import pytest
from l2ood import evaluate as E
from l2ood.outputs import save_outputs

META = {"run": "r", "seed": 0, "model": "m", "head": "nol2", "recipe": "x", "id": "id"}


def write_set(path, logits, norms=None, head="nol2"):
    logits = np.asarray(logits, dtype=np.float32)
    n, c = logits.shape
    save_outputs(path, {"feature_norm": np.ones(n, np.float32) if norms is None else np.asarray(norms, np.float32),
                        "logits": logits, "labels": np.zeros(n, np.int64), "fc_bias": np.zeros(c, np.float32),
                        "head": np.array(head)})  # fmt: skip
    return path


def test_saturated_softmax_is_not_tied(tmp_path):
    # every top-two gap is above 40: each probability rounds to 1.0, the log-odds stay apart
    id_ = write_set(tmp_path / "id.npz", [[g, 0.0] for g in np.linspace(60, 80, 7)])
    ood = write_set(tmp_path / "ood.npz", [[g, 0.0] for g in np.linspace(41, 55, 5)])
    df = E.evaluate_run(id_, {"ood": ood}, META).set_index("score")
    assert df.loc["msp", "auroc"] == 1.0 and df.loc["msp", ["id_tied", "ood_tied"]].tolist() == [0, 0]
    assert df.loc["max_logit_raw", "auroc"] == 1.0
    # the metrics say how many ID images the probability itself could not rank (float64: all of them here)
    assert df.loc["msp", "id_softmax_at_1"] == df.loc["scaled_msp", "id_softmax_at_1"] == 1.0
    assert np.isnan(df.loc["feature_norm", "id_softmax_at_1"])
    # the feature norms are all 1: every image tied with every other, AUROC exactly 50
    assert df.loc["feature_norm", "auroc"] == 0.5 and df.loc["feature_norm", ["id_tied", "ood_tied"]].tolist() == [7, 5]


def test_cross_ties_count_each_side():
    assert E.cross_ties(np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 4.0, 1.0])) == (3, 2)


def test_scale_is_tuned_on_the_named_sets(tmp_path):
    rng = np.random.default_rng(0)
    id_ = write_set(tmp_path / "id.npz", rng.normal(0, 1, (30, 4)) + [3, 0, 0, 0], rng.uniform(5, 10, 30))
    a = write_set(tmp_path / "a.npz", rng.normal(0, 1, (20, 4)), rng.uniform(1, 6, 20))
    b = write_set(tmp_path / "b.npz", rng.normal(0, 3, (20, 4)) + [4, 0, 0, 0], rng.uniform(8, 20, 20))
    df = E.evaluate_run(id_, {"a": a, "b": b}, META, tune_on=["a"])
    sm = df[df.score == "scaled_msp"]
    assert (sm.scale_tuned_on == "a").all() and sm.scale.nunique() == 1
    from l2ood.outputs import load_outputs

    assert sm.scale.iloc[0] == E.tune_scale(load_outputs(id_), [load_outputs(a)])
    every = E.evaluate_run(id_, {"a": a, "b": b}, META)
    assert (every[every.score == "scaled_msp"].scale_tuned_on == "a b").all()  # default: all OoD sets
    with pytest.raises(ValueError, match=r"tune_scale_on names \['c'\].*\['a', 'b'\]"):
        E.evaluate_run(id_, {"a": a, "b": b}, META, tune_on=["c"])


def test_the_scale_only_scales_down(tmp_path):
    """Issue 20: a scale below 1 enlarges the logits and saturates the softmax; the old 0.1-1000 grid
    chose 0.1 here, where the log-odds rank ID above OoD but the probability itself is 1.0 for most ID."""
    rng = np.random.default_rng(0)
    # ID: top-two gap 3 (x 0.1), OoD: gap 2 but a far third logit; only an enlarged gap ranks ID first
    id_ = write_set(tmp_path / "id.npz", 0.1 * (np.array([3.0, 0, 0]) + rng.normal(0, 0.01, (20, 3))))
    ood = write_set(tmp_path / "ood.npz", 0.1 * (np.array([4.0, 2, -30]) + rng.normal(0, 0.01, (20, 3))))
    from l2ood.outputs import load_outputs

    assert E.tune_scale(load_outputs(id_), [load_outputs(ood)], grid=np.geomspace(0.1, 1000.0, 41)) < 1
    assert E.SCALE_GRID.min() == 1.0
    sm = E.evaluate_run(id_, {"ood": ood}, META).set_index("score").loc["scaled_msp"]
    assert sm.scale == 1.0 and sm.auroc < 0.5  # scaled down only: the honest, bad number
    assert sm.id_softmax_at_1 == 0.0


def test_softmax_at_1_is_the_float64_probability():
    assert E.softmax_at_1(np.array([[0.0, 37.5], [0.0, 36.0], [0.0, 1.0], [0.0, 800.0]], np.float32)) == 0.5
