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
    out = {"feature_norm": np.array([2.0]), "logits": np.array([[0.0, np.log(3.0)]]), "fc_bias": np.zeros(2), "head": np.array("nol2")}
    assert S.feature_norm(out)[0] == 2.0
    assert S.max_logit(out)[0] == pytest.approx(np.log(3))
    assert S.msp(out)[0] == pytest.approx(0.75)  # e^0 = 1, e^log3 = 3 -> 3/4
    assert S.energy(out)[0] == pytest.approx(np.log(4))
    assert S.logit_norm(out)[0] == pytest.approx(np.log(3))


@pytest.mark.parametrize("head", ["l2", "nol2"])
def test_unnormalized_logits_are_wz_plus_b(head):
    torch.manual_seed(0)
    model = build_model("smallcnn", 5, head, 8, width=4)
    x = torch.randn(6, 3, 8, 8)
    out = outputs(model, x)
    with torch.no_grad():
        _, z = model(x)
        expected = model.fc(z).numpy()  # the classifier on the raw feature
    np.testing.assert_allclose(S.unnormalized_logits(out), expected, rtol=1e-4, atol=1e-5)
    # scale 1 reproduces the softmax of the raw logits; a huge scale leaves only the bias
    np.testing.assert_allclose(S.scaled_msp(out, 1.0), S.softmax(expected).max(1), rtol=1e-5)
    np.testing.assert_allclose(S.scaled_msp(out, 1e9), S.softmax(out["fc_bias"][None]).max(), rtol=1e-6)


def test_every_score_is_higher_for_confident_inputs():
    confident = {"feature_norm": np.array([10.0]), "logits": np.array([[10.0, 0.0]]), "fc_bias": np.zeros(2), "head": np.array("nol2")}
    unsure = {"feature_norm": np.array([1.0]), "logits": np.array([[0.1, 0.0]]), "fc_bias": np.zeros(2), "head": np.array("nol2")}
    for name, f in S.SCORES.items():
        assert f(confident)[0] > f(unsure)[0], name


def test_outputs_of_an_unknown_head_are_refused():
    old = {"feature_norm": np.array([2.0]), "logits": np.array([[0.0, 1.0]]), "fc_bias": np.zeros(2)}
    old["head"] = np.array("linear")  # the name before "nol2"
    with pytest.raises(ValueError, match=r"unknown head 'linear'.*\['l2', 'nol2'\]"):
        S.unnormalized_logits(old)
