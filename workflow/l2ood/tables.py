"""Tables in the paper's layout, from the tidy per-seed metrics.

``render_table(spec)`` returns a ``Table``:

* ``tidy``: one row per printed number (the CSV): ``row``, ``column``, ``metric`` (auroc,
  fpr95 or accuracy) name the cell as ``workflow/resources/paper_numbers.csv`` does, ``value``
  is what the table prints (percent; the mean over seeds, or the min/max for Table 3), and
  ``mean``/``std``/``min``/``max``/``n_seeds`` with the run, score and data set behind it;
* ``markdown``, ``latex`` and ``html`` (a page for the report): the paper's layout, "AUROC / FPR95"
  in percent; an AUROC below 50 is marked with a dagger (the score ranks OoD above ID).

Column keys: ``<ood>/<variant>`` (``svhn/nol2``, ``cifar100/SM``) or ``accuracy/<variant>``;
``<ood>`` is the key of the spec's ``ood`` mapping (paper names: svhn, cifar100, ...); the
variants of Tables 4-8 are the heads' code names (``l2ood.layout.HEADS``: nol2, l2).

Here each kind lays out its spec; the cells and their statistics are ``l2ood.table_cells``', the
markdown, LaTeX and HTML ``l2ood.table_render``'s.
"""

import html
from dataclasses import dataclass

import pandas as pd

from .layout import HEADS
from .results import load_detector_seeds, load_seeds
from .scores import LABELS as SCORE_LABELS
from .specs import ood_columns, row_score, score_columns
from .specs import scores as spec_scores
from .stats import DIFF_METHOD, diff_ci, pct
from .table_cells import BELOW_CHANCE, Cells  # noqa: F401 (BELOW_CHANCE: named with the tables)
from .table_render import html_page, html_table, latex_table, markdown_table

#: the heads in the order Tables 4-8 print them: the baseline first
HEAD_ORDER = ("nol2", "l2")


@dataclass
class Table:
    tidy: pd.DataFrame
    markdown: str
    latex: str
    html: str




def load_metrics(files: dict[str, list[str]]) -> pd.DataFrame:
    return load_seeds(files)  # each file checked: a damaged one stops the table naming it


#: the note under every L2 - No L2 column (l2ood.stats.diff_ci says why Welch's interval, and when there is none)
DIFF_NOTE = (f"L2 - No L2: difference of the means over seeds in percent points, with the 95% {DIFF_METHOD} "
             "(each head's seeds an independent sample, variances not assumed equal); * where it excludes 0 "
             "(for FPR95, below 0 is better); no interval and no star where a head has one seed or neither "
             "head's seeds vary.")  # fmt: skip


def _render(spec, cells: Cells, groups, header, rows, note="") -> Table:
    """Markdown (one header row: group + variant), LaTeX and HTML (two header rows) of the same cells."""
    flat = [header[0]]
    col = 1
    for g, n in groups[1:]:
        flat += [f"{g} {h}".strip() if n > 1 else g for h in header[col : col + n]]
        col += n
    title = spec.get("title", "Table")
    full_note = f"{note or 'AUROC / FPR95 (%, ID positive).'} {cells.seeds_note()}"
    text = f"**{title}.** {spec['caption']}\n\n" + markdown_table(flat, rows) + f"\n{full_note}\n"
    page = html_page(title, spec["caption"], [html_table(groups, header, rows)], full_note)
    return Table(cells.frame(), text, latex_table(groups, header, rows, spec["caption"]), page)


def _label(spec, dataset):
    return spec.get("labels", {}).get(dataset, dataset)


def l2_vs_nol2(spec: dict) -> Table:
    """Tables 4-8 (and the demo): per model, each OoD set's "AUROC / FPR95" without (No L2) and
    with the L2 head, then both ID accuracies; one row per score when ``scores`` lists several.
    Each row names its two runs by head: ``{label, nol2: <run>, l2: <run>}``."""
    cells = Cells(load_metrics(spec["metrics"]), std=spec.get("std", False))
    scores = spec_scores(spec)
    oods = ood_columns(spec)
    rows = []
    for r, score, label in _score_rows(spec["rows"], scores):
        line = [label]
        for key, ds in oods:
            line += [cells.pair(label, f"{key}/{h}", r[h], score, ds) for h in HEAD_ORDER]
        line += [cells.accuracy(label, f"accuracy/{h}", r[h]) for h in HEAD_ORDER]
        rows.append(line)
    groups = [("Model", 1)] + [(_label(spec, ds), 2) for _, ds in oods] + [("Accuracy", 2)]
    header = ["Model"] + [HEADS[h] for h in HEAD_ORDER] * (len(oods) + 1)
    scored = f"; {SCORE_LABELS.get(scores[0], scores[0]).lower()} as the score" if len(scores) == 1 else ""
    table = _render(spec, cells, groups, header, rows, f"AUROC / FPR95 (%, ID positive){scored}.")
    return _with_differences(spec, cells, table, scores, oods) if spec.get("diff") else table


def _score_rows(rows: list, scores: list):
    """(row, score, printed label) for each table row and score; the score is named in the label when
    a table shows several."""
    for r in rows:
        for score in scores:
            yield r, score, (r["label"] if len(scores) == 1 else f"{r['label']} ({SCORE_LABELS.get(score, score)})")


def _with_differences(spec: dict, cells: Cells, table: Table, scores: list, oods: list) -> Table:
    """``diff: true``: below the paper's layout, each row's L2 - No L2 per OoD set (AUROC / FPR95) and
    accuracy, with a 95% Welch t interval over seeds (l2ood.stats.diff_ci); tidy rows ``<key>/diff``."""
    rows = []
    for r, score, label in _score_rows(spec["rows"], scores):
        line = [label]
        for key, ds in oods:
            m = {h: cells.select(r[h], score, ds) for h in HEAD_ORDER}
            a, f = (_diff(cells, label, f"{key}/diff", metric, m["l2"][metric], m["nol2"][metric],
                          score=score, ood=ds) for metric in ("auroc", "fpr95"))  # fmt: skip
            line.append(f"{a} / {f}")
        acc = {h: cells.select(r[h]).drop_duplicates("seed").accuracy for h in HEAD_ORDER}
        line.append(_diff(cells, label, "accuracy/diff", "accuracy", acc["l2"], acc["nol2"]))
        rows.append(line)
    header = ["Model"] + [_label(spec, ds) for _, ds in oods] + ["Accuracy"]
    sub = ["Model"] + ["AUROC / FPR95"] * len(oods) + [""]
    note = DIFF_NOTE
    markdown = table.markdown + "\n*L2 - No L2 [95% CI]* (AUROC / FPR95, %)\n\n" + markdown_table(header, rows)
    groups = [(h, 1) for h in header]
    latex = table.latex + latex_table(groups, sub, rows, f"{spec['caption']} {note}")
    extra = f"<p><i>L2 - No L2 [95% CI]</i> (AUROC / FPR95, %)</p>\n{html_table(groups, sub, rows)}"
    page = table.html.removesuffix("</div>\n") + extra + f"<p>{html.escape(note)}</p>\n</div>\n"
    return Table(cells.frame(), markdown + f"\n{note}\n", latex, page)


def norm_vs_scaled_softmax(spec: dict) -> Table:
    """Table 2: L2 models scored by feature norm and by scaled softmax (scale tuned on test data)."""
    cells = Cells(load_metrics(spec["metrics"]), std=spec.get("std", False))
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
            f"test data (ID and OoD: {tuned_on(cells.metrics, spec)}) for the best mean AUROC, as the paper did, "
            f"each seed on its own; {scales_note(cells.metrics, spec)}")  # fmt: skip
    return _render(spec, cells, groups, header, rows, note)


def scales_note(metrics: pd.DataFrame, spec: dict) -> str:
    """The scales the table's seeds chose and the largest share of a seed's ID images whose softmax at
    that scale is exactly 1.0 in float64 (``id_softmax_at_1``), which only the log-odds score ranks."""
    runs = [r["run"] for r in spec["rows"]]
    sm = metrics[(metrics.score == "scaled_msp") & metrics.run.isin(runs)]
    if sm.empty:
        return "no scale recorded."
    text = f"scales chosen {sm.scale.min():.3g} to {sm.scale.max():.3g}"
    if "id_softmax_at_1" in sm and sm.id_softmax_at_1.notna().any():
        text += (f"; scored as the log-odds of the probability, which also ranks the ID images whose softmax is "
                 f"exactly 1.0 in float64 (at most {pct(sm.id_softmax_at_1.max())}% of a seed's)")  # fmt: skip
    return text + "."


def tuned_on(metrics: pd.DataFrame, spec: dict) -> str:
    """The OoD sets the scaled softmax of the table's runs was tuned on, from the metrics."""
    runs = [r["run"] for r in spec["rows"]]
    sm = metrics[(metrics.score == "scaled_msp") & metrics.run.isin(runs)]
    sets = sorted({s for v in sm.get("scale_tuned_on", pd.Series(dtype=str)).dropna() for s in str(v).split()})
    return ", ".join(_label(spec, d) for d in sets) if sets else "not recorded"


def seed_range(spec: dict) -> Table:
    """Table 3: min, max and mean over seeds of one run, per score and OoD set (each statistic
    taken per metric: the Min row holds the lowest AUROC and the lowest FPR95)."""
    cells = Cells(load_metrics(spec["metrics"]), std=spec.get("std", False))
    oods, scores = ood_columns(spec), score_columns(spec)
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
    cells = Cells(load_metrics(spec["metrics"]), std=spec.get("std", False))
    oods = ood_columns(spec)
    reported = pd.read_csv(spec["reported"], dtype=str, keep_default_na=False)
    rows = {}  # row label -> printed line
    for _, r in reported.iterrows():
        vals = [r.get(f"{key}_auroc", "") or "N/A" for key, _ in oods] + [r.get("accuracy", "") or "N/A"]
        rows[r["row"]] = [f"{r['row']} [reported]", r.get("network", "")] + vals
    for r in spec["rows"]:
        line = [f"{r['label']} [reproduced]", r.get("network", "")]
        for key, ds in oods:
            m = cells.select(r["run"], row_score(r), ds)
            v = cells.add(r["label"], key, "auroc", m.auroc, run=r["run"], score=row_score(r), ood=ds)
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


# --- post-hoc detectors (l2ood.evaluate_detectors): detector x head x OoD set, with L2 - No L2 ---

#: the metrics of a detector table: (metric column, printed name); the OpenOOD view uses its FPR convention
DETECTOR_METRICS = {"auroc": "AUROC", "fpr95": "FPR95 (ID positive)"}
OPENOOD_METRICS = {"auroc": "AUROC", "fpr95_ood_positive": "FPR@95 (OoD positive, as OpenOOD)"}


def load_detector_metrics(spec: dict) -> pd.DataFrame:
    """Every seed's detector metrics of the spec's runs, one logits variant (``logits``, default
    ``raw``: W z + b, l2ood.evaluate_detectors), with ``detector`` as ``score`` for ``Cells``."""
    return load_detector_seeds(spec["metrics"], spec.get("logits", "raw")).rename(columns={"detector": "score"})


def _detectors(spec: dict, m: pd.DataFrame) -> list[str]:
    """The table's detectors, grouped by family (l2ood.detectors.by_family), each family in the given order."""
    from .detectors import DETECTORS, by_family

    names = spec.get("detectors") or [d for d in DETECTORS if d in set(m.score)]
    unknown = [d for d in names if d not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; known: {sorted(DETECTORS)}")
    return [name for _, members in by_family(names) for name in members]


def _family(name: str) -> str:
    """The detector's family (``Detector.family``), the column after its name."""
    from .detectors import DETECTORS

    return DETECTORS[name].family


def _detector_label(name: str, spec: dict) -> str:
    from .evaluate_detectors import detector_label

    return detector_label(name, spec.get("logits", "raw"))


def _logits_note(spec: dict) -> str:
    """What the detectors' logits were (the row labels say it as l2ood.detectors.label does)."""
    if spec.get("logits", "raw") == "raw":
        return ("(Wz+b): logits W z + b from the raw features, for the L2 models too (normalization off at test "
                "time), not the L2 head's own W z/||z|| + b (which the demo table's MSP reads).")  # fmt: skip
    return "Logits W z/||z|| + b, as the L2 models compute them (No L2 models: n/a)."


def _diff(cells: Cells, row: str, column: str, metric: str, l2: pd.Series, nol2: pd.Series, **where) -> str:
    """The "L2 - No L2 [95% CI]" cell (percent points; " *": Welch's t interval excludes 0), recorded as a tidy row."""
    if l2.empty or nol2.empty:
        return "n/a"
    ci = diff_ci(l2.to_numpy(), nol2.to_numpy())
    cells.rows.append({"row": row, "column": column, "metric": metric, "value": 100 * ci.diff, "stat": "diff",
                       "mean": 100 * ci.diff, "low": 100 * ci.low, "high": 100 * ci.high,
                       "excludes_zero": ci.excludes_zero, "n_seeds": min(ci.n_l2, ci.n_nol2), **where})  # fmt: skip
    return ci.format(digits=1)


def _sections(spec, cells: Cells, sections: list[tuple[str, list, list, list]], note: str) -> Table:
    """One markdown and one LaTeX table per metric: ``(metric name, groups, header, rows)``."""
    text = f"**{spec.get('title', 'Table')}.** {spec['caption']}\n"
    tex, pages = "", []
    for name, groups, header, rows in sections:
        flat, col = [header[0]], 1
        for g, n in groups[1:]:
            flat += [f"{g} {h}".strip() for h in header[col : col + n]]
            col += n
        text += f"\n*{name}* (%)\n\n" + markdown_table(flat, rows)
        tex += latex_table(groups, header, rows, f"{spec['caption']} {name} (%). {note}")  # note: the interval's method
        pages.append(f"<p><i>{html.escape(name)}</i> (%)</p>\n" + html_table(groups, header, rows))
    text += f"\n{note} {cells.seeds_note()}\n"
    tidy = cells.frame().assign(logits=spec.get("logits", "raw"))  # the detectors' logits variant, as labelled
    page = html_page(spec.get("title", "Table"), spec["caption"], pages, f"{note} {cells.seeds_note()}")
    return Table(tidy, text, tex, page)


def _row_label(spec: dict, pair: dict, name: str) -> str:
    label = _detector_label(name, spec)
    return label if len(spec["rows"]) == 1 else f"{pair['label']}: {label}"


def detectors(spec: dict) -> Table:
    """Every post-hoc detector on the same checkpoints: per detector (rows) and OoD set, No L2 and L2
    (mean over seeds, ± std with ``std: true``) and L2 - No L2 with its 95% Welch t interval over
    seeds (l2ood.stats.diff_ci), for AUROC and FPR95. Rows name runs as Tables 4-8 (``{label, nol2, l2}``)."""
    cells = Cells(load_detector_metrics(spec), std=spec.get("std", False))
    oods, names = ood_columns(spec), _detectors(spec, cells.metrics)
    sections = []
    for metric, title in DETECTOR_METRICS.items():
        rows = []
        for pair in spec["rows"]:
            for name in names:
                label = _row_label(spec, pair, name)
                line = [label, _family(name)]
                for key, ds in oods:
                    per_head = {h: cells.select(pair[h], name, ds) for h in HEAD_ORDER}
                    for h in HEAD_ORDER:
                        v = cells.add(label, f"{key}/{h}", metric, per_head[h][metric], run=pair[h], score=name, ood=ds)
                        line.append("n/a" if v is None else cells.text(v))
                    line.append(_diff(cells, label, f"{key}/diff", metric, per_head["l2"][metric],
                                      per_head["nol2"][metric], score=name, ood=ds))  # fmt: skip
                rows.append(line)
        groups = [("Detector", 1), ("Family", 1)] + [(_label(spec, ds), 3) for _, ds in oods]
        header = ["Detector", ""] + [HEADS["nol2"], HEADS["l2"], "L2 - No L2 [95% CI]"] * len(oods)
        sections.append((title, groups, header, rows))
    note = f"{_logits_note(spec)} {DIFF_NOTE}"
    return _sections(spec, cells, sections, note)


def openood(spec: dict) -> Table:
    """The detectors in OpenOOD v1.5's layout: near- and far-OoD sets (``near``/``far``: key -> data
    set), their averages (per seed, then over seeds, as OpenOOD averages its checkpoints), AUROC and
    FPR@95 with OoD as the positive class; L2 - No L2 with its Welch t interval for each average."""
    cells = Cells(load_detector_metrics(spec), std=spec.get("std", False))
    names = _detectors(spec, cells.metrics)
    groups_of = {"near": ood_columns(spec, "near"), "far": ood_columns(spec, "far")}
    sections = []
    for metric, title in OPENOOD_METRICS.items():
        rows = []
        for pair in spec["rows"]:
            for name in names:
                base = _row_label(spec, pair, name)
                avg = {}
                lines = {h: [f"{base} ({HEADS[h]})", _family(name)] for h in HEAD_ORDER}
                for h in HEAD_ORDER:
                    label = lines[h][0]
                    for group, sets in groups_of.items():
                        per_seed = []
                        for key, ds in sets:
                            m = cells.select(pair[h], name, ds)
                            v = cells.add(label, f"{key}/{h}", metric, m[metric], run=pair[h], score=name, ood=ds)
                            lines[h].append("n/a" if v is None else cells.text(v))
                            per_seed.append(m.set_index("seed")[metric])
                        # a seed's average over the group's sets; seeds missing a set are left out
                        avg[h, group] = pd.concat(per_seed, axis=1).dropna().mean(axis=1)
                        v = cells.add(label, f"{group}/{h}", metric, avg[h, group], run=pair[h], score=name, ood=group)
                        lines[h].append("n/a" if v is None else cells.text(v))
                diffs = [_diff(cells, base, f"{g}/diff", metric, avg["l2", g], avg["nol2", g], score=name, ood=g)
                         for g in groups_of]  # fmt: skip
                rows += [lines["nol2"] + ["", ""], lines["l2"] + diffs]
        groups = [("Detector", 1), ("Family", 1)]
        header = ["Detector", ""]
        for group, sets in groups_of.items():
            groups += [(_label(spec, ds), 1) for _, ds in sets] + [(f"{group.capitalize()} avg", 1)]
            header += [""] * (len(sets) + 1)
        groups += [("L2 - No L2 [95% CI]", 2)]
        header += ["Near avg", "Far avg"]
        sections.append((title, groups, header, rows))
    note = ("Near/Far avg: each seed's mean over the group's sets, then over seeds. FPR@95: the share of ID "
            "images flagged OoD when 95% of OoD images are (OpenOOD's convention). "
            f"{DIFF_NOTE} {_logits_note(spec)}")  # fmt: skip
    return _sections(spec, cells, sections, note)


TABLE_KINDS = {
    "l2_vs_nol2": l2_vs_nol2,
    "norm_vs_scaled_softmax": norm_vs_scaled_softmax,
    "seed_range": seed_range,
    "table1": table1,
    "detectors": detectors,
    "openood": openood,
}


def render_table(spec: dict) -> Table:
    if spec["kind"] not in TABLE_KINDS:
        raise ValueError(f"unknown table kind {spec['kind']!r}; known: {sorted(TABLE_KINDS)}")
    return TABLE_KINDS[spec["kind"]](spec)
