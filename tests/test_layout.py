"""Where files live is spelled once, in l2ood.layout: the rules declare their outputs from it
(issue 21, item 5), so a moved folder is one edit and the on-disk checks (l2ood.ondisk) name the
same files the rules write."""

import re

from conftest import ROOT

from l2ood import layout


def test_the_rules_spell_no_result_or_prepared_path_themselves():
    written = []
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"results/|resources/prepared", code):
                written.append(f"{path.name}:{number}: {line.strip()}")
    assert not written, "use l2ood.layout instead:\n" + "\n".join(written)


def test_a_studys_files_keep_their_names():
    assert layout.study_file("demo", layout.METRICS) == "results/demo/metrics.csv"
    assert layout.table_file("demo", "table1", "md") == "results/demo/tables/table1.md"
    assert layout.table_file("{study}", layout.COMPARISON, "csv") == "results/{study}/tables/paper_vs_reproduced.csv"
    assert layout.figure_file("demo", "norms", "png") == "results/demo/figures/norms.png"
