"""How often the L2 - No L2 interval stars a difference that is not there.

Simulated seeds with no true difference: both heads' per-seed numbers drawn from the same normal
(or, with ``unequal``, No L2's spread 3 times L2's); the share of cases whose 95% interval excludes 0
should be 5%. Two intervals, on the same draws:

* the percentile bootstrap the tables used before (10,000 resamples of each head's seeds, as the
  former ``l2ood.stats.diff_ci``; re-implemented here, vectorized over the draws);
* Welch's t interval, ``l2ood.stats.diff_ci`` now.

It also prints the smallest two-sided p-value an exact permutation test can reach at each seed
count (2 / C(2n, n)): at 3 vs 3 seeds it is 0.1, so that test could never star a 3-seed row.

    PYTHONPATH=workflow python benchmarks/interval_error_rates.py             # about a minute of CPU
    PYTHONPATH=workflow python benchmarks/interval_error_rates.py --smoke     # seconds: checks that it runs

docs/statistics.md quotes its output; tests/test_stats.py holds Welch's rate at or under 7% (4,000 draws).
"""

import argparse
import math

import numpy as np

from l2ood.stats import diff_ci


def bootstrap_excludes_zero(a: np.ndarray, b: np.ndarray, rng, resamples: int, chunk: int = 50) -> np.ndarray:
    """(R, n) and (R, m) draws -> (R,) bool: the 95% percentile-bootstrap interval of mean(a) - mean(b)
    excludes 0, each group's seeds resampled with replacement, independently."""
    out = []
    for i in range(0, len(a), chunk):
        x, y = a[i : i + chunk], b[i : i + chunk]
        ia = rng.integers(0, x.shape[1], size=(len(x), resamples, x.shape[1]))
        ib = rng.integers(0, y.shape[1], size=(len(y), resamples, y.shape[1]))
        rows = np.arange(len(x))[:, None, None]
        d = x[rows, ia].mean(axis=2) - y[rows, ib].mean(axis=2)
        low, high = np.quantile(d, [0.025, 0.975], axis=1)
        out.append((low > 0) | (high < 0))
    return np.concatenate(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=4000, help="simulated studies per seed count")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (the tables used 10,000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 15], help="seeds per head")
    p.add_argument("--smoke", action="store_true", help="200 draws, 1,000 resamples")
    args = p.parse_args()
    if args.smoke:
        args.draws, args.resamples = 200, 1000
    rng = np.random.default_rng(0)
    se = math.sqrt(0.05 * 0.95 / args.draws)
    print(f"{args.draws} simulated studies per row, no true difference; nominal rate 5%", end=" ")
    print(f"(a true 5% reads 5% ± {se:.1%})")
    print(f"bootstrap: percentile, {args.resamples} resamples; Welch: l2ood.stats.diff_ci")
    print()
    print("| seeds a head | spreads (L2, No L2) | bootstrap excludes 0 | Welch excludes 0 | min p, permutation |")
    print("|---|---|---|---|---|")
    for n in args.seeds:
        for sd in (1.0, 3.0):
            a = rng.normal(0, 1, size=(args.draws, n))
            b = rng.normal(0, sd, size=(args.draws, n))
            boot = bootstrap_excludes_zero(a, b, rng, args.resamples).mean()
            welch = np.mean([diff_ci(x, y).excludes_zero for x, y in zip(a, b)])
            print(f"| {n} | 1, {sd:g} | {boot:.1%} | {welch:.1%} | {2 / math.comb(2 * n, n):.2g} |")


if __name__ == "__main__":
    main()
