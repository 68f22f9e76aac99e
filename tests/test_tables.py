"""The tables' presentation on constructed metrics: the dagger below chance, mean ± std, the HTML page."""

import re

import pandas as pd
import pytest
from l2ood.tables import BELOW_CHANCE, render_table


def metrics_files(tmp_path, aurocs: dict[str, list[float]]) -> dict[str, list[str]]:
    """One metrics.csv per run and seed, with the given AUROC per seed (FPR95 = 1 - AUROC, accuracy 0.9 + seed/100)."""
    files = {}
    for run, values in aurocs.items():
        files[run] = []
        for seed, a in enumerate(values):
            path = tmp_path / f"{run}-{seed}.csv"
            pd.DataFrame([{"run": run, "seed": seed, "ood": "near", "score": "feature_norm", "auroc": a,
                           "fpr95": 1 - a, "accuracy": 0.9 + seed / 100}]).to_csv(path, index=False)  # fmt: skip
            files[run].append(str(path))
    return files


@pytest.fixture
def spec(tmp_path):
    return {"kind": "l2_vs_nol2", "title": "T", "caption": "A caption.", "ood": {"near": "near"},
            "rows": [{"label": "Net", "nol2": "a", "l2": "b"}], "labels": {"near": "Near set"},
            "metrics": metrics_files(tmp_path, {"a": [0.40, 0.44], "b": [0.80, 0.90]})}  # fmt: skip


def cells(markdown: str) -> list[str]:
    row = next(line for line in markdown.splitlines() if line.startswith("| Net"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_auroc_below_chance_is_marked_and_explained(spec):
    t = render_table(spec)
    c = cells(t.markdown)
    # No L2: mean AUROC 42.0 (below 50: marked), FPR95 58.0; L2: 85.0 / 15.0 (not marked)
    assert c[1] == f"42.0{BELOW_CHANCE} / 58.0" and c[2] == "85.0 / 15.0"
    assert "AUROC below 50: the score ranks OoD above ID" in t.markdown
    # the CSV keeps the number itself
    assert t.tidy.query("column == 'near/nol2' and metric == 'auroc'").value.item() == pytest.approx(42.0)


def test_no_dagger_note_without_a_cell_below_chance(spec, tmp_path):
    spec["metrics"] = metrics_files(tmp_path, {"a": [0.6, 0.7], "b": [0.8, 0.9]})
    t = render_table(spec)
    assert BELOW_CHANCE not in t.markdown and BELOW_CHANCE not in t.html


def test_std_prints_mean_plus_minus_the_seeds_std(spec):
    t = render_table({**spec, "std": True})
    c = cells(t.markdown)
    # by hand: AUROC seeds 80, 90 -> mean 85.0, sample std 7.07; accuracy 90, 91 -> 90.5 ± 0.7
    assert c[2] == "85.0 ± 7.1 / 15.0 ± 7.1"
    assert c[1] == f"42.0{BELOW_CHANCE} ± 2.8 / 58.0 ± 2.8"
    assert c[3] == "90.5 ± 0.7" and c[4] == "90.5 ± 0.7"
    assert "Mean ± standard deviation over 2 seeds" in t.markdown


def test_html_page_has_both_header_rows_and_every_cell(spec):
    t = render_table({**spec, "std": True})
    assert "<b>T.</b> A caption." in t.html
    assert re.search(r'<th colspan="2">Near set</th>.*<th colspan="2">Accuracy</th>', t.html)
    assert t.html.count("<th>No L2</th>") == 2 and t.html.count("<th>L2</th>") == 2
    # each "AUROC / FPR95" cell on two lines; every markdown number is in the page
    assert "<td>85.0 ± 7.1<br>15.0 ± 7.1</td>" in t.html
    for number in re.findall(r"\d+\.\d", t.markdown.split("\n\n")[1]):
        assert number in t.html


def test_differences_are_welch_intervals_named_in_every_format(spec, tmp_path):
    # by hand (tests/test_stats.py): L2 [90, 92, 94] - No L2 [80, 80, 83] = +11.0, se sqrt(7/3), df 3.92 -> [6.7, 15.3]
    spec["metrics"] = metrics_files(tmp_path, {"a": [0.80, 0.80, 0.83], "b": [0.90, 0.92, 0.94]})
    t = render_table({**spec, "diff": True})
    diff = next(line for line in t.markdown.split("*L2 - No L2")[1].splitlines() if line.startswith("| Net"))
    assert diff.split("|")[2].strip() == "+11.0 [6.7, 15.3] * / -11.0 [-15.3, -6.7] *"
    # accuracy 90, 91, 92 for both heads: se sqrt(2/3), df 4, t 2.776 -> +-2.3, no star
    assert diff.split("|")[3].strip() == "+0.0 [-2.3, 2.3]"
    row = t.tidy.query("column == 'near/diff' and metric == 'auroc'").iloc[0]
    assert (round(row.low, 1), round(row.high, 1)) == (6.7, 15.3) and row.excludes_zero
    for text in (t.markdown, t.latex.replace(r"\%", "%"), t.html.replace("&#x27;", "'")):
        assert "95% Welch's t interval" in text and "bootstrap" not in text
        assert "no interval and no star where a head has one seed" in text


def test_one_seed_has_no_std(spec, tmp_path):
    # one seed: the CSV's std is empty (NaN, as l2ood.stats.mean_std), not a 0.0 that reads as "no spread"
    spec["metrics"] = metrics_files(tmp_path, {"a": [0.40], "b": [0.80]})
    t = render_table({**spec, "std": True})
    assert cells(t.markdown)[2] == "80.0 / 20.0"
    assert cells(t.markdown)[1] == f"40.0{BELOW_CHANCE} / 60.0"  # the mean alone keeps its mark (l2ood.stats.pct_std)
    row = t.tidy.query("column == 'near/l2' and metric == 'auroc'").iloc[0]
    assert row.n_seeds == 1 and pd.isna(row["std"]) and row["mean"] == pytest.approx(80.0)


def test_a_missing_number_is_an_error_naming_its_cell(spec, tmp_path):
    spec["metrics"] = metrics_files(tmp_path, {"a": [0.40, float("nan")], "b": [0.80, 0.90]})
    # the checked reader stops it first, naming the file and its line (l2ood.results)
    with pytest.raises(ValueError, match=r"a-1\.csv: has no number in \['auroc', 'fpr95'\] on line\(s\) \[2\]"):
        render_table(spec)


def test_markdown_and_latex_escape_and_align_by_hand():
    """l2ood.table_render on a hand-made table: the markdown rows and LaTeX's escaped cells and groups."""
    from l2ood.table_render import latex_table, markdown_table

    md = markdown_table(["Score", "AUROC"], [["MSP", "97.4 ± 0.5"]])
    assert md.splitlines()[:3] == ["| Score | AUROC |", "|---|---|", "| MSP | 97.4 ± 0.5 |"]
    tex = latex_table([("", 1), ("L2", 2)], ["Score", "AUROC", "FPR95"], [["feature_norm 5%", "97.4", "9.1"]], "a & b")
    assert r"feature\_norm 5\%" in tex and r"\caption{a \& b}" in tex and r"\multicolumn{2}{c}{L2}" in tex


def test_cells_print_mean_std_and_keep_each_numbers_statistics_and_the_below_chance_mark():
    """l2ood.table_cells by hand: two seeds' AUROC 40 and 50 print "45.0† ± 7.1", the tidy row holds them."""
    from l2ood.table_cells import BELOW_CHANCE, Cells

    m = pd.DataFrame({"run": "r", "score": "msp", "ood": "near", "seed": [0, 1], "auroc": [0.4, 0.5],
                      "fpr95": [0.9, 0.7], "accuracy": [0.9, 0.9]})  # fmt: skip
    cells = Cells(m, std=True)
    assert cells.pair("Row", "col", "r", "msp", "near") == f"45.0{BELOW_CHANCE} ± 7.1 / 80.0 ± 14.1"
    row = cells.frame().iloc[0]
    assert (row["metric"], row["n_seeds"], row["min"], row["max"]) == ("auroc", 2, 40.0, 50.0)
    assert row["value"] == pytest.approx(45.0) and row["std"] == pytest.approx(7.0710678)
    assert BELOW_CHANCE in cells.seeds_note()
