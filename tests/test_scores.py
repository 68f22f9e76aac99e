import numpy as np
import pytest
import torch

from l2ood import scores as S
from l2ood.models import build_model


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        logits, z = model(x)
    return {
        "feature_norm": z.norm(dim=1).numpy(),
        "logits": logits.numpy(),
        "fc_bias": model.fc.bias.detach().numpy(),
        "head": np.array(model.head),
    }


def test_hand_computed_scores():
    out = {
        "feature_norm": np.array([2.0]),
        "logits": np.array([[0.0, np.log(3.0)]]),
        "fc_bias": np.zeros(2),
        "head": np.array("nol2"),
    }
    assert S.SCORES["feature_norm"](out)[0] == 2.0
    assert S.SCORES["max_logit_raw"](out)[0] == S.SCORES["max_logit_head"](out)[0] == pytest.approx(np.log(3))
    assert S.max_softmax(out["logits"])[0] == pytest.approx(0.75)  # e^0 = 1, e^log3 = 3 -> 3/4
    assert S.SCORES["msp"](out)[0] == pytest.approx(np.log(0.75 / 0.25))  # its log-odds
    assert S.SCORES["energy"](out)[0] == pytest.approx(np.log(4))
    assert S.SCORES["logit_norm_raw"](out)[0] == S.SCORES["logit_norm_head"](out)[0] == pytest.approx(np.log(3))


@pytest.mark.parametrize("head", ["l2", "nol2"])
def test_raw_logits_are_wz_plus_b(head):
    torch.manual_seed(0)
    model = build_model("smallcnn", 5, head, 8, width=4)
    x = torch.randn(6, 3, 8, 8)
    out = outputs(model, x)
    with torch.no_grad():
        _, z = model(x)
        expected = model.fc(z).numpy()  # the classifier on the raw feature
    np.testing.assert_allclose(S.raw_logits(out), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(S.SCORES["logit_norm_raw"](out), np.linalg.norm(expected, axis=1), rtol=1e-4)
    np.testing.assert_allclose(S.SCORES["max_logit_raw"](out), expected.max(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(S.SCORES["logit_norm_head"](out), np.linalg.norm(out["logits"], axis=1), rtol=1e-6)
    # scale 1 reproduces the softmax of the raw logits; a huge scale leaves only the bias
    logodds = lambda p: np.log(p / (1 - p))
    np.testing.assert_allclose(S.scaled_msp(out, 1.0), logodds(S.max_softmax(expected)), rtol=1e-5)
    np.testing.assert_allclose(S.scaled_msp(out, 1e9), logodds(S.max_softmax(out["fc_bias"][None]))[0], rtol=1e-6)


def test_every_score_is_higher_for_confident_inputs():
    confident = {
        "feature_norm": np.array([10.0]),
        "logits": np.array([[10.0, 0.0]]),
        "fc_bias": np.zeros(2),
        "head": np.array("nol2"),
    }
    unsure = {
        "feature_norm": np.array([1.0]),
        "logits": np.array([[0.1, 0.0]]),
        "fc_bias": np.zeros(2),
        "head": np.array("nol2"),
    }
    for name, f in S.SCORES.items():
        assert f(confident)[0] > f(unsure)[0], name


def test_outputs_of_an_unknown_head_are_refused():
    old = {"feature_norm": np.array([2.0]), "logits": np.array([[0.0, 1.0]]), "fc_bias": np.zeros(2)}
    old["head"] = np.array("linear")  # the name before "nol2"
    with pytest.raises(ValueError, match=r"unknown head 'linear'.*\['l2', 'nol2'\]"):
        S.raw_logits(old)


def test_table3_logits_of_an_l2_model_carry_the_feature_norm():
    # bias 0, one direction: the raw logits scale with ||z||, the head's do not (cosine-type)
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    z = np.array([[3.0, 4.0], [30.0, 40.0]])  # same direction, norms 5 and 50
    head = z / np.linalg.norm(z, axis=1, keepdims=True) @ w.T
    out = {"feature_norm": np.linalg.norm(z, axis=1), "logits": head, "fc_bias": np.zeros(2), "head": np.array("l2")}
    np.testing.assert_allclose(S.SCORES["logit_norm_raw"](out), [5.0, 50.0])
    np.testing.assert_allclose(S.SCORES["max_logit_raw"](out), [4.0, 40.0])
    np.testing.assert_allclose(S.SCORES["logit_norm_head"](out), [1.0, 1.0])
    np.testing.assert_allclose(S.SCORES["max_logit_head"](out), [0.8, 0.8])


@pytest.mark.parametrize("gap", [40.0, 100.0, 1000.0])
def test_msp_does_not_saturate(gap):
    # top-two gaps of gap, gap + 1, gap + 2: the probability is exactly 1.0 for all three
    logits = np.array([[gap + d, 0.0, -1.0] for d in (0.0, 1.0, 2.0)])
    assert (S.max_softmax(logits) == 1.0).all()  # the tie the log-odds form avoids
    out = {"feature_norm": np.ones(3), "logits": logits, "fc_bias": np.zeros(3), "head": np.array("nol2")}
    m = S.SCORES["msp"](out)
    assert np.isfinite(m).all() and (np.diff(m) > 0).all()  # strictly ordered as the gaps
    # by hand: -log(e^-g + e^-(g+1)) = g - log(1 + e^-1) for the top-two gap g
    np.testing.assert_allclose(m, gap + np.arange(3) - np.log1p(np.exp(-1.0)), rtol=1e-12)
    sm = S.scaled_msp(out, 1.0)
    assert (np.diff(sm) > 0).all() and (S.scaled_msp(out, 0.01) > S.scaled_msp(out, 1.0)).all()


def test_msp_is_a_strictly_increasing_function_of_the_probability():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(200, 10))
    out = {"feature_norm": np.ones(200), "logits": logits, "fc_bias": np.zeros(10), "head": np.array("nol2")}
    p = S.max_softmax(logits)
    msp = S.SCORES["msp"](out)
    np.testing.assert_allclose(msp, np.log(p / (1 - p)), rtol=1e-9, atol=1e-9)  # independent: via probabilities
    assert (np.argsort(msp) == np.argsort(p)).all()


def test_one_name_per_score_across_scores_and_detectors():
    """The same label means the same numbers in every table: the metrics' scores (l2ood.scores) and the
    detectors (l2ood.evaluate_detectors' logits variants) on one L2 model, named by l2ood.detectors.label.
    Before, the detectors table's "MSP" read W z + b where the demo table's "MSP" reads the head's W z/||z|| + b."""
    from l2ood.detectors import DETECTORS, Head
    from l2ood.evaluate_detectors import LOGITS, detector_label

    rng = np.random.default_rng(0)
    w, b, z = rng.normal(size=(4, 6)), rng.normal(size=4), 3 * rng.normal(size=(50, 6))
    norm = np.linalg.norm(z, axis=1)
    out = {"feature_norm": norm, "logits": (z / norm[:, None]) @ w.T + b, "fc_bias": b, "head": np.array("l2")}
    named = {S.LABELS[s]: f(out) for s, f in S.SCORES.items()}
    for variant, normalized in LOGITS.items():
        head = Head(w, b, head_normalized=normalized)
        for name in ("msp", "max_logit", "energy", "logit_norm", "feature_norm"):
            v = DETECTORS[name]().fit(head).score(z)
            named.setdefault(detector_label(name, variant), v)
            np.testing.assert_allclose(v, named[detector_label(name, variant)], rtol=1e-9, err_msg=name)
    assert S.LABELS["msp"] == detector_label("msp", "normalized") == "MSP"
    assert detector_label("msp", "raw") == "MSP (Wz+b)" and detector_label("knn", "raw") == "KNN"
    # two labels never name the same numbers either (the suffix is what tells them apart)
    for a, b_ in [(a, b_) for a in named for b_ in named if a < b_]:
        assert not np.allclose(named[a], named[b_]), (a, b_)


def test_scores_are_the_detectors_functions(monkeypatch):
    """One registry: each per-image score calls its detector's ``of`` (the one place the score is written),
    so changing the detector changes the score; before, scores.py wrote MSP, energy, ... a second time."""
    from l2ood.detectors import DETECTORS, OnePass

    out = {
        "feature_norm": np.array([2.0]),
        "logits": np.array([[0.0, 1.0]]),
        "fc_bias": np.zeros(2),
        "head": np.array("nol2"),
    }
    for name, score in S.SCORES.items():
        assert issubclass(DETECTORS[score.detector], OnePass), name
        assert S.LABELS[name] == score.label
        monkeypatch.setattr(DETECTORS[score.detector], "of", lambda self, norm, logits: np.full(len(norm), -7.0))
        assert S.SCORES[name](out)[0] == -7.0, name
        monkeypatch.undo()
    monkeypatch.setattr(DETECTORS["msp"], "of", lambda self, norm, logits: np.full(len(norm), -7.0))
    assert S.scaled_msp(out, 10.0)[0] == -7.0
