"""Detectors against pytorch-ood (an independent implementation) on the same arrays, plus hand-worked examples.

pytorch-ood returns outlier scores (higher = more OoD) and scales some of them differently; each
comparison below states the conversion, and docs/detectors.md explains it.
"""

import numpy as np
import pytest
import pytorch_ood.detector as P  # a test requirement (envs/requirements-test.txt)
import torch
from scipy.special import expit

from l2ood import detectors as D

N, DIM, C = 400, 16, 4


@pytest.fixture(scope="module")
def data():
    """Class-structured training features with unequal variances, test features from wider noise."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)
    z = rng.normal(size=(C, DIM))[y] * 2 + rng.normal(size=(N, DIM)) * rng.uniform(0.5, 2, DIM)
    test = rng.normal(size=(60, DIM)) * 2
    weight, bias = rng.normal(size=(C, DIM)), rng.normal(size=C)
    return z, y, test, weight, bias


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def t32(a):
    return torch.tensor(np.asarray(a), dtype=torch.float32)


def close(ours, theirs, rtol):
    """Equal up to ``rtol`` of the scores' scale (pytorch-ood computes several of them in float32)."""
    theirs = np.asarray(theirs, dtype=np.float64)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


@pytest.mark.parametrize("head_normalized", [False, True])
def test_agrees_with_pytorch_ood(data, head_normalized):
    z, y, test, weight, bias = data
    head = D.Head(weight, bias, head_normalized)
    s = D.score_all(head, {"test": test}, z, y)
    s = {name: by_set["test"] for name, by_set in s.items()}
    logits, h, h_train, labels = t64(head.logits(test)), head.head_input(test), head.head_input(z), torch.tensor(y)
    w, b = t64(weight), t64(bias)

    # logit detectors: pytorch-ood's outlier score is minus ours
    close(s["max_logit"], -P.MaxLogit.score(logits).numpy(), 1e-12)
    close(s["energy"], -P.EnergyBased.score(logits).numpy(), 1e-12)
    # ours is the log-odds of the MSP: sigmoid gives the MSP back
    close(expit(s["msp"]), -P.MaxSoftmax.score(logits).numpy(), 1e-12)

    # ReAct: clip z at the 90th percentile of the training activations, then the (normalizing) head
    def torch_head(x):
        return (torch.nn.functional.normalize(x, dim=1, eps=1e-12) if head_normalized else x) @ w.T + b

    react = P.ReAct(backbone=None, head=torch_head, percentile=0.9).fit_feature_maps(t64(z), labels)
    close(s["react"], -react.predict_feature_maps(t64(test)).numpy(), 1e-12)
    # DICE, ViM and fDBD read what the linear layer multiplies, h
    dice = P.DICE(None, w, b, p=0.9).fit_features(t64(h_train), labels)
    close(s["dice"], -dice.predict_features(t64(h)).numpy(), 1e-6)  # float32 threshold inside
    vim = P.ViM(None, d=D.vim_dim(DIM), w=w, b=b).fit_features(t64(h_train), labels)
    close(s["vim"], -vim.predict_features(t64(h)).numpy(), 1e-4)  # float32 eigenvectors inside
    linear = torch.nn.Linear(DIM, C)
    linear.weight.data, linear.bias.data = t32(weight), t32(bias)
    fdbd = P.fDBD(None, linear).fit_features(t32(h_train))
    close(s["fdbd"], -fdbd.predict_features(t32(h)).numpy(), 1e-5)

    # Mahalanobis: pytorch-ood's covariance is the scatter sum (ours / N, + 1e-6 I) and its score half
    # the distance, so ours = -2 N x theirs; RMDS has no half: ours = -N x theirs
    maha = P.Mahalanobis(None).fit_features(t32(z), labels)
    close(s["mahalanobis"], -2 * N * maha.predict_features(t32(test)).numpy(), 1e-5)
    rmd = P.RMD(None).fit_features(t32(z), labels)
    close(s["rmds"], -N * rmd.predict_features(t32(test)).numpy(), 1e-4)
    knn = P.KNN(None, k=50).fit_features(t64(z), labels)
    close(s["knn"], -knn.predict_features(t64(test)).numpy(), 1e-12)


def test_gen_agrees_with_pytorch_ood_where_it_does_not_clamp():
    """pytorch-ood clamps probabilities to [1e-7, 1 - 1e-7] and averages instead of summing (G / M)."""
    logits = np.random.default_rng(1).normal(size=(50, 7))
    p = np.exp(logits - D.logsumexp(logits)[:, None])
    assert p.min() > 1e-7 and p.max() < 1 - 1e-7  # the clamp is inactive on these logits
    for m in (3, 7, 100):
        ours = D.GEN(gamma=0.1, m=m).fit(D.Head(np.eye(7), np.zeros(7), False)).score(logits)
        theirs = P.GEN.score(t64(logits), gamma=0.1, M=m).numpy()
        close(np.exp(-ours) / min(m, 7), theirs, 1e-12)


def test_logits_as_the_l2_head_and_the_raw_feature_compute_them():
    rng = np.random.default_rng(2)
    z, w, b = rng.normal(size=(5, 3)) * 10, rng.normal(size=(4, 3)), rng.normal(size=4)
    z[0] = 0  # a zero feature stays zero, as F.normalize
    model = torch.nn.functional.normalize(t64(z), dim=1, eps=1e-12) @ t64(w).T + t64(b)
    np.testing.assert_allclose(D.Head(w, b, True).logits(z), model.numpy(), rtol=1e-12)
    np.testing.assert_allclose(D.Head(w, b, False).logits(z), z @ w.T + b, rtol=1e-12)
    # the feature norm reads z whatever the head does
    for normalized in (False, True):
        norms = D.FeatureNorm().fit(D.Head(w, b, normalized)).score(z)
        np.testing.assert_allclose(norms, np.linalg.norm(z, axis=1))


# --- hand-worked examples -------------------------------------------------------------------


def identity_head(c=3, normalized=False):
    """logits = z: every logit detector can be checked on logits written by hand."""
    return D.Head(np.eye(c), np.zeros(c), normalized)


def test_logit_scores_by_hand():
    z = np.array([[np.log(3.0), 0.0, 0.0]])  # softmax (3, 1, 1) / 5
    head = identity_head()
    msp = 3 / 5
    assert D.MSP().fit(head).score(z)[0] == pytest.approx(np.log(msp / (1 - msp)))  # log(3/2)
    assert D.MaxLogit().fit(head).score(z)[0] == pytest.approx(np.log(3))
    assert D.Energy().fit(head).score(z)[0] == pytest.approx(np.log(5))
    assert D.LogitNorm().fit(head).score(z)[0] == pytest.approx(np.log(3))
    g = (0.6 * 0.4) ** 0.1 + 2 * (0.2 * 0.8) ** 0.1  # GEN's sum over the 3 classes
    assert D.GEN().fit(head).score(z)[0] == pytest.approx(-np.log(g))
    g2 = (0.6 * 0.4) ** 0.1 + (0.2 * 0.8) ** 0.1  # top 2 only
    assert D.GEN(m=2).fit(head).score(z)[0] == pytest.approx(-np.log(g2))


def test_react_dice_fdbd_by_hand():
    train = np.array([[1.0, 2.0], [3.0, 4.0]])  # activations 1..4: 90th percentile 3.7
    head = D.Head(np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2), False)
    react = D.ReAct().fit(head, train, [0, 1])
    assert react.threshold == pytest.approx(3.7)
    assert react.score([[10.0, 0.0]])[0] == pytest.approx(np.log(np.exp(3.7) + 1))

    # DICE: mean train h = (2, 3); contributions W * mean = [[2, 0], [0, 3]]; 90th percentile 2.7
    # keeps only w[1, 1]: logits (0, z_1)
    dice = D.DICE().fit(head, train, [0, 1])
    np.testing.assert_array_equal(dice.masked_weight, [[0, 0], [0, 1]])
    assert dice.score([[5.0, 1.0]])[0] == pytest.approx(np.log(1 + np.e))

    # fDBD with 3 classes, W = I: boundary distance of z to class c's boundary is (l_top - l_c) / sqrt(2)
    head3 = identity_head()
    train3 = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # mean (1/3, 1/3, 1/3)
    fdbd = D.FDBD().fit(head3, train3, [0, 1, 2])
    z = np.array([[3.0, 1.0, 0.0]])
    mean_boundary = ((3 - 1) / np.sqrt(2) + (3 - 0) / np.sqrt(2)) / 2
    assert fdbd.score(z)[0] == pytest.approx(mean_boundary / np.linalg.norm(z[0] - 1 / 3))


def test_knn_by_hand():
    train = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])  # unit: (1,0), (0,1), (-1,0)
    knn = D.KNN(k=2).fit(identity_head(2), train, [0, 1, 0])
    # (5, 0) -> (1, 0): distances 0, sqrt 2, 2; the 2nd nearest is sqrt 2
    assert knn.score([[5.0, 0.0]])[0] == pytest.approx(-np.sqrt(2))
    # a zero feature stays zero: distance 1 to every unit training feature
    assert knn.score([[0.0, 0.0]])[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="k=4 needs at least 4"):
        D.KNN(k=4).fit(identity_head(2), train, [0, 1, 0])


def test_knn_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(120, 5)), rng.normal(size=(37, 5))
    head = D.Head(rng.normal(size=(3, 5)), np.zeros(3), False)
    whole = D.KNN(k=7).fit(head, train, rng.integers(0, 3, 120)).score(test)
    # the module KNN reads it from (patching the package's re-exported name would change nothing)
    monkeypatch.setattr(D.distance, "KNN_BLOCK", 500)  # 4 test rows per block
    blocked = D.KNN(k=7).fit(head, train, rng.integers(0, 3, 120)).score(test)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)
    np.testing.assert_allclose(D.distance.knn_distances_float64(D.unit(train), D.unit(test), 7), -whole, rtol=1e-12)


@pytest.mark.parametrize("case", ["clustered", "duplicates and zeros"])
def test_knn_float32_search_gives_the_float64_distances(case):
    """Issue 23 item 4: the float32 search with top-k (then float64 on the candidates) finds the same
    k-th neighbour as the all-float64 search: scores within 1e-5 (here: equal up to rounding)."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(10, 64))
    bank = centres[rng.integers(0, 10, 3000)] + 0.3 * rng.normal(size=(3000, 64))
    near = centres[rng.integers(0, 10, 300)] + 0.3 * rng.normal(size=(300, 64))
    queries = np.concatenate([near, rng.normal(size=(100, 64))])
    if case == "duplicates and zeros":  # many exact ties at the k-th place, zero features on both sides
        bank[:200] = bank[0]
        bank[200:210] = 0
        queries[:20] = bank[0] + 1e-4 * rng.normal(size=(20, 64))
        queries[20:25] = 0
    bank, queries = D.unit(bank.astype(np.float16).astype(np.float64)), D.unit(queries)  # stored float16
    ref = D.distance.knn_distances_float64(bank, queries, 50)
    new = D.knn_distances(bank, queries, 50)
    assert np.abs(new - ref).max() < 1e-5
    # the same neighbour, its distance recomputed in float64 (up to float64 cancellation near distance 0)
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-10)
    assert (np.argsort(new, kind="stable") == np.argsort(ref, kind="stable")).mean() > 0.99


def test_mahalanobis_and_rmds_by_hand():
    # two classes at (-1, 0) and (1, 0), each with spread +-1 along both axes: covariance I
    train = np.array([[-2, 0], [0, 0], [-1, 1], [-1, -1], [0, 0], [2, 0], [1, 1], [1, -1.0]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    head = D.Head(np.eye(2), np.zeros(2), False)
    cov = np.cov((train - np.array([[-1, 0]] * 4 + [[1, 0]] * 4)).T, bias=True)
    np.testing.assert_allclose(cov, [[0.5, 0], [0, 0.5]])  # MLE, divided by N
    maha = D.Mahalanobis().fit(head, train, labels)
    # (3, 1): nearest mean (1, 0), offset (2, 1), distance (4 + 1) / 0.5
    assert maha.score([[3.0, 1.0]])[0] == pytest.approx(-10.0)
    # background: mean (0, 0), covariance diag(1.5, 0.5); d0 = 9 / 1.5 + 1 / 0.5 = 8
    rmds = D.RMDS().fit(head, train, labels)
    assert rmds.score([[3.0, 1.0]])[0] == pytest.approx(-(10.0 - 8.0))


def test_mahalanobis_singular_covariance_uses_the_pseudo_inverse():
    """A third coordinate that never varies: the distance is the 2-d one on the others (pinv drops it)."""
    rng = np.random.default_rng(4)
    flat = rng.normal(size=(30, 2)) @ np.array([[2.0, 0.5], [0.0, 1.0]])
    labels = rng.integers(0, 2, 30)
    labels[:2] = [0, 1]
    train3 = np.c_[flat, np.full(30, 5.0)]
    test2 = rng.normal(size=(10, 2)) * 3
    test3 = np.c_[test2, rng.normal(size=10)]  # the constant direction is ignored
    s3 = D.Mahalanobis().fit(D.Head(np.eye(2, 3), np.zeros(2), False), train3, labels).score(test3)
    s2 = D.Mahalanobis().fit(D.Head(np.eye(2), np.zeros(2), False), flat, labels).score(test2)
    np.testing.assert_allclose(s3, s2, rtol=1e-9)

    # and equals the distance under sklearn's pseudo-inverse precision (what OpenOOD uses)
    from sklearn.covariance import EmpiricalCovariance

    means = np.stack([train3[labels == c].mean(0) for c in (0, 1)])
    precision = EmpiricalCovariance(assume_centered=True).fit(train3 - means[labels]).precision_
    test3_in_span = np.c_[test2, np.full(10, 5.0)]
    d = np.stack([np.einsum("ij,jk,ik->i", test3_in_span - m, precision, test3_in_span - m) for m in means])
    np.testing.assert_allclose(
        D.Mahalanobis().fit(D.Head(np.eye(2, 3), np.zeros(2), False), train3, labels).score(test3_in_span),
        -d.min(0),
        rtol=1e-6,
    )


# --- saturation -----------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [40.0, 100.0, 1000.0])
def test_softmax_scores_do_not_saturate(gap):
    logits = np.array([[gap, 0, 0], [gap + 1, 0, 0], [gap + 2, 0, 0], [gap + 2, 1, 0]])
    p = np.exp(logits - logits.max(1, keepdims=True))
    assert (p / p.sum(1, keepdims=True)).max(1).tolist() == [1.0] * 4  # the plain MSP ties them all
    head = identity_head()
    msp, gen = D.MSP().fit(head).score(logits), D.GEN().fit(head).score(logits)
    for s in (msp, gen):
        assert np.isfinite(s).all()
        assert s[0] < s[1] < s[2]  # a larger gap is more confident
        assert s[3] < s[2]  # a second class closer to the top is less confident
    # the log-odds of the MSP is the gap minus log(number of runners-up) here
    np.testing.assert_allclose(msp[:3], np.array([gap, gap + 1, gap + 2]) - np.log(2), rtol=1e-12)


# --- degenerate inputs ----------------------------------------------------------------------


def degenerate_cases():
    rng = np.random.default_rng(5)
    d = 8
    duplicate = np.repeat(rng.normal(size=(6, d)), 10, axis=0)  # every feature 10 times
    y_dup = np.repeat(np.arange(6) % 3, 10)
    one_sample = rng.normal(size=(61, d))
    y_one = np.r_[0, rng.integers(1, 3, 60)]  # class 0 has a single image
    return {
        "zero features": (np.zeros((60, d)), np.arange(60) % 3),
        "duplicate features": (duplicate, y_dup),
        "a class with one sample": (one_sample, y_one),
        "fewer images than dimensions": (rng.normal(size=(5, d)), np.array([0, 1, 2, 0, 1])),
    }


@pytest.mark.parametrize("case", list(degenerate_cases()))
@pytest.mark.parametrize("head_normalized", [False, True])
def test_no_nan_on_degenerate_inputs(case, head_normalized):
    train, labels = degenerate_cases()[case]
    rng = np.random.default_rng(6)
    head = D.Head(rng.normal(size=(3, 8)), rng.normal(size=3), head_normalized)
    test = {"random": rng.normal(size=(7, 8)), "zero": np.zeros((3, 8)), "train": train[:4]}
    names = [n for n, c in D.DETECTORS.items() if not c.stored and not (n == "knn" and len(train) < 50 or n == "nnguide" and len(train) < 100)]
    for name, by_set in D.score_all(head, test, train, labels, names).items():
        for dataset, s in by_set.items():
            assert s.shape == (len(test[dataset]),)
            assert np.isfinite(s).all(), (case, name, dataset)


def test_identical_weight_rows_have_no_boundary():
    head = D.Head(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), np.zeros(3), False)
    s = D.FDBD().fit(head, np.eye(2), [0, 2]).score([[2.0, 0.0], [0.0, 0.0]])
    assert np.isfinite(s).all()
    # class 1 has no boundary with class 0 (term 0); class 2: (2 - 0) / sqrt 2; mean over 2 others
    assert s[0] == pytest.approx((2 / np.sqrt(2) / 2) / np.linalg.norm([2 - 0.5, -0.5]))


# --- inputs and registry --------------------------------------------------------------------


def test_float16_features_are_read_as_float64():
    rng = np.random.default_rng(7)
    train, test = rng.normal(size=(120, 6)).astype(np.float16), rng.normal(size=(9, 6)).astype(np.float16)  # 120 >= NNGuide k
    labels = np.arange(120) % 3
    head = D.Head(rng.normal(size=(3, 6)), np.zeros(3), False)
    s16 = D.score_all(head, {"t": test}, train, labels)
    s64 = D.score_all(head, {"t": test.astype(np.float64)}, train.astype(np.float64), labels)
    for name in s64:  # every detector on features (ODIN is not)
        assert s16[name]["t"].dtype == np.float64
        np.testing.assert_array_equal(s16[name]["t"], s64[name]["t"])


def test_bad_input_gets_a_clear_error():
    head = identity_head()
    with pytest.raises(ValueError, match="4 dimensions but the head's weight has 3"):
        D.MSP().fit(head).score(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        D.MSP().fit(head).score([[np.nan, 0, 0]])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        D.Mahalanobis().fit(head, np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=r"classes \[2\] have no training features"):
        D.Mahalanobis().fit(head, np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="training split"):
        D.KNN().fit(head)
    with pytest.raises(RuntimeError, match="before fit"):
        D.MSP().score(np.zeros((1, 3)))
    with pytest.raises(TypeError, match="head_normalized"):
        D.Head(np.eye(3), np.zeros(3), "l2")
    with pytest.raises(ValueError, match="bias must have shape"):
        D.Head(np.eye(3), np.zeros(2), False)
    with pytest.raises(KeyError, match="unknown detectors"):
        D.score_all(head, {}, names=["nonesuch"])
    with pytest.raises(ValueError, match=r"\['odin'\] need the network"):
        D.score_all(head, {}, names=["odin"])


def test_vim_dim_rule():
    assert [D.vim_dim(d) for d in (64, 512, 768, 2048)] == [32, 256, 512, 1000]


def test_registry():
    expected = {"msp", "max_logit", "energy", "gen", "react", "dice", "mahalanobis", "rmds", "knn", "vim"}
    expected |= {"entropy", "temp_scaling", "klm", "gradnorm", "openmax", "ash_p", "ash_b", "ash_s", "scale", "she", "nnguide"}
    assert expected | {"fdbd", "feature_norm", "logit_norm", "odin"} == set(D.DETECTORS)
    for name, cls in D.DETECTORS.items():
        assert cls.__doc__ and cls.__doc__.strip().splitlines()[0], name
        assert D.LABELS[name]


def test_every_detector_has_a_family():
    from l2ood.detectors import FAMILIES, by_family

    assert all(cls.family in FAMILIES for cls in D.DETECTORS.values()), {n: c.family for n, c in D.DETECTORS.items()}
    groups = by_family(list(D.DETECTORS))
    assert [f for f, _ in groups] == [f for f in FAMILIES if any(c.family == f for c in D.DETECTORS.values())]
    assert sorted(n for _, names in groups for n in names) == sorted(D.DETECTORS)
    assert dict(groups)["norm"] == ["feature_norm", "logit_norm"]  # the given order within a family

    class Loose(D.Detector):
        family = "misc"

    with pytest.raises(ValueError, match="family not in.*set the class attribute `family`"):
        by_family(["x"], {"x": Loose})
