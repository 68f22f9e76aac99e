"""Tables in the paper's layout, from the tidy per-seed metrics.

``render_table(spec)`` returns a ``Table``:

* ``tidy``: one row per printed number (the CSV): ``row``, ``column``, ``metric`` (auroc,
  fpr95 or accuracy) name the cell as ``workflow/resources/paper_numbers.csv`` does, ``value``
  is what the table prints (percent; the mean over seeds, or the min/max for Table 3), and
  ``mean``/``std``/``min``/``max``/``n_seeds`` with the run, score and data set behind it;
* ``markdown`` and ``latex``: the paper's layout, "AUROC / FPR95" in percent.

Column keys: ``<ood>/<variant>`` (``svhn/nol2``, ``cifar100/SM``) or ``accuracy/<variant>``;
``<ood>`` is the key of the spec's ``ood`` mapping (paper names: svhn, cifar100, ...); the
variants of Tables 4-8 are the heads' code names (``l2ood.layout.HEADS``: nol2, l2).
"""

from dataclasses import dataclass

import pandas as pd

from .layout import HEADS
from .scores import LABELS as SCORE_LABELS

#: the heads in the order Tables 4-8 print them: the baseline first
HEAD_ORDER = ("nol2", "l2")


@dataclass
class Table:
    tidy: pd.DataFrame
    markdown: str
    latex: str


def pct(x: float) -> str:
    """Percent with three significant figures as the paper prints them: 97.4, 14.8, 7.80."""
    v = 100 * x
    return f"{v:.1f}" if abs(v) >= 9.995 else f"{v:.2f}"


def ood_columns(spec: dict) -> list[tuple[str, str]]:
    """(column key, data set) pairs: ``ood`` is a list of data sets or a key -> data set mapping."""
    ood = spec.get("ood", [])
    return list(ood.items()) if isinstance(ood, dict) else [(d, d) for d in ood]


def load_metrics(files: dict[str, list[str]]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(f) for fs in files.values() for f in fs], ignore_index=True)


class Cells:
    """Collects the printed cells of a table, with their statistics over seeds."""

    def __init__(self, metrics: pd.DataFrame):
        self.metrics = metrics
        self.rows: list[dict] = []

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
        s = {"mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else 0.0,
             "min": values.min(), "max": values.max()}  # fmt: skip
        self.rows.append({"row": row, "column": column, "metric": metric, "value": 100 * s[stat], "stat": stat,
                          **{k: 100 * v for k, v in s.items()}, "n_seeds": len(values), **where})  # fmt: skip
        return s[stat]

    def pair(self, row, column, run, score, ood, stat="mean") -> str:
        """One "AUROC / FPR95" cell (per-seed values: one per seed)."""
        m = self.select(run, score, ood)
        if m.empty:
            return "n/a"
        a = self.add(row, column, "auroc", m.auroc, stat, run=run, score=score, ood=ood)
        f = self.add(row, column, "fpr95", m.fpr95, stat, run=run, score=score, ood=ood)
        return f"{pct(a)} / {pct(f)}"

    def accuracy(self, row, column, run) -> str:
        m = self.select(run).drop_duplicates("seed")  # accuracy repeats on every row of a seed
        v = self.add(row, column, "accuracy", m.accuracy, run=run)
        return "n/a" if v is None else pct(v)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def seeds_note(self) -> str:
        n = self.frame()["n_seeds"] if self.rows else pd.Series([0])
        seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        return f"Mean over {seeds} seeds; standard deviations, minima and maxima in the CSV."


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _tex_escape(s) -> str:
    return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _latex(groups: list[tuple[str, int]], header: list[str], rows: list[list[str]], caption: str) -> str:
    top = " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{_tex_escape(g)}}}" if n > 1 else _tex_escape(g) for g, n in groups)
    out = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}", r"\toprule"]
    out += [top + r" \\", " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def _render(spec, cells: Cells, groups, header, rows, note="") -> Table:
    """Markdown (one header row: group + variant) and LaTeX (two header rows) of the same cells."""
    flat = [header[0]]
    col = 1
    for g, n in groups[1:]:
        flat += [f"{g} {h}".strip() if n > 1 else g for h in header[col : col + n]]
        col += n
    text = f"**{spec.get('title', 'Table')}.** {spec['caption']}\n\n" + markdown_table(flat, rows)
    text += f"\n{note or 'AUROC / FPR95 (%, ID positive).'} {cells.seeds_note()}\n"
    return Table(cells.frame(), text, _latex(groups, header, rows, spec["caption"]))


def _label(spec, dataset):
    return spec.get("labels", {}).get(dataset, dataset)


def l2_vs_nol2(spec: dict) -> Table:
    """Tables 4-8 (and the demo): per model, each OoD set's "AUROC / FPR95" without (No L2) and
    with the L2 head, then both ID accuracies; one row per score when ``scores`` lists several.
    Each row names its two runs by head: ``{label, nol2: <run>, l2: <run>}``."""
    cells = Cells(load_metrics(spec["metrics"]))
    scores = spec.get("scores", ["feature_norm"])
    oods = ood_columns(spec)
    rows = []
    for r in spec["rows"]:
        for score in scores:
            label = r["label"] if len(scores) == 1 else f"{r['label']} ({SCORE_LABELS.get(score, score)})"
            line = [label]
            for key, ds in oods:
                line += [cells.pair(label, f"{key}/{h}", r[h], score, ds) for h in HEAD_ORDER]
            line += [cells.accuracy(label, f"accuracy/{h}", r[h]) for h in HEAD_ORDER]
            rows.append(line)
    groups = [("Model", 1)] + [(_label(spec, ds), 2) for _, ds in oods] + [("Accuracy", 2)]
    header = ["Model"] + [HEADS[h] for h in HEAD_ORDER] * (len(oods) + 1)
    scored = f"; {SCORE_LABELS.get(scores[0], scores[0]).lower()} as the score" if len(scores) == 1 else ""
    return _render(spec, cells, groups, header, rows, f"AUROC / FPR95 (%, ID positive){scored}.")


def norm_vs_scaled_softmax(spec: dict) -> Table:
    """Table 2: L2 models scored by feature norm and by scaled softmax (scale tuned on test data)."""
    cells = Cells(load_metrics(spec["metrics"]))
    oods = ood_columns(spec)
    rows = []
    for r in spec["rows"]:
        line = [r["label"]]
        for key, ds in oods:
            line.append(cells.pair(r["label"], f"{key}/norm", r["run"], "feature_norm", ds))
            line.append(cells.pair(r["label"], f"{key}/SM", r["run"], "scaled_msp", ds))
        rows.append(line)
    groups = [("Method", 1)] + [(_label(spec, ds), 2) for _, ds in oods]
    header = ["Method"] + ["Norm", "SM"] * len(oods)
    note = ("AUROC / FPR95 (%). SM: maximum softmax of the features scaled down by a factor tuned on the "
            f"test data (ID and OoD: {tuned_on(cells.metrics, spec)}) for the best mean AUROC, as the paper did.")  # fmt: skip
    return _render(spec, cells, groups, header, rows, note)


def tuned_on(metrics: pd.DataFrame, spec: dict) -> str:
    """The OoD sets the scaled softmax of the table's runs was tuned on, from the metrics."""
    runs = [r["run"] for r in spec["rows"]]
    sm = metrics[(metrics.score == "scaled_msp") & metrics.run.isin(runs)]
    sets = sorted({s for v in sm.get("scale_tuned_on", pd.Series(dtype=str)).dropna() for s in str(v).split()})
    return ", ".join(_label(spec, d) for d in sets) if sets else "not recorded"


def seed_range(spec: dict) -> Table:
    """Table 3: min, max and mean over seeds of one run, per score and OoD set (each statistic
    taken per metric: the Min row holds the lowest AUROC and the lowest FPR95)."""
    cells = Cells(load_metrics(spec["metrics"]))
    oods, scores = ood_columns(spec), list(spec["scores"].items())
    rows = []
    for stat, label in (("min", "Min"), ("max", "Max"), ("mean", "Mean")):
        rows.append([label] + [cells.pair(label, f"{key}/{sk}", spec["run"], score, ds, stat)
                               for key, ds in oods for sk, score in scores])  # fmt: skip
    groups = [("Method", 1)] + [(_label(spec, ds), len(scores)) for _, ds in oods]
    # the paper's headers ("Norm - Feature", ...) from the spec's ``headers``, else the score's label
    headers = spec.get("headers", {})
    header = ["Method"] + [headers.get(sk, SCORE_LABELS.get(s, s)) for _ in oods for sk, s in scores]
    return _render(spec, cells, groups, header, rows, "AUROC / FPR95 (%) over the seeds of one run.")


def table1(spec: dict) -> Table:
    """Table 1: methods from other papers (their reported AUROC, marked as reported) and our
    reproduced rows; SVHN and CIFAR-100 AUROC and ID accuracy."""
    cells = Cells(load_metrics(spec["metrics"]))
    oods = ood_columns(spec)
    reported = pd.read_csv(spec["reported"], dtype=str, keep_default_na=False)
    rows = {}  # row label -> printed line
    for _, r in reported.iterrows():
        vals = [r.get(f"{key}_auroc", "") or "N/A" for key, _ in oods] + [r.get("accuracy", "") or "N/A"]
        rows[r["row"]] = [f"{r['row']} [reported]", r.get("network", "")] + vals
    for r in spec["rows"]:
        line = [f"{r['label']} [reproduced]", r.get("network", "")]
        for key, ds in oods:
            m = cells.select(r["run"], r.get("score", "feature_norm"), ds)
            v = cells.add(r["label"], key, "auroc", m.auroc, run=r["run"], score=r.get("score", "feature_norm"), ood=ds)
            line.append("n/a" if v is None else pct(v))
        line.append(cells.accuracy(r["label"], "accuracy", r["run"]))
        rows[r["label"]] = line
    rows = [rows[label] for label in table1_order(spec, list(rows))]
    groups = [("Method", 1), ("Network", 1)] + [(_label(spec, ds), 1) for _, ds in oods] + [("Accuracy", 1)]
    header = [g for g, _ in groups]
    note = ("AUROC (%). [reported]: numbers published by each method's authors, as cited by the paper "
            "(workflow/resources/table1_reported.csv), not reproduced here.")  # fmt: skip
    return _render(spec, cells, groups, header, rows, note)


def table1_order(spec: dict, labels: list[str]) -> list[str]:
    """The row labels in the spec's ``order`` (the paper's), which must name each row once;
    without ``order``: reported rows, then reproduced ones."""
    order = spec.get("order")
    if order is None:
        return labels
    missing, extra = [x for x in labels if x not in order], [x for x in order if x not in labels]
    if missing or extra or len(set(order)) != len(order):
        raise ValueError(
            f"table1 'order' must list every row once: missing {missing}, unknown {extra}, "
            f"repeated {sorted({x for x in order if order.count(x) > 1})}; the rows are {labels}"
        )
    return list(order)


TABLE_KINDS = {
    "l2_vs_nol2": l2_vs_nol2,
    "norm_vs_scaled_softmax": norm_vs_scaled_softmax,
    "seed_range": seed_range,
    "table1": table1,
}


def render_table(spec: dict) -> Table:
    if spec["kind"] not in TABLE_KINDS:
        raise ValueError(f"unknown table kind {spec['kind']!r}; known: {sorted(TABLE_KINDS)}")
    return TABLE_KINDS[spec["kind"]](spec)
