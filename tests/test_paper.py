"""l2ood.paper without the paper's text: the parser's errors, the paper-vs-reproduced join, its
verdicts and t test (moved from tests/test_paper_numbers.py, which checks the transcription
against the paper's markdown)."""

import numpy as np
import pandas as pd
import pytest
from l2ood.paper import KEYS, compare, compare_markdown, parse_paper_tables, summaries


def test_parser_names_unknown_headers_and_bad_cells():
    table = (
        "Model\tSVHN\t\tImageNet\t\n\tNo L2\tL2\tNo L2\tL2\nR\t1.0 / 2.0\t3.0 / 4.0\t5.0 / 6.0\t7.0 / 8.0\n\nTable 9: x"
    )
    with pytest.raises(ValueError, match="'ImageNet'"):
        parse_paper_tables(table)
    with pytest.raises(ValueError, match="table9, row 'R'.*'1.0 - 2.0'"):
        parse_paper_tables(table.replace("ImageNet", "CIFAR10").replace("1.0 / 2.0", "1.0 - 2.0"))
    good = parse_paper_tables(table.replace("ImageNet", "CIFAR10"))
    assert good.column.tolist() == ["svhn/nol2"] * 2 + ["svhn/l2"] * 2 + ["cifar10/nol2"] * 2 + ["cifar10/l2"] * 2
    assert good.metric.tolist()[:2] == ["auroc", "fpr95"] and good.value.tolist()[-1] == 8.0


def tiny_paper() -> pd.DataFrame:
    rows = [("table4", "VGG16", "svhn/l2", "auroc", "95.8", ""), ("table4", "VGG16", "svhn/l2", "fpr95", "7.80", ""),
            ("table1", "CSI (Tack et al.)", "svhn", "auroc", "99.8", "reported")]  # fmt: skip
    df = pd.DataFrame(rows, columns=[*KEYS, "printed", "note"])
    return df.assign(value=df.printed.astype(float))


def test_compare_joins_and_subtracts():
    rep = pd.DataFrame([("table4", "VGG16", "svhn/l2", "fpr95", 8.25), ("table4", "VGG16", "svhn/l2", "auroc", 96.0)],
                       columns=[*KEYS, "value"])  # fmt: skip
    df = compare(tiny_paper(), rep)
    assert df.columns.tolist() == [*KEYS, "printed", "paper", "reproduced", "difference", "std", "n_seeds", "sd_units",
                                   "paper_min", "paper_max", "verdict", "t", "p", "t_test", "note"]  # fmt: skip
    assert df.metric.tolist() == ["auroc", "fpr95", "auroc"]  # the paper's order, one row per paper number
    assert df.difference.iloc[:2].round(6).tolist() == [0.2, 0.45] and pd.isna(df.reproduced.iloc[2])
    assert df.verdict.tolist() == ["one seed, no sd", "one seed, no sd", "not reproduced"]  # no std given
    md = compare_markdown(df)
    assert df.t_test.tolist() == ["not tested: one seed", "not tested: one seed", "not reproduced"]
    # decimals as printed
    assert "| VGG16 | svhn/l2 | fpr95 | 7.80 | 8.25 | +0.45 |  |  | one seed, no sd |  |  | not tested: one seed |  |" in md
    assert "| CSI (Tack et al.) | svhn | auroc | 99.8 | n/a |  |  |  | not reproduced |  |  | not reproduced | reported |" in md
    assert "## Table 4" in md and "2 of 2 numbers reproduced" in md and "0 of 1 numbers reproduced" in md


def constructed() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Table 3 with a seed range per column and a Table 4 judged in sd units; verdicts by hand."""
    paper = [("table3", "Min", "svhn/norm_feature", "auroc", "90.0"), ("table3", "Max", "svhn/norm_feature", "auroc", "95.0"),
             ("table3", "Mean", "svhn/norm_feature", "auroc", "93.0"), ("table3", "Min", "svhn/maxlogit", "auroc", "90.0"),
             ("table3", "Max", "svhn/maxlogit", "auroc", "95.0"), ("table3", "Mean", "svhn/maxlogit", "auroc", "93.0"),
             ("table4", "VGG16", "svhn/l2", "auroc", "95.8"), ("table4", "VGG16", "svhn/l2", "fpr95", "7.80"),
             ("table4", "VGG16", "svhn/nol2", "auroc", "90.0"), ("table4", "VGG16", "svhn/nol2", "fpr95", "20.0"),
             ("table1", "CSI (Tack et al.)", "svhn", "auroc", "99.8")]  # fmt: skip
    paper = pd.DataFrame(paper, columns=[*KEYS, "printed"]).assign(note="")
    paper["value"] = paper.printed.astype(float)
    rep = [("table3", "Min", "svhn/norm_feature", "auroc", 91.0, 2.0, 5),   # (91 - 90) / 2 = 0.5 sd
           ("table3", "Max", "svhn/norm_feature", "auroc", 99.0, 2.0, 5),   # 2 sd
           ("table3", "Mean", "svhn/norm_feature", "auroc", 94.5, 2.0, 5),  # in [90, 95]
           ("table3", "Min", "svhn/maxlogit", "auroc", 95.0, 0.5, 5),       # 10 sd
           ("table3", "Max", "svhn/maxlogit", "auroc", 97.0, 0.5, 5),       # 4 sd
           ("table3", "Mean", "svhn/maxlogit", "auroc", 96.0, 0.5, 5),      # above 95: outside
           ("table4", "VGG16", "svhn/l2", "auroc", 96.0, 0.15, 15),         # 0.2 / 0.15 = 1.33 sd
           ("table4", "VGG16", "svhn/l2", "fpr95", 8.25, 0.5, 15),          # 0.9 sd
           ("table4", "VGG16", "svhn/nol2", "auroc", 89.0, 0.25, 15),       # -4 sd
           ("table4", "VGG16", "svhn/nol2", "fpr95", 21.0, 0.0, 1)]  # one seed  # fmt: skip
    rep = pd.DataFrame(rep, columns=[*KEYS, "value", "std", "n_seeds"])
    return paper, rep.assign(stat=rep.row.map({"Min": "min", "Max": "max"}).fillna("mean"))


def test_verdicts_on_constructed_numbers():
    df = compare(*constructed()).set_index(["table", "row", "column", "metric"])
    v = df.verdict
    assert v[("table3", "Mean", "svhn/norm_feature", "auroc")] == "inside the paper's seed range"
    assert v[("table3", "Mean", "svhn/maxlogit", "auroc")] == "outside the paper's seed range"
    assert df.loc[("table3", "Mean", "svhn/maxlogit", "auroc"), ["paper_min", "paper_max"]].tolist() == [90.0, 95.0]
    assert v[("table3", "Min", "svhn/norm_feature", "auroc")] == "within 1 sd"
    assert v[("table3", "Max", "svhn/norm_feature", "auroc")] == "within 2 sd"  # exactly 2 sd counts as within
    assert v[("table3", "Min", "svhn/maxlogit", "auroc")] == "beyond 2 sd"
    assert df.loc[("table4", "VGG16", "svhn/l2", "auroc"), "sd_units"] == pytest.approx(0.2 / 0.15)
    assert v[("table4", "VGG16", "svhn/l2", "auroc")] == "within 2 sd"
    assert v[("table4", "VGG16", "svhn/l2", "fpr95")] == "within 1 sd"
    assert df.loc[("table4", "VGG16", "svhn/nol2", "auroc"), "sd_units"] == pytest.approx(-4.0)
    assert v[("table4", "VGG16", "svhn/nol2", "auroc")] == "beyond 2 sd"
    assert v[("table4", "VGG16", "svhn/nol2", "fpr95")] == "one seed, no sd"
    assert v[("table1", "CSI (Tack et al.)", "svhn", "auroc")] == "not reproduced"
    # the t test, by hand: t = (|reproduced - paper| - half the printed unit) / (sd / sqrt(n)), df = n - 1
    t = df.t_test
    assert t[("table3", "Min", "svhn/norm_feature", "auroc")] == "not tested: a min, not a mean"
    assert df.loc[("table3", "Mean", "svhn/norm_feature", "auroc"), "t"] == pytest.approx(1.45 / (2 / 5**0.5))
    assert t[("table3", "Mean", "svhn/norm_feature", "auroc")] == "not distinguishable"  # t 1.62 < t(.975, 4) 2.78
    assert t[("table3", "Mean", "svhn/maxlogit", "auroc")] == "distinguishable"  # t 13.2
    # within 2 sd of the seeds, yet 3.9 standard errors from the mean of 15 of them: both verdicts, both true
    assert df.loc[("table4", "VGG16", "svhn/l2", "auroc"), "t"] == pytest.approx(0.15 / (0.15 / 15**0.5))
    assert t[("table4", "VGG16", "svhn/l2", "auroc")] == "distinguishable"
    assert t[("table4", "VGG16", "svhn/nol2", "fpr95")] == "not tested: one seed"


def test_one_summary_line_per_table():
    df = compare(*constructed())
    assert summaries(df) == {
        "table3": "Table 3: 1 of 2 means inside the paper's seed range; 2 of 4 other numbers within 2 sd (1 within 1 sd); "
                  "t test: the paper's number distinguishable from the reproduced mean for 1 of 2 means (p < 0.05)",
        "table4": "Table 4: 2 of 3 numbers within 2 sd (1 within 1 sd); 1 from one seed, not judged; "
                  "t test: the paper's number distinguishable from the reproduced mean for 3 of 3 means (p < 0.05)",
        "table1": "Table 1: 1 of 1 not reproduced",
    }
    md = compare_markdown(df)
    assert "## Summary" in md and "- Table 4: 2 of 3 numbers within 2 sd (1 within 1 sd)" in md
    assert "| Mean | svhn/maxlogit | auroc | 93.0 | 96.0 | +3.0 | 0.5 | +6.0 | outside the paper's seed range | +13.2 |" in md
    assert "| spread verdict | t | p | t test (95%) | note |" in md


def test_compare_flags_unmatched_and_duplicate_reproduced_numbers():
    rep = pd.DataFrame([("table4", "VGG-16", "svhn/l2", "auroc", 96.0)], columns=[*KEYS, "value"])
    with pytest.warns(UserWarning, match="match no paper number.*VGG-16"):
        compare(tiny_paper(), rep)
    with pytest.raises(ValueError, match="twice"):
        compare(tiny_paper(), pd.concat([rep, rep]))


def test_t_test_against_scipy_by_hand():
    """The t test of compare() is scipy.stats.ttest_1samp on the seeds, against the nearest end of the
    paper's rounding range; a difference within the rounding is never distinguishable."""
    from scipy.stats import ttest_1samp

    seeds = [96.1, 95.9, 96.3, 96.0, 96.2]  # mean 96.1, sd sqrt(0.1 / 4) = 0.158, se 0.0707
    cells = [("svhn/l2", "95.8"), ("svhn/nol2", "96.0"), ("cifar100/l2", "96.15")]
    paper = pd.DataFrame([("table4", "VGG16", c, "auroc", v) for c, v in cells], columns=[*KEYS, "printed"])
    paper = paper.assign(value=paper.printed.astype(float), note="")
    rep = pd.DataFrame([(*k, 96.1, pd.Series(seeds).std(), 5) for k in paper[KEYS].itertuples(index=False)],
                       columns=[*KEYS, "value", "std", "n_seeds"])  # fmt: skip
    df = compare(paper, rep)
    # 95.8 stands for 95.75-95.85: t = (96.1 - 95.85) / 0.0707 = 3.54, df 4, p = 0.024
    ref = ttest_1samp(seeds, 95.85)
    assert df.t[0] == pytest.approx(ref.statistic) == pytest.approx(0.25 / (0.1**0.5 / 2 / 5**0.5))
    assert df.p[0] == pytest.approx(ref.pvalue) and 0.02 < df.p[0] < 0.03
    assert df.t_test[0] == "distinguishable" and df.verdict[0] == "within 2 sd"  # 0.3 / 0.158 = 1.9 sd
    # 96.0 stands for 95.95-96.05: t = 0.05 / 0.0707 = 0.71, p = 0.52
    assert df.p[1] == pytest.approx(ttest_1samp(seeds, 96.05).pvalue) and df.t_test[1] == "not distinguishable"
    # 96.15 stands for 96.145-96.155: t = -0.045 / 0.0707
    assert df.t[2] == pytest.approx(ttest_1samp(seeds, 96.145).statistic)


def test_t_test_false_positive_rate_on_null_seeds():
    """Seeds whose true mean is the paper's printed number: "distinguishable" in at most 6% of 4,000
    simulated studies (nominal 5%; the rounding allowance makes it a little conservative) at 3, 5, 15 seeds."""
    from l2ood.stats import one_sample_t

    rng = np.random.default_rng(5)
    for n in (3, 5, 15):
        seeds = 95.0 + rng.normal(0, 0.5, size=(4000, n))
        hits = [one_sample_t(s.mean(), s.std(ddof=1), n, 95.0, tolerance=0.05).distinguishable() for s in seeds]
        assert 0.02 <= np.mean(hits) <= 0.06, (n, np.mean(hits))
