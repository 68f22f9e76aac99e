"""The workflow used as a Snakemake module from another workflow (`module ... use rule *`)."""

import re
import subprocess

import pytest
from workflow_files import copy_workflow

WRAPPER = """\
configfile: "{pkg}/config.yaml"
configfile: "{pkg}/tests/config/tiny.yaml"


module l2ood:
    snakefile:
        "{pkg}/Snakefile"
    config:
        config


use rule * from l2ood
"""


@pytest.mark.slow
def test_wrapper_workflow_builds_the_demo(tmp_path):
    pkg = copy_workflow(tmp_path / "l2ood")
    wrapper = tmp_path / "analysis"
    wrapper.mkdir()
    (wrapper / "Snakefile").write_text(WRAPPER.format(pkg=pkg))
    proc = subprocess.run(
        ["snakemake", "--cores", "2", "results/demo/tables/demo.md"],
        cwd=wrapper, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (wrapper / "results/demo/tables/demo.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| SmallCNN")]
    assert len(rows) == 3, table
    for row in rows:  # every OoD cell is "AUROC / FPR95"
        assert len(re.findall(r"\d+\.?\d* / \d+\.?\d*", row)) == 6, row  # 3 OoD sets x 2 heads
    assert not (pkg / "results").exists(), "outputs belong to the wrapper's folder"
