"""Tables in the paper's layout, from the tidy per-seed metrics.

``render_table(spec)`` returns a ``Table``: ``tidy`` (one row per table row x score x OoD set
x head, with mean, std and count over seeds: the CSV), and ``markdown`` / ``latex`` laid out as
the paper prints it, "AUROC / FPR95" in percent.
"""

from dataclasses import dataclass

import pandas as pd

from .scores import LABELS as SCORE_LABELS

HEADS = (("linear", "No L2"), ("l2", "L2"))


@dataclass
class Table:
    tidy: pd.DataFrame
    markdown: str
    latex: str


def pct(x: float) -> str:
    """Percent with three significant figures as the paper prints them: 97.4, 14.8, 7.80."""
    v = 100 * x
    return f"{v:.1f}" if abs(v) >= 9.995 else f"{v:.2f}"


def load_metrics(files: dict[str, list[str]]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(f) for fs in files.values() for f in fs], ignore_index=True)


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 for one seed), min, max and seed count of each metric over seeds."""
    metrics = ["auroc", "fpr95", "fpr95_ood_positive", "aupr_in", "aupr_out", "accuracy"]
    g = df.groupby(by, sort=False)[metrics]
    out = g.mean().add_suffix("_mean")
    out = out.join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    out = out.join(g.min().add_suffix("_min")).join(g.max().add_suffix("_max"))
    out["n_seeds"] = df.groupby(by, sort=False)["seed"].nunique()
    return out.reset_index()


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _latex(groups: list[tuple[str, int]], header: list[str], rows: list[list[str]], caption: str) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    top = " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{esc(g)}}}" if n > 1 else esc(g) for g, n in groups)
    out = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}", r"\toprule"]
    out += [top + r" \\", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def l2_vs_plain(spec: dict) -> Table:
    """Tables 4-8 (and the demo): per model row, each OoD set's "AUROC / FPR95" without and with
    the L2 head, then the ID accuracy of both; one row per score when several are asked for."""
    df = load_metrics(spec["metrics"])
    scores = spec.get("scores", ["feature_norm"])
    summary = summarize(df, ["run", "score", "ood"])
    first = spec["rows"][0]
    oods = spec.get("ood") or list(dict.fromkeys(df.loc[df.run == first["l2"], "ood"]))
    tidy, rows = [], []
    for row in spec["rows"]:
        for score in scores:
            label = row["label"] if len(scores) == 1 else f"{row['label']} ({SCORE_LABELS.get(score, score)})"
            cells = [label]
            for ood in oods:
                for head, _ in HEADS:
                    sel = summary[(summary.run == row[{"linear": "plain", "l2": "l2"}[head]])
                                  & (summary.score == score) & (summary.ood == ood)]  # fmt: skip
                    if sel.empty:
                        cells.append("n/a")
                        continue
                    r = sel.iloc[0]
                    cells.append(f"{pct(r.auroc_mean)} / {pct(r.fpr95_mean)}")
                    tidy.append({"row": row["label"], "score": score, "ood": ood, "head": head, **r.drop(["score", "ood"]).to_dict()})
            for head, _ in HEADS:
                accs = summary[summary.run == row[{"linear": "plain", "l2": "l2"}[head]]]
                cells.append(pct(accs.accuracy_mean.iloc[0]) if len(accs) else "n/a")
            rows.append(cells)
    labels = spec.get("labels", {})
    groups = [("Model", 1)] + [(labels.get(o, o), 2) for o in oods] + [("Accuracy", 2)]
    header = ["Model"] + [h for _ in range(len(oods) + 1) for _, h in HEADS]
    md_header = ["Model"] + [f"{labels.get(o, o)} {h}" for o in oods for _, h in HEADS] + [f"Accuracy {h}" for _, h in HEADS]
    lo, hi = int(summary.n_seeds.min()), int(summary.n_seeds.max())
    seeds = f"{lo}" if lo == hi else f"{lo}-{hi}"
    note = f"\nAUROC / FPR95 (%, ID positive), mean over {seeds} seeds; standard deviations in the CSV.\n"
    md = f"**{spec.get('title', 'Table')}.** {spec['caption']}\n\n" + _markdown(md_header, rows) + note
    tex = _latex(groups, header, rows, spec["caption"])
    return Table(pd.DataFrame(tidy), md, tex)


TABLE_KINDS = {"l2_vs_plain": l2_vs_plain}


def render_table(spec: dict) -> Table:
    if spec["kind"] not in TABLE_KINDS:
        raise ValueError(f"unknown table kind {spec['kind']!r}; known: {sorted(TABLE_KINDS)}")
    return TABLE_KINDS[spec["kind"]](spec)
