"""The numbers the paper prints, and how far the reproduction lands from them.

Long format, one row per printed number (the scheme of ``workflow/resources/README.md``):

* ``table``: table1 .. table8; ``row``: the row label as printed ("ResNet18 (60)", "Min");
* ``column``: ``<set>/<variant>`` ("svhn/nol2", "cifar100/SM", "accuracy/l2"); Table 1 has no
  variants, its keys are "svhn", "cifar100", "accuracy";
* ``metric``: auroc, fpr95 or accuracy; an "AUROC / FPR95" cell gives two rows;
* ``printed``: the text as printed ("7.80" keeps its zero), ``value``: that text as a float.

Example: the cell "98.6 / 7.80" of Table 4, row "ResNet50 (100)", under SVHN / L2 is
``(table4, ResNet50 (100), svhn/l2, auroc, "98.6", 98.6)`` and ``(..., fpr95, "7.80", 7.8)``.
"""

import re
import warnings

import numpy as np
import pandas as pd

from .stats import one_sample_t
from .table_render import markdown_table

KEYS = ["table", "row", "column", "metric"]

# Header text in the paper -> column key part. A header not listed here is an error, so a new
# or misspelt header cannot slip through as a silently wrong key. The heads' keys are their code
# names (l2ood.layout.HEADS), as the tables write them.
SETS = {"SVHN": "svhn", "CIFAR100": "cifar100", "CIFAR10": "cifar10", "TinyImageNet": "tinyimagenet",
        "Accuracy": "accuracy"}  # fmt: skip
VARIANTS = {"No L2": "nol2", "NoL2": "nol2", "L2": "l2", "Norm": "norm", "SM": "SM",
            "Norm - Feature": "norm_feature", "Norm - Logits": "norm_logits", "MaxLogit": "maxlogit"}  # fmt: skip
TEXT_COLUMNS = {"Method", "Model", "Network"}  # the row label, and Table 1's network: no numbers
CAPTION = re.compile(r"^Table (\d+):")
NUMBER = re.compile(r"^\d+\.\d+$")  # every number the paper prints has a decimal point


def load_paper_numbers(path) -> pd.DataFrame:
    """The transcribed CSV (columns table,row,column,metric,value,note; values as printed text)
    as the long format above, plus ``note``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {*KEYS, "value", "note"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected {KEYS + ['value', 'note']}")
    bad = df[~df.value.str.match(NUMBER)]
    if len(bad):
        raise ValueError(f"{path}: values that are not printed numbers (e.g. 97.4):\n{bad.head().to_string()}")
    dup = df[df.duplicated(KEYS, keep=False)]
    if len(dup):
        raise ValueError(f"{path}: the same (table,row,column,metric) twice:\n{dup.head().to_string()}")
    df = df.rename(columns={"value": "printed"})
    df["value"] = df.printed.astype(float)
    return df[[*KEYS, "printed", "value", "note"]]


def parse_paper_tables(markdown_text: str) -> pd.DataFrame:
    """Every number of every table in the paper's markdown, in the long format above.

    A table is the block of tab-separated lines just before its "Table N:" caption: a header
    line of set names (a name spans the empty cells after it), an optional line of variants
    starting with an empty cell, then one line per row. "N/A" cells are skipped; a lone number
    is an accuracy under "Accuracy" and an AUROC elsewhere (Table 1)."""
    lines = markdown_text.splitlines()
    records = []
    for i, line in enumerate(lines):
        if m := CAPTION.match(line):
            records += _parse_table(f"table{m[1]}", _block_before(lines, i))
    return pd.DataFrame(records, columns=[*KEYS, "printed", "value"])


def _block_before(lines: list[str], caption: int) -> list[list[str]]:
    j = caption - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    block = []
    while j >= 0 and "\t" in lines[j]:
        block.insert(0, lines[j].split("\t"))
        j -= 1
    if len(block) < 2:
        raise ValueError(f"no tab-separated table right before line {caption + 1}: {lines[caption][:40]!r}")
    return block


def _column_keys(table: str, header: list[str], variants: list[str] | None) -> list[str | None]:
    """One key per column (None for text columns), e.g. ["svhn/nol2", "svhn/l2", ...]."""
    keys, current = [], ""
    for i, name in enumerate(header):
        current = name or current  # a set name spans the empty header cells after it
        variant = variants[i] if variants else ""
        if current in TEXT_COLUMNS:
            keys.append(None)
        elif current not in SETS or (variant and variant not in VARIANTS):
            unknown = current if current not in SETS else variant
            raise ValueError(
                f"{table}: unknown column header {unknown!r}; add it to SETS or VARIANTS in l2ood/paper.py"
            )
        else:
            keys.append(SETS[current] + (f"/{VARIANTS[variant]}" if variant else ""))
    return keys


def _pad(cells: list[str], width: int) -> list[str]:
    return cells + [""] * (width - len(cells))  # header lines omit trailing empty cells


def _parse_table(table: str, block: list[list[str]]) -> list[dict]:
    header, rest = block[0], block[1:]
    variants = rest.pop(0) if rest[0][0] == "" else None
    width = max(len(r) for r in block)
    keys = _column_keys(table, _pad(header, width), _pad(variants, width) if variants else None)
    records = []
    for cells in rest:
        for key, text in zip(keys, _pad(cells, width)):
            if key is not None and text != "N/A":
                records += _cell(table, cells[0], key, text)
    return records


def _cell(table: str, row: str, key: str, text: str) -> list[dict]:
    """ "97.4 / 14.8" -> an auroc and an fpr95 record; "92.6" -> accuracy or (Table 1) auroc."""
    parts = text.split(" / ")
    if len(parts) > 2 or not all(NUMBER.match(p) for p in parts):
        raise ValueError(f"{table}, row {row!r}, column {key!r}: cannot read {text!r} as a number or 'AUROC / FPR95'")
    if len(parts) == 2:
        metrics = ["auroc", "fpr95"]
    else:
        metrics = ["accuracy" if key.startswith("accuracy") else "auroc"]
    return [
        {"table": table, "row": row, "column": key, "metric": m, "printed": p, "value": float(p)}
        for m, p in zip(metrics, parts)
    ]


#: sd-unit thresholds of the verdicts: within 1 sd, within 2 sd, beyond
SD_LEVELS = (1.0, 2.0)
#: the t test's level: "distinguishable" where p < ALPHA (95% confidence)
ALPHA = 0.05
#: ``t_test`` values: the paper's number against the reproduced mean (``mean_test``)
DISTINGUISHABLE, NOT_DISTINGUISHABLE = "distinguishable", "not distinguishable"
#: rows of a table that prints a seed spread: the Mean row is judged against the Min..Max range
SPREAD_ROWS = ("Min", "Max", "Mean")


def compare(paper_df: pd.DataFrame, reproduced_df: pd.DataFrame) -> pd.DataFrame:
    """Each paper number beside the reproduced one, with two verdicts: columns KEYS, printed, paper,
    reproduced, difference (reproduced - paper, percent points), std and n_seeds (of the reproduced
    seeds), sd_units (difference / std), paper_min and paper_max (the paper's seed range, for the
    Mean row of a table that prints Min and Max rows: Table 3), verdict, t, p, t_test, note. One row
    per paper number, in the paper's order; reproduced is NaN where nothing was reproduced (Table 1's
    other methods).

    Two questions, two verdicts. ``verdict`` (``verdict``'s): is the paper's number like one of our
    seeds (the spread of the seeds: with 15 seeds "within 2 sd" allows 2 sqrt(15) = 7.7 standard
    errors of the mean)? ``t_test`` (``mean_test``'s): is the paper's number statistically
    distinguishable from our mean (one-sample t with the seeds, 95%)?

    ``reproduced_df`` has the KEYS and ``value`` (percent), optionally ``std`` (percent, ddof=1),
    ``n_seeds`` and ``stat`` (mean, min, max: only a mean is t-tested; without ``stat`` every value
    is a mean). A reproduced number that matches no paper number (a misspelt row label, say) gives
    a warning naming it."""
    dup = reproduced_df[reproduced_df.duplicated(KEYS, keep=False)]
    if len(dup):
        raise ValueError(f"reproduced numbers: the same (table,row,column,metric) twice:\n{dup.head().to_string()}")
    rep = reproduced_df.reindex(columns=[*KEYS, "value", "std", "n_seeds", "stat"])
    rep = rep.rename(columns={"value": "reproduced"})
    rep["stat"] = rep["stat"].fillna("mean")
    out = paper_df.rename(columns={"value": "paper"}).merge(rep, on=KEYS, how="left")
    out["difference"] = out.reproduced - out.paper
    extra = rep.merge(paper_df[KEYS], on=KEYS, how="left", indicator=True).query("_merge == 'left_only'")
    if len(extra):
        warnings.warn(f"{len(extra)} reproduced numbers match no paper number, e.g. "
                      f"{extra[KEYS].head(3).to_dict('records')}", stacklevel=2)  # fmt: skip
    if "note" not in out:
        out["note"] = ""
    out = out.merge(_paper_spread(paper_df), on=KEYS, how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        units = out.difference / out["std"]
    out["sd_units"] = np.where((out["std"] == 0) & (out.difference == 0), 0.0, units)
    out["verdict"] = [verdict(r) for r in out.itertuples()]
    tests = [mean_test(r) for r in out.itertuples()]
    out["t"] = [np.nan if t is None else t.t for t, _ in tests]
    out["p"] = [np.nan if t is None else t.p for t, _ in tests]
    out["t_test"] = [text for _, text in tests]
    cols = ["printed", "paper", "reproduced", "difference", "std", "n_seeds", "sd_units", "paper_min", "paper_max"]
    return out[[*KEYS, *cols, "verdict", "t", "p", "t_test", "note"]]


def mean_test(r):
    """Whether the paper's number is distinguishable from the reproduced mean (``r`` a row of
    ``compare``'s frame): (``l2ood.stats.OneSampleT`` or None, text).

    A two-sided one-sample t test of the reproduced seeds against the paper's number (``p`` as
    ``scipy.stats.ttest_1samp`` on the seeds), allowing for the paper's rounding: a printed "97.4"
    stands for [97.35, 97.45], and the test is against the nearest point of that range. The
    paper's own seed noise is unknown (it prints no std), so this asks whether the paper's number
    is within our mean's sampling error, not whether the two studies differ. Text: "distinguishable"
    (p < ALPHA), "not distinguishable", or "not tested: ..." (not reproduced, a min or max, one
    seed, no spread)."""
    if pd.isna(r.reproduced):
        return None, "not reproduced"
    if r.stat != "mean":
        return None, f"not tested: a {r.stat}, not a mean"
    n = 1 if pd.isna(r.n_seeds) else int(r.n_seeds)
    if n < 2 or pd.isna(r.std):
        return None, "not tested: one seed"
    test = one_sample_t(r.reproduced, r.std, n, r.paper, tolerance=0.5 * 10.0 ** -_decimals(r.printed))
    if test is None:
        return None, "not tested: no spread over seeds"
    return test, DISTINGUISHABLE if test.distinguishable(ALPHA) else NOT_DISTINGUISHABLE


def _paper_spread(paper_df: pd.DataFrame) -> pd.DataFrame:
    """KEYS of each Mean row of a table with Min and Max rows, with that column's paper_min, paper_max."""
    lo, hi, mean = SPREAD_ROWS
    cols = ["table", "column", "metric"]
    spread = paper_df[paper_df.row == lo][[*cols, "value"]].rename(columns={"value": "paper_min"})
    spread = spread.merge(
        paper_df[paper_df.row == hi][[*cols, "value"]].rename(columns={"value": "paper_max"}), on=cols
    )
    return spread.assign(row=mean)[[*KEYS, "paper_min", "paper_max"]]


def verdict(r) -> str:
    """One compared number's verdict (``r`` a row of ``compare``'s frame):

    * "not reproduced" without a reproduced value;
    * where the paper prints a seed range: "inside the paper's seed range" if
      paper_min <= reproduced <= paper_max, else "outside the paper's seed range";
    * otherwise, by |difference| / std of the reproduced seeds: "within 1 sd", "within 2 sd",
      "beyond 2 sd"; "one seed, no sd" where fewer than two seeds give no std.
    """
    if pd.isna(r.reproduced):
        return "not reproduced"
    if not pd.isna(r.paper_min):
        inside = r.paper_min <= r.reproduced <= r.paper_max
        return "inside the paper's seed range" if inside else "outside the paper's seed range"
    if pd.isna(r.sd_units) or (not pd.isna(r.n_seeds) and r.n_seeds < 2):
        return "one seed, no sd"
    for level in SD_LEVELS:
        if abs(r.sd_units) <= level:
            return f"within {level:g} sd"
    return f"beyond {SD_LEVELS[-1]:g} sd"


def summaries(df: pd.DataFrame) -> dict[str, str]:
    """One line per table with both verdicts, e.g. "Table 4: 38 of 42 numbers within 2 sd (30 within 1
    sd); t test: the paper's number distinguishable from the reproduced mean for 12 of 42 means (p < 0.05)"."""
    out = {}
    for table, t in df.groupby("table", sort=False):
        v = t.verdict
        parts = []
        ranged = v.str.contains("seed range")
        if ranged.any():
            inside = (v == "inside the paper's seed range").sum()
            parts.append(f"{inside} of {ranged.sum()} means inside the paper's seed range")
        judged = v.str.startswith(("within", "beyond"))
        if judged.any():
            within = v.isin([f"within {lv:g} sd" for lv in SD_LEVELS])
            first = (v == f"within {SD_LEVELS[0]:g} sd").sum()
            other = " other" if ranged.any() else ""
            parts.append(f"{within.sum()} of {judged.sum()}{other} numbers within {SD_LEVELS[-1]:g} sd "
                         f"({first} within {SD_LEVELS[0]:g} sd)")  # fmt: skip
        if (v == "one seed, no sd").any():
            parts.append(f"{(v == 'one seed, no sd').sum()} from one seed, not judged")
        if (v == "not reproduced").any():
            parts.append(f"{(v == 'not reproduced').sum()} of {len(t)} not reproduced")
        tested = t.t_test.isin([DISTINGUISHABLE, NOT_DISTINGUISHABLE])
        if tested.any():
            parts.append(f"t test: the paper's number distinguishable from the reproduced mean for "
                         f"{(t.t_test == DISTINGUISHABLE).sum()} of {tested.sum()} means (p < {ALPHA:g})")  # fmt: skip
        out[table] = f"{table.replace('table', 'Table ')}: " + "; ".join(parts)
    return out


def _decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def compare_markdown(df: pd.DataFrame) -> str:
    """``compare``'s frame as markdown: the per-table summaries, then one section per table; the
    reproduced value and the difference rounded to the printed number's decimals."""
    lines = summaries(df)
    intro = ("Percent; difference = reproduced - paper; sd = the standard deviation of the reproduced seeds. "
             "Two verdicts. Spread verdict (is the paper's number like one of our seeds?): where the paper "
             "prints a seed range (Table 3's Min and Max), whether the reproduced mean lies inside it; "
             "elsewhere |difference| in units of sd (with 15 seeds, 2 sd is 7.7 standard errors of the mean). "
             "t test (is the paper's number distinguishable from our mean?): two-sided one-sample t test of "
             "the reproduced seeds against the paper's number, allowing for its rounding (a printed 97.4 is "
             f"97.35-97.45); distinguishable where p < {ALPHA:g}; the paper's own seed noise is unknown, so a "
             "distinguishable number may still be one the paper's seeds could give. n/a = not reproduced "
             "(Table 1's other methods).")  # fmt: skip
    out = ["# Paper vs reproduced", "", intro, "", "## Summary", ""]
    out += [f"- {line}" for line in lines.values()] + [""]
    for table, t in df.groupby("table", sort=False):
        done = t[t.reproduced.notna()]
        mad = f"; mean |difference| {done.difference.abs().mean():.2f}" if len(done) else ""
        out += [
            f"## {table.replace('table', 'Table ')}",
            "",
            f"{lines[table]}. {len(done)} of {len(t)} numbers reproduced{mad}.",
            "",
        ]
        rows = []
        for r in t.itertuples():
            d = _decimals(r.printed)
            rep = "n/a" if pd.isna(r.reproduced) else f"{r.reproduced:.{d}f}"
            diff = "" if pd.isna(r.difference) else f"{r.difference:+.{d}f}"
            sd = "" if pd.isna(r.std) else f"{r.std:.{d}f}"
            units = "" if pd.isna(r.sd_units) else f"{r.sd_units:+.1f}"
            t_text, p_text = ("", "") if pd.isna(r.t) else (f"{r.t:+.1f}", f"{r.p:.2g}")
            cells = [r.row, r.column, r.metric, r.printed, rep, diff, sd, units, r.verdict, t_text, p_text, r.t_test,
                     str(r.note or "")]  # fmt: skip
            rows.append([c.replace("|", "\\|") for c in cells])
        header = ["row", "column", "metric", "paper", "reproduced", "difference", "sd", "difference / sd",
                  "spread verdict", "t", "p", "t test (95%)", "note"]  # fmt: skip
        out += [markdown_table(header, rows)]
    return "\n".join(out)
