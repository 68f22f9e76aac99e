"""Statistics over seeds: mean ± std, L2 minus No L2 with Welch's t interval, and a one-sample t test.

The unit of replication is the seed (one trained model): every function here takes one number
per seed (an AUROC, an FPR95, an accuracy) and never pools images across seeds.

``diff_ci(l2, nol2)``: the difference of means, L2 minus No L2, with Welch's t interval
(``DIFF_METHOD``): diff ± t(1 - alpha/2, df) · se, se = sqrt(s_l2²/n_l2 + s_nol2²/n_nol2) with the
sample variances (ddof=1), df by Welch-Satterthwaite. ``excludes_zero`` (the tables' and figures'
star) flags an interval entirely above or below 0, the same as Welch's test giving p < alpha.

Why Welch's t: the two heads' seeds are separate models (two independent samples, not pairs),
their spreads need not be equal (different heads, different training), and the studies have 3 to
15 seeds a head. The t quantile pays for estimating the spread from so few seeds; the percentile
bootstrap this replaced does not (it resamples the 3 observed seeds as if they were the
population, so its interval is too narrow): on simulated seeds with no true difference (both heads
N(0, 1)) it excluded 0 in 20% of cases at 3 seeds a head, 12% at 5 and 6% at 15, where Welch's
interval does in 3.8%, 3.9% and 4.6% (``benchmarks/interval_error_rates.py``, quoted in
docs/statistics.md; tests/test_stats.py holds the rate at or under 7%). An exact permutation test
would need no normality, but at 3 vs 3 seeds it has only C(6, 3) = 20 splits, so its smallest
two-sided p is 2/20 = 0.1: it could never star a 3-seed row. Welch's interval assumes each head's
per-seed numbers are roughly normal; with 3 seeds nothing can check that, one more reason to read
a star as "unlikely to be seed noise", not as proof.

No interval, so no star, where it cannot be estimated: a head with one seed (no spread to
estimate), or both heads' seeds each the same number (zero spread: a zero-width interval would
claim certainty that 2 or 3 identical seeds do not give). The cell then prints the difference
alone.

Worked example (tests/test_stats.py checks it, and against scipy.stats.ttest_ind): L2 = [1, 2, 3],
No L2 = [0, 1, 2]. The difference of means is 1; each sample variance is 1, so se = sqrt(1/3 + 1/3)
= 0.8165 and df = (2/3)² / ((1/3)²/2 + (1/3)²/2) = 4; t(0.975, 4) = 2.7764, so the interval is
1 ± 2.2669 = [-1.267, 3.267], which contains 0: no star.

``one_sample_t(mean, std, n, reference)``: whether a reference number (the paper's) is
distinguishable from the mean of n seeds; ``l2ood.paper`` uses it.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

#: the interval the tables and figures star, named in their notes and captions
DIFF_METHOD = "Welch's t interval"


def _values(values, what: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"no {what}: need at least one seed's number")
    if not np.isfinite(v).all():
        raise ValueError(f"{what} contain NaN or infinite numbers: {v.tolist()}")
    return v


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds; the std of one seed is NaN."""
    v = _values(values)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def pct(x: float) -> str:
    """A fraction as percent with three significant figures, as the paper prints them: 97.4, 14.8, 7.80."""
    v = 100 * x
    return f"{v:.1f}" if abs(v) >= 9.995 else f"{v:.2f}"


def pct_std(mean: float, std: float, mark: str = "") -> str:
    """ "97.4 ± 0.5": the mean as ``pct`` (then ``mark``), the std with the same decimals (fractions in,
    percent out). A NaN std (one seed, ``mean_std``) prints the mean alone: no spread to report, not 0."""
    if np.isnan(std):
        return pct(mean) + mark
    decimals = 1 if abs(100 * mean) >= 9.995 else 2
    return f"{pct(mean)}{mark} ± {100 * std:.{decimals}f}"


@dataclass(frozen=True)
class DiffCI:
    """L2 minus No L2: difference of means, Welch's t interval over seeds and its p-value.

    ``low``, ``high``, ``se``, ``df`` and ``p`` are NaN where no interval can be estimated (a head
    with one seed, or no spread in either head): see the module docstring."""

    diff: float
    low: float
    high: float
    n_l2: int
    n_nol2: int
    confidence: float
    se: float = float("nan")
    df: float = float("nan")
    p: float = float("nan")

    @property
    def excludes_zero(self) -> bool:
        """The whole interval is above 0 or below 0 (False when it is undefined)."""
        return bool(self.low > 0 or self.high < 0)

    def format(self, digits: int = 1, scale: float = 100.0) -> str:
        """ "+7.6 [5.1, 9.8]", with " *" when the interval excludes zero; the difference alone without an interval."""
        d = f"{scale * self.diff:+.{digits}f}"
        if np.isnan(self.low):
            return d
        ci = f"{d} [{self._bound(self.low, digits, scale)}, {self._bound(self.high, digits, scale)}]"
        return ci + " *" if self.excludes_zero else ci

    def _bound(self, x: float, digits: int, scale: float) -> str:
        """A bound as text; one that excludes 0 but would print as 0.0 gets more decimals ("0.04"), so a
        starred interval never reads [0.0, 12.6]."""
        text = f"{scale * x:.{digits}f}"
        extra = 0
        while self.excludes_zero and float(text) == 0 and extra < 3:
            extra += 1
            text = f"{scale * x:.{digits + extra}f}"
        return text


def diff_ci(l2, nol2, confidence: float = 0.95) -> DiffCI:
    """mean(l2) - mean(nol2) with Welch's t interval (unequal variances), seeds independent per head.

    With fewer than 2 seeds in a head, or no spread in either, the interval is NaN (and
    ``excludes_zero`` False): no star rather than a zero-width interval that would claim certainty.
    """
    a, b = _values(l2, "L2 values"), _values(nol2, "No-L2 values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diff = float(a.mean() - b.mean())
    nan = float("nan")
    if a.size < 2 or b.size < 2:
        return DiffCI(diff, nan, nan, a.size, b.size, confidence)
    # squared standard errors of the two means; exactly 0 for equal seeds (var() rounds 3 x 0.9 to 1e-33)
    va, vb = ((0.0 if np.ptp(v) == 0 else v.var(ddof=1)) / v.size for v in (a, b))
    if va + vb == 0:
        return DiffCI(diff, nan, nan, a.size, b.size, confidence)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))  # Welch-Satterthwaite
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * _scipy_stats.t.sf(abs(diff) / se, df))
    return DiffCI(diff, diff - half, diff + half, a.size, b.size, confidence, se, float(df), p)


@dataclass(frozen=True)
class OneSampleT:
    """A reference number against the mean of n seeds: t = (mean - reference) / (std / sqrt(n)), df = n - 1."""

    t: float
    df: float
    p: float

    def distinguishable(self, alpha: float = 0.05) -> bool:
        """p < alpha: the seeds' mean and the reference differ by more than the seeds' noise explains."""
        return bool(self.p < alpha)


def one_sample_t(mean: float, std: float, n: int, reference: float, tolerance: float = 0.0) -> OneSampleT | None:
    """Two-sided one-sample t test of "the seeds' true mean is ``reference``", from the seeds' mean,
    sample std (ddof=1) and count, as ``scipy.stats.ttest_1samp`` on the seeds would give.

    ``tolerance``: the reference is known only to ±tolerance (a printed number rounded to its last
    digit: half a unit of it); the test is then against the nearest point of that range, so a
    difference within the rounding is never called significant. None where no test is possible:
    fewer than 2 seeds, or no spread (std 0) among them."""
    if n < 2 or not np.isfinite(std) or std <= 0:
        return None
    gap = abs(mean - reference) - tolerance
    t = math.copysign(max(gap, 0.0), mean - reference) / (std / math.sqrt(n))
    return OneSampleT(t, n - 1, float(2 * _scipy_stats.t.sf(abs(t), n - 1)))
