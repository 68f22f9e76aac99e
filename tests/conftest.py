"""What every test shares: ``ROOT``, the repository (``from conftest import ROOT``), and the l2ood
library on the import path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


# --- the fast subset runs no workflow ---------------------------------------------------------
# `pytest -m "not slow and not slurm"` is the developer's quick check: a test that starts
# `snakemake` (a run, a dry run, a lint) must be marked slow. While a test without the mark sets
# up, runs and tears down, `snakemake` on PATH is a stand-in that records the call and fails, and
# the test errors naming the command, so a forgotten mark is caught on the first fast run.

import atexit  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

_GUARD = Path(tempfile.mkdtemp(prefix="l2ood-no-snakemake-"))
_GUARD_LOG = _GUARD / "calls"
atexit.register(shutil.rmtree, _GUARD, ignore_errors=True)
(_GUARD / "snakemake").write_text(
    "#!/bin/sh\n"
    f'printf "%s\\n" "$*" >> {shlex.quote(str(_GUARD_LOG))}\n'
    'echo "snakemake started by a test not marked slow: add @pytest.mark.slow (tests/conftest.py)" >&2\n'
    "exit 97\n"
)
(_GUARD / "snakemake").chmod(0o755)


def _guarded(item):
    """Run one phase of a test not marked slow with the stand-in first on PATH; raise if it was called."""
    if item.get_closest_marker("slow") is not None:
        return None
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{_GUARD}{os.pathsep}{path}"
    _GUARD_LOG.unlink(missing_ok=True)
    return path


def _check(path):
    if path is None:
        return
    os.environ["PATH"] = path
    if _GUARD_LOG.exists():
        calls = _GUARD_LOG.read_text().splitlines()
        _GUARD_LOG.unlink()
        raise pytest.fail.Exception(
            f"this test is not marked slow but started snakemake {calls}: mark it @pytest.mark.slow "
            "(the fast subset, `pytest -m \"not slow and not slurm\"`, runs no workflow)"
        )


def _guard_phase(item):
    """One phase of a test (setup, call, teardown), with the stand-in snakemake first on PATH if the
    test is not marked slow."""
    path = _guarded(item)
    try:
        return (yield)
    finally:
        _check(path)


# the same guard for each phase (pluggy passes each hook only the arguments its function names)
pytest_runtest_setup = pytest_runtest_call = pytest_runtest_teardown = pytest.hookimpl(wrapper=True)(_guard_phase)


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory):
    """The tiny demo (tests/config/tiny.yaml) built once per session, with what the terminal showed
    in terminal.txt; test modules take a copy of it (workflow_files.built_copy)."""
    from workflow_files import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("tiny-built"))
    proc = snakemake(work, "--cores", "2", "--configfile", "tests/config/tiny.yaml")
    (work / "terminal.txt").write_text(proc.stdout + proc.stderr)  # what a user sees
    return work
