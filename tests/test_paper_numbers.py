"""The transcribed paper numbers against the paper itself (the paper-vs-reproduced join: test_paper.py).

The paper's markdown is ../shared/paper/paper.md beside the clone (or $L2OOD_PAPER_MD). Without
it the comparison is skipped, except on CI (CI=true), where a missing paper is a failure.
"""

import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from l2ood.paper import KEYS, load_paper_numbers, parse_paper_tables

NUMBERS = ROOT / "workflow/resources/paper_numbers.csv"
REPORTED = ROOT / "workflow/resources/table1_reported.csv"


def paper_md() -> Path | None:
    default = ROOT.parent / "shared/paper/paper.md"
    env = os.environ.get("L2OOD_PAPER_MD")
    return next((p for p in [default, Path(env) if env else None] if p and p.is_file()), None)


@pytest.fixture(scope="module")
def parsed() -> pd.DataFrame:
    path = paper_md()
    if path is None:
        msg = (f"the paper's text is not here: to check the transcribed numbers against it, put the paper as "
               f"markdown at {ROOT.parent / 'shared/paper/paper.md'} (beside the clone) or run "
               f"L2OOD_PAPER_MD=/path/to/paper.md pytest tests/test_paper_numbers.py")  # fmt: skip
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return parse_paper_tables(path.read_text())


@pytest.fixture(scope="module")
def numbers() -> pd.DataFrame:
    return load_paper_numbers(NUMBERS)


def test_csv_equals_the_paper(parsed, numbers):
    both = parsed.merge(numbers, on=KEYS, how="outer", suffixes=("_paper", "_csv"), indicator=True)
    only_paper = both[both._merge == "left_only"][KEYS].to_dict("records")
    only_csv = both[both._merge == "right_only"][KEYS].to_dict("records")
    differ = both[(both._merge == "both") & (both.printed_paper != both.printed_csv)]
    assert not only_paper, f"in the paper, missing from the CSV: {only_paper}"
    assert not only_csv, f"in the CSV, not in the paper: {only_csv}"
    assert differ.empty, f"printed differently:\n{differ[[*KEYS, 'printed_paper', 'printed_csv']]}"
    # same order too: the CSV reads like the paper, table by table, row by row
    assert parsed[[*KEYS, "printed"]].equals(numbers[[*KEYS, "printed"]])


def test_counts_per_table(parsed):
    # by hand: Table 1 has 12 rows x 3 numbers less 6 N/A; "AUROC / FPR95" cells count twice
    counts = {"table1": 30, "table2": 36, "table3": 36, "table4": 98, "table5": 14, "table6": 20, "table7": 14,
              "table8": 14}  # fmt: skip
    assert parsed.groupby("table").size().to_dict() == counts


def cell(df, table, row, column, metric) -> str:
    hit = df[(df.table == table) & (df.row == row) & (df.column == column) & (df.metric == metric)]
    assert len(hit) == 1, (table, row, column, metric)
    return hit.printed.iloc[0]


@pytest.mark.parametrize(
    "table, row, column, metric, printed",
    [
        ("table4", "ResNet50 (100)", "svhn/l2", "auroc", "98.6"),
        ("table4", "ResNet50 (100)", "svhn/l2", "fpr95", "7.80"),
        ("table3", "Mean", "cifar100/norm_logits", "auroc", "88.9"),
        ("table3", "Mean", "cifar100/norm_logits", "fpr95", "53.9"),
        ("table5", "ResNet18", "accuracy/nol2", "accuracy", "84.7"),
        ("table2", "ResNet50", "svhn/SM", "fpr95", "9.10"),
        ("table7", "ResNet50", "cifar10/l2", "auroc", "77.1"),
        ("table8", "ResNet18", "tinyimagenet/nol2", "fpr95", "75.4"),
        ("table1", "ERD++ (Tifrea et al.)", "svhn", "auroc", "1.00"),
        ("table1", "L2 Norm 100", "accuracy", "accuracy", "94.1"),
        ("table4", "ConvNeXt_Tiny*", "accuracy/l2", "accuracy", "89.2"),
    ],
)
def test_spot_checks_by_hand(parsed, numbers, table, row, column, metric, printed):
    assert cell(numbers, table, row, column, metric) == printed
    assert cell(parsed, table, row, column, metric) == printed


def test_values_parse_and_notes(numbers):
    assert numbers.loc[numbers.printed == "7.80", "value"].eq(7.8).all()
    assert numbers.value.between(1, 100).all()
    assert "probably" in numbers.query("table == 'table1' and row == 'ERD++ (Tifrea et al.)'").note.iloc[0]
    assert "N/A" not in set(numbers.printed)
    assert (numbers.query("table == 'table1' and row == 'KNN+ (Sun et al.)'").column == "cifar100").sum() == 0


def test_readme_documents_every_column_key(numbers):
    readme = (ROOT / "workflow/resources/README.md").read_text()
    assert all(f"`{c}`" in readme for c in set(numbers.column)), "every column key is listed in the README"


def test_table1_reported_matches_the_paper(numbers):
    rep = pd.read_csv(REPORTED, dtype=str, keep_default_na=False)
    assert len(rep) == 9  # 12 rows less LogitNorm+ and our two L2 rows (all three reproduced here)
    assert (rep.method + " (" + rep.citation + ")").tolist() == rep.row.tolist()
    t1 = numbers[numbers.table == "table1"].set_index(["row", "column"]).printed
    for r in rep.itertuples():
        for col, field in [("svhn", "svhn_auroc"), ("cifar100", "cifar100_auroc"), ("accuracy", "accuracy")]:
            value = getattr(r, field)
            assert value == t1.get((r.row, col), ""), (r.row, col)
            if not value:
                assert "N/A" in r.note, r.row
        assert r.source.startswith("reported in ") and r.source.endswith(", as cited in Haas et al. Table 1")

