"""The detectors of issue 23 against pytorch-ood 0.4 on the same arrays (conversions in docs/detectors.md),
GradNorm's closed form against autograd, and hand-worked examples."""

import numpy as np
import pytest
import pytorch_ood.detector as P
import torch
from pytorch_ood.detector.openmax.torch import OpenMax as TorchOpenMax
from scipy.special import expit

from l2ood import detectors as D
from test_detectors import close, t64

N, DIM, C = 400, 16, 4


@pytest.fixture(scope="module")
def data():
    """Non-negative (post-ReLU) class-structured training features and a head that classifies most of them."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    means = np.abs(rng.normal(size=(C, DIM))) * 2
    z = np.abs(means[y] + rng.normal(size=(N, DIM)) * 0.7)
    test = np.abs(rng.normal(size=(60, DIM)) * 1.5)
    weight = means - means.mean(axis=0) + rng.normal(size=(C, DIM)) * 0.1
    bias = rng.normal(size=C) * 0.1
    return z, y, test, weight, bias


def torch_head(weight, bias, head_normalized):
    w, b = t64(weight), t64(bias)

    def head(x):
        x = x.flatten(1).to(torch.float64)
        return (torch.nn.functional.normalize(x, dim=1, eps=1e-12) if head_normalized else x) @ w.T + b

    return head


@pytest.mark.parametrize("head_normalized", [False, True])
def test_agrees_with_pytorch_ood(data, head_normalized):
    z, y, test, weight, bias = data
    head = D.Head(weight, bias, head_normalized)
    s = {name: by_set["test"] for name, by_set in D.score_all(head, {"test": test}, z, y).items()}
    th = torch_head(weight, bias, head_normalized)
    logits, train_logits = t64(head.logits(test)), t64(head.logits(z))
    h, h_train = head.head_input(test), head.head_input(z)
    maps = t64(test)[:, :, None, None]  # pytorch-ood's ASH and SCALE take B x C x H x W feature maps

    # ASH and SCALE: same percentile as a fraction; the shaped feature goes through the (normalizing) head
    for name, variant in (("ash_p", "ash-p"), ("ash_b", "ash-b"), ("ash_s", "ash-s")):
        ash = P.ASH(backbone=None, head=th, variant=variant, percentile=0.9)
        close(s[name], -ash.predict_feature_maps(maps).numpy(), 1e-12)
    close(s["scale"], -P.SCALE(backbone=None, head=th, percentile=0.85).predict_feature_maps(maps).numpy(), 1e-12)
    # entropy: theirs clips p at 1e-7; a head with 20x smaller weights keeps the clip inactive
    small = D.Head(weight / 20, bias / 20, head_normalized)
    small_logits = t64(small.logits(test))
    assert torch.softmax(small_logits, 1).min() > 1e-7
    close(D.Entropy().fit(small).score(test), -P.Entropy.score(small_logits).numpy(), 1e-12)
    klm = P.KLMatching(None).fit_logits(train_logits)
    close(s["klm"], -klm.predict_logits(logits).numpy(), 1e-12)
    # SHE on h: pytorch-ood keeps the correctly classified training features, as ours
    linear = torch.nn.Linear(DIM, C).double()
    linear.weight.data, linear.bias.data = t64(weight), t64(bias)
    she = P.SHE(None, linear).fit_features(t64(h_train), torch.tensor(y))
    close(s["she"], -she.predict_features(t64(h)).numpy(), 1e-12)
    nng = P.NNGuide(None, th, k=100).fit_features(t64(z), torch.tensor(y))
    close(s["nnguide"], -nng.predict_features(t64(test)).numpy(), 1e-5)  # their bank is float32
    # GradNorm: the weight's gradient only (OpenOOD's), on h
    grad = P.GradNorm(linear, param_filter=lambda n: n == "weight")
    close(s["gradnorm"], -grad.predict(t64(h)).detach().numpy(), 1e-10)
    # temperature scaling: our T minimizes the NLL; theirs, at our T, gives the MSP back
    ts = P.TemperatureScaling(None)
    ts.t.data = torch.tensor(D.TemperatureScaling().fit(head, z, y).temperature, dtype=torch.float64)
    ts._is_fitted = True
    close(expit(s["temp_scaling"]), -ts.predict_logits(logits).detach().numpy(), 1e-12)
    # OpenMax: theirs fits every training image of a class (labels, not correctness): give it ours, the
    # correctly classified ones; it returns P(unknown), ours log((1 - P_unknown) / P_unknown)
    right = train_logits.argmax(1).numpy() == y
    assert right.mean() > 0.5
    om = TorchOpenMax(None, tailsize=20, alpha=3, euclid_weight=1.0)
    om.fit_logits(train_logits[right], torch.tensor(y[right]))
    # theirs computes distances only to the classes some image of the batch is predicted as (0 for the
    # others): a batch where every class is predicted, the test images plus training ones
    batch = np.vstack([test, z[:40]])
    assert len(np.unique(head.logits(batch).argmax(1))) == C
    ours = D.OpenMax().fit(head, z, y).score(batch)
    close(expit(ours), 1 - om.predict_logits(t64(head.logits(batch))).numpy(), 1e-6)  # Weibull fits agree to ~1e-7


def test_temperature_minimizes_the_training_nll(data):
    z, y, _, weight, bias = data
    head = D.Head(weight, bias, False)
    t = D.TemperatureScaling().fit(head, z, y).temperature
    logits = t64(head.logits(z))

    def nll(temp):
        return torch.nn.functional.cross_entropy(logits / temp, torch.tensor(y)).item()

    assert D.TemperatureScaling.T_RANGE[0] < t < D.TemperatureScaling.T_RANGE[1]
    assert nll(t) < min(nll(t * 1.01), nll(t / 1.01), nll(1.0))
    # pytorch-ood's LBFGS (at most 50 steps of lr 0.01) stops short of the optimum: never below ours
    theirs = P.TemperatureScaling(None).fit_logits(logits.float(), torch.tensor(y)).t.item()
    assert nll(theirs) >= nll(t)


@pytest.mark.parametrize("head_normalized", [False, True])
def test_gradnorm_closed_form_is_autograd(head_normalized):
    """||dL/dW||_1 of L = -(1/C) sum_c log softmax(W h + b)_c, by autograd, per image."""
    rng = np.random.default_rng(3)
    z, w, b = rng.normal(size=(6, 5)) * 3, rng.normal(size=(4, 5)), rng.normal(size=4)
    ours = D.GradNorm().fit(D.Head(w, b, head_normalized)).score(z)
    for i in range(len(z)):
        weight = t64(w).requires_grad_()
        x = t64(z[i : i + 1])
        x = torch.nn.functional.normalize(x, dim=1) if head_normalized else x
        loss = -torch.log_softmax(x @ weight.T + t64(b), dim=1).mean()
        (g,) = torch.autograd.grad(loss, weight)
        assert ours[i] == pytest.approx(g.abs().sum().item(), rel=1e-12)


# --- hand-worked examples -------------------------------------------------------------------


def identity_head(c=3, normalized=False):
    return D.Head(np.eye(c), np.zeros(c), normalized)


def test_ash_and_scale_by_hand():
    # d = 10, percentile 90: the largest activation (4) survives; sum 10
    z = np.array([[4.0, 1, 1, 1, 1, 1, 1, 0, 0, 0]])
    head = D.Head(np.ones((2, 10)) * np.array([[1.0], [0.0]]), np.zeros(2), False)  # logits (sum, 0)
    assert D.ASHP().fit(head).score(z)[0] == pytest.approx(np.log(np.exp(4) + 1))
    assert D.ASHB().fit(head).score(z)[0] == pytest.approx(np.log(np.exp(10) + 1))  # the kept one = 10 / 1
    assert D.ASHS().fit(head).score(z)[0] == pytest.approx(np.log(np.exp(4 * np.exp(10 / 4)) + 1))
    # SCALE, percentile 85: k = 10 - round(8.5) = 2 kept: s2 = 4 + 1, every activation times exp(10 / 5)
    assert D.SCALE().fit(head).score(z)[0] == pytest.approx(np.log(np.exp(10 * np.exp(2)) + 1))
    # a normalizing head cancels the per-image factor: ASH-S = ASH-P, SCALE = energy
    nhead = D.Head(head.weight, head.bias, True)
    assert D.ASHS().fit(nhead).score(z) == pytest.approx(D.ASHP().fit(nhead).score(z))
    assert D.SCALE().fit(nhead).score(z) == pytest.approx(D.Energy().fit(nhead).score(z))


def test_probability_scores_by_hand():
    z = np.array([[np.log(2.0), 0.0, 0.0]])  # softmax (1/2, 1/4, 1/4)
    head = identity_head()
    assert D.Entropy().fit(head).score(z)[0] == pytest.approx(0.5 * np.log(0.5) + 0.5 * np.log(0.25))
    # GradNorm: (|1/2 - 1/3| + 2 |1/4 - 1/3|) x ||z||_1
    assert D.GradNorm().fit(head).score(z)[0] == pytest.approx((1 / 6 + 2 / 12) * np.log(2))
    # KLM: the training images are z itself (predicted 0) and a uniform one (predicted 0 by argmax's tie rule)
    train = np.array([[np.log(2.0), 0, 0], [0.0, 0, 0]])
    d0 = (np.array([0.5, 0.25, 0.25]) + 1 / 3) / 2
    p = np.array([0.5, 0.25, 0.25])
    klm = D.KLMatching().fit(head, train, [0, 0]).score(z)[0]
    assert klm == pytest.approx(-np.sum(p * np.log(p / d0)))


def test_she_nnguide_openmax_by_hand():
    head = identity_head(2)
    train = np.array([[2.0, 0], [4.0, 0], [0, 1.0], [1.0, 0]])  # the last is class 1 but predicted 0: left out
    she = D.SHE().fit(head, train, [0, 0, 1, 1])
    np.testing.assert_allclose(she.patterns, [[3.0, 0], [0, 1.0]])
    assert she.score([[1.0, 2.0]])[0] == pytest.approx(2.0)  # predicted 1: (1, 2) . (0, 1)
    # NNGuide, k = 2: bank u_i E_i, E = logsumexp of the logits
    e = np.log(np.exp(train).sum(axis=1))
    bank = train / np.linalg.norm(train, axis=1, keepdims=True) * e[:, None]
    q = np.array([[3.0, 4.0]])
    sims = np.sort(bank @ (q[0] / 5))[-2:]
    ours = D.NNGuide(k=2).fit(head, train, [0, 0, 1, 1]).score(q)[0]
    assert ours == pytest.approx(sims.mean() * np.log(np.exp(3) + np.exp(4)))
    # OpenMax with alpha = 1 and a far-away image: CDF 1, the top logit moves entirely to the unknown class
    om = D.OpenMax(tail=20, alpha=1).fit(
        head, np.array([[2.0, 0], [2.5, 0], [3.0, 0], [0, 2], [0, 2.5], [0, 3]]), [0] * 3 + [1] * 3
    )
    far = np.array([[50.0, 1.0]])
    assert om.score(far)[0] == pytest.approx(np.log(np.exp(0) + np.exp(1.0)) - 50.0)


def test_nnguide_in_blocks_gives_the_same_scores(monkeypatch):
    """NNGuide compares test rows with the bank in blocks (CIFAR's N x 50,000 at once is GBs): same scores."""
    import l2ood.detectors.stored as stored

    rng = np.random.default_rng(4)
    z, test, head = (
        rng.normal(size=(300, 8)),
        rng.normal(size=(50, 8)),
        D.Head(rng.normal(size=(3, 8)), np.zeros(3), False),
    )
    whole = D.NNGuide(k=10).fit(head, z, np.arange(300) % 3).score(test)
    monkeypatch.setattr(stored, "KNN_BLOCK", 300 * 7)  # 7 test rows a block
    np.testing.assert_array_equal(D.NNGuide(k=10).fit(head, z, np.arange(300) % 3).score(test), whole)
