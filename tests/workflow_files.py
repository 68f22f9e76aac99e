"""What the workflow tests share: a copy of the workflow to run in, and reading a plan."""

import re
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT

#: everything a run of the workflow reads (the library, rules, profiles, configs)
WORKFLOW_FILES = ["Snakefile", "config.yaml", "pyproject.toml", "workflow", "envs", "profiles", "tests/config"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow into ``dest`` (a temporary directory) and return it."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def job_stats(text: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints for a plan: rule -> count ({} when nothing is planned)."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*total", text, re.S)
    if not m:
        return {}
    return {r: int(c) for r, c in (line.split() for line in m.group(1).strip().splitlines())}


def dry_run(*args, timeout=300) -> subprocess.CompletedProcess:
    """``snakemake -n *args`` in the repository: the process, with ``text`` (stdout and stderr) and
    ``jobs`` (its job stats) added."""
    proc = subprocess.run(["snakemake", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    proc.text, proc.jobs = proc.stdout + proc.stderr, job_stats(proc.stdout)
    return proc
