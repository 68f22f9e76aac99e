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
    return {"kind": "l2_vs_nol2", "title": "T", "caption": "A caption.", "ood": ["near"],
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
