"""The fast subset, `pytest -m "not slow and not slurm"`, runs no workflow: tests/conftest.py fails a
test that is not marked slow and starts `snakemake`, naming the command and the fix."""

import os
import shutil
import subprocess
import sys

from conftest import ROOT

INNER = '''
import shutil, subprocess, pytest

def test_unmarked_starts_snakemake():
    subprocess.run(["snakemake", "--version"], capture_output=True)

def test_unmarked_starts_nothing():
    pass

@pytest.mark.slow
def test_marked_finds_the_real_snakemake():
    assert "l2ood-no-snakemake-" not in shutil.which("snakemake")
'''


def test_a_test_not_marked_slow_that_starts_snakemake_fails(tmp_path):
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests/conftest.py", tmp_path / "tests/conftest.py")
    (tmp_path / "tests/test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    # this session's own stand-in is on PATH while this test runs: the inner session starts from the real one
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "l2ood-no-snakemake-" not in p)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", "tests"],
                          cwd=tmp_path, env={**os.environ, "PATH": path}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in out, out[-3000:]
    assert "FAILED tests/test_inner.py::test_unmarked_starts_snakemake" in out, out[-3000:]
    assert "started snakemake ['--version']: mark it @pytest.mark.slow" in out, out[-3000:]
