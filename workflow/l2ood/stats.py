"""Statistics over seeds: mean ± std, and L2 minus No L2 with a bootstrap confidence interval.

The unit of replication is the seed (one trained model): every function here takes one number
per seed (an AUROC, an FPR95, an accuracy) and never pools images across seeds.

``diff_ci(l2, nol2)``: the difference of means, L2 minus No L2, with a percentile bootstrap
interval. Each of the B resamples draws the L2 seeds with replacement and, independently, the
No-L2 seeds (the two heads' seeds are separate models, not pairs), and takes the difference of
the two resampled means; the interval is the (alpha/2, 1 - alpha/2) quantiles of those B
differences. The generator is seeded, so a table rebuilt from the same numbers prints the same
interval. ``excludes_zero`` flags an interval entirely above or below 0.

Worked example (tests/test_stats.py enumerates it exactly): L2 = [1, 3], No L2 = [0, 0]. A
resample of the L2 seeds is (1, 1), (1, 3), (3, 1) or (3, 3), mean 1, 2, 2, 3 with probability
1/4 each; the No-L2 mean is always 0. So the differences are 1 (1/4), 2 (1/2), 3 (1/4): the 95%
interval is [1, 3], the difference of means 2, and the interval excludes zero.
"""

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


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


def format_mean_std(values, digits: int = 1, scale: float = 100.0, std: bool = True) -> str:
    """ "97.4 ± 0.5" (``scale`` 100: fractions printed as percent); the mean alone for one seed or std=False."""
    m, s = mean_std(values)
    if not std or np.isnan(s):
        return f"{scale * m:.{digits}f}"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"


@dataclass(frozen=True)
class DiffCI:
    """L2 minus No L2: difference of means and its bootstrap interval over seeds."""

    diff: float
    low: float
    high: float
    n_l2: int
    n_nol2: int
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """The whole interval is above 0 or below 0 (False when it is undefined)."""
        return bool(self.low > 0 or self.high < 0)

    def format(self, digits: int = 1, scale: float = 100.0) -> str:
        """ "+7.6 [5.1, 9.8]", with " *" when the interval excludes zero; no interval without 2 seeds a side."""
        d = f"{scale * self.diff:+.{digits}f}"
        if np.isnan(self.low):
            return d
        ci = f"{d} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"
        return ci + " *" if self.excludes_zero else ci


def diff_ci(
    l2,
    nol2,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> DiffCI:
    """mean(l2) - mean(nol2) with a percentile bootstrap interval, seeds resampled within each group.

    With fewer than 2 seeds in a group the bootstrap has no spread to resample: the interval is
    NaN (and ``excludes_zero`` False) rather than a zero-width interval that would claim certainty.
    """
    a, b = _values(l2, "L2 values"), _values(nol2, "No-L2 values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return DiffCI(diff, float("nan"), float("nan"), a.size, b.size, confidence)
    rng = np.random.default_rng(seed)
    boot_a = a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
    boot_b = b[rng.integers(0, b.size, size=(resamples, b.size))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(boot_a - boot_b, [alpha / 2, 1 - alpha / 2])
    return DiffCI(diff, float(low), float(high), a.size, b.size, confidence)


def head_differences(frame, by: list[str], value: str = "value", head: str = "head", **kwargs):
    """One row per group of ``by`` with L2 and No-L2 rows: diff, low, high, excludes_zero, n_l2, n_nol2.

    ``frame`` is tidy, one row per seed; ``head`` holds the code names "l2" / "nol2". ``kwargs``
    go to ``diff_ci``. Groups with only one head are left out.
    """
    import pandas as pd

    missing = [c for c in [*by, value, head] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the frame (has {list(frame.columns)})")
    rows = []
    for key, group in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        l2, nol2 = group.loc[group[head] == "l2", value], group.loc[group[head] == "nol2", value]
        if l2.empty or nol2.empty:
            continue
        ci = diff_ci(l2, nol2, **kwargs)
        rows.append(
            {
                **dict(zip(by, key)),
                "diff": ci.diff,
                "low": ci.low,
                "high": ci.high,
                "excludes_zero": ci.excludes_zero,
                "n_l2": ci.n_l2,
                "n_nol2": ci.n_nol2,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "diff", "low", "high", "excludes_zero", "n_l2", "n_nol2"])
