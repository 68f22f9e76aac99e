import itertools

import numpy as np
import pandas as pd
import pytest

from l2ood import stats as S


def test_mean_std_by_hand():
    assert S.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample std: sqrt((1 + 0 + 1) / 2)
    m, s = S.mean_std([0.5])
    assert m == 0.5 and np.isnan(s)
    assert S.format_mean_std([0.97, 0.98, 0.99]) == "98.0 ± 1.0"
    assert S.format_mean_std([0.974]) == "97.4"  # one seed: no std to print
    assert S.format_mean_std([0.97, 0.99], std=False) == "98.0"
    assert S.format_mean_std([0.1234, 0.1236], digits=2, scale=1) == "0.12 ± 0.00"
    with pytest.raises(ValueError, match="NaN"):
        S.mean_std([1.0, np.nan])
    with pytest.raises(ValueError, match="at least one seed"):
        S.mean_std([])


def exact_bootstrap(a, b):
    """Every resample of both groups with its probability: the bootstrap distribution without sampling."""
    a_means = [np.mean(r) for r in itertools.product(a, repeat=len(a))]
    b_means = [np.mean(r) for r in itertools.product(b, repeat=len(b))]
    return np.array([x - y for x in a_means for y in b_means])


def test_hand_checkable_case():
    # the module docstring's example: differences 1, 2, 2, 3 -> interval [1, 3]
    values, counts = np.unique(exact_bootstrap([1, 3], [0, 0]), return_counts=True)
    np.testing.assert_array_equal(values, [1, 2, 3])
    np.testing.assert_array_equal(counts / counts.sum(), [0.25, 0.5, 0.25])
    ci = S.diff_ci([1.0, 3.0], [0.0, 0.0])
    assert (ci.diff, ci.low, ci.high) == (2.0, 1.0, 3.0)
    assert ci.excludes_zero
    assert ci.format(digits=0, scale=1) == "+2 [1, 3] *"
    # shifted down by one: 0 has probability 1/4 > 2.5%, so it is inside the interval
    ci = S.diff_ci([0.0, 2.0], [0.0, 0.0])
    assert (ci.diff, ci.low, ci.high) == (1.0, 0.0, 2.0)
    assert not ci.excludes_zero
    assert ci.format(digits=0, scale=1) == "+1 [0, 2]"


def test_matches_the_exact_bootstrap_distribution():
    a, b = [0.91, 0.95, 0.97, 0.90], [0.80, 0.86, 0.83]
    exact = exact_bootstrap(a, b)  # 4^4 * 3^3 equally likely resamples
    ci = S.diff_ci(a, b, resamples=200_000)
    # the distribution is discrete: compare in probability, where the Monte Carlo error of 200k
    # resamples is sqrt(.025 * .975 / 200k) = 0.00035; 0.003 is 8 of those
    assert np.quantile(exact, 0.022) <= ci.low <= np.quantile(exact, 0.028)
    assert np.quantile(exact, 0.972) <= ci.high <= np.quantile(exact, 0.978)


def test_agrees_with_scipy_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.02, 15), rng.normal(0.8, 0.05, 15)
    ours = S.diff_ci(a, b, resamples=20_000)
    theirs = bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
        n_resamples=20_000,
        method="percentile",
        paired=False,
        vectorized=True,
        rng=np.random.default_rng(1),
    ).confidence_interval
    width = ours.high - ours.low
    assert ours.low == pytest.approx(theirs.low, abs=0.03 * width)  # Monte Carlo error of two samplers
    assert ours.high == pytest.approx(theirs.high, abs=0.03 * width)


def test_identical_groups():
    v = [0.81, 0.85, 0.79, 0.88, 0.83]
    ci = S.diff_ci(v, v)
    assert ci.diff == 0.0
    assert ci.low < 0 < ci.high
    assert not ci.excludes_zero


@pytest.mark.parametrize("sign", [1, -1])
def test_separated_groups_exclude_zero(sign):
    rng = np.random.default_rng(2)
    better, worse = 0.9 + rng.normal(0, 0.01, 5), 0.7 + rng.normal(0, 0.01, 5)
    ci = S.diff_ci(better, worse) if sign > 0 else S.diff_ci(worse, better)
    assert ci.excludes_zero
    assert np.sign(ci.diff) == sign and np.sign(ci.low) == sign and np.sign(ci.high) == sign
    assert ci.low <= ci.diff <= ci.high
    assert ci.format().endswith(" *")


def test_deterministic():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.9, 0.03, 8), rng.normal(0.88, 0.03, 8)
    assert S.diff_ci(a, b) == S.diff_ci(a, b)
    assert S.diff_ci(a, b, seed=1) != S.diff_ci(a, b)  # the seed is what fixes it


def test_one_seed_has_no_interval():
    ci = S.diff_ci([0.9], [0.8, 0.82])
    assert ci.diff == pytest.approx(0.09)
    assert np.isnan(ci.low) and np.isnan(ci.high) and not ci.excludes_zero
    assert ci.format() == "+9.0"


def test_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        S.diff_ci([1, 2], [1, 2], confidence=95)
    with pytest.raises(ValueError, match="No-L2 values"):
        S.diff_ci([1, 2], [])


def test_head_differences_per_group():
    rows = []
    for ood, gap in (("svhn", 0.2), ("cifar100", 0.0)):
        for seed in range(4):
            rows.append({"ood": ood, "score": "msp", "head": "nol2", "seed": seed, "value": 0.7 + 0.01 * seed})
            rows.append({"ood": ood, "score": "msp", "head": "l2", "seed": seed, "value": 0.7 + gap + 0.01 * seed})
    rows.append({"ood": "mnist", "score": "msp", "head": "l2", "seed": 0, "value": 0.9})  # no No-L2 run: left out
    out = S.head_differences(pd.DataFrame(rows), by=["ood", "score"]).set_index("ood")
    assert list(out.index) == ["svhn", "cifar100"]
    assert out.loc["svhn", "diff"] == pytest.approx(0.2)
    assert out.loc["svhn", "excludes_zero"] and not out.loc["cifar100", "excludes_zero"]
    assert out.loc["cifar100", "diff"] == pytest.approx(0.0)
    assert (out.n_l2 == 4).all() and (out.n_nol2 == 4).all()
    with pytest.raises(KeyError, match="columns"):
        S.head_differences(pd.DataFrame(rows), by=["dataset"])
