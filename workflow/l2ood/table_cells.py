"""The printed cells of a table with their statistics over seeds (l2ood.stats): ``Cells`` selects a
run's per-seed metrics, adds each printed number with its mean, std, min, max and seed count (the
table's tidy CSV) and prints it as the paper does (``pct``; "mean ± std" with the spec's ``std``).
"""

import pandas as pd

from .stats import mean_std, pct, pct_std

#: marks an AUROC below 50%: the score ranks OoD images above ID ones (reversed, it would do better)
BELOW_CHANCE = "\u2020"
BELOW_CHANCE_NOTE = f"{BELOW_CHANCE} AUROC below 50: the score ranks OoD above ID (worse than chance, not weak)."


class Cells:
    """Collects the printed cells of a table, with their statistics over seeds."""

    def __init__(self, metrics: pd.DataFrame, std: bool = False):
        self.metrics = metrics
        self.rows: list[dict] = []
        self.std = std  # the table spec's `std: true`: cells print "mean ± std" over seeds
        self.below_chance = False  # some printed AUROC is below 50: the note explains the dagger

    def select(self, run: str, score: str | None = None, ood: str | None = None) -> pd.DataFrame:
        m = self.metrics[self.metrics.run == run]
        if score is not None:
            m = m[m.score == score]
        if ood is not None:
            m = m[m.ood == ood]
        return m

    def add(self, row, column, metric, values: pd.Series, stat="mean", **where) -> float | None:
        if values.empty:
            return None
        try:
            mean, std = mean_std(values)  # the std of one seed is NaN: no spread to report, not 0
        except ValueError as e:
            raise ValueError(f"table row {row!r}, column {column!r}, {metric} of {where}: {e}") from None
        s = {"mean": mean, "std": std, "min": values.min(), "max": values.max()}
        self.rows.append({"row": row, "column": column, "metric": metric, "value": 100 * s[stat], "stat": stat,
                          **{k: 100 * v for k, v in s.items()}, "n_seeds": len(values), **where})  # fmt: skip
        return s[stat]

    def pair(self, row, column, run, score, ood, stat="mean") -> str:
        """One "AUROC / FPR95" cell (per-seed values: one per seed)."""
        m = self.select(run, score, ood)
        if m.empty:
            return "n/a"
        auroc = self.add(row, column, "auroc", m.auroc, stat, run=run, score=score, ood=ood)
        mark = BELOW_CHANCE if auroc < 0.5 else ""
        self.below_chance |= bool(mark)
        a = self.text(auroc, mark)
        f = self.text(self.add(row, column, "fpr95", m.fpr95, stat, run=run, score=score, ood=ood))
        return f"{a} / {f}"

    def text(self, value: float, mark: str = "") -> str:
        """The printed text of the number just added: ``pct`` and ``mark``, and " ± std" if the table asks for it
        (l2ood.stats.pct_std: not for one seed, whose std is NaN)."""
        last = self.rows[-1]
        if not self.std or last["stat"] != "mean":
            return pct(value) + mark
        return pct_std(value, last["std"] / 100, mark)

    def accuracy(self, row, column, run) -> str:
        m = self.select(run).drop_duplicates("seed")  # accuracy repeats on every row of a seed
        v = self.add(row, column, "accuracy", m.accuracy, run=run)
        return "n/a" if v is None else self.text(v)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def seeds_note(self) -> str:
        n = self.frame()["n_seeds"] if self.rows else pd.Series([0])
        seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        if self.std:
            text = f"Mean ± standard deviation over {seeds} seeds; minima and maxima in the CSV."
        else:
            text = f"Mean over {seeds} seeds; standard deviations, minima and maxima in the CSV."
        return text + (f" {BELOW_CHANCE_NOTE}" if self.below_chance else "")
