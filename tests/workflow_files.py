"""What the workflow tests share: a copy of the workflow to run in, running Snakemake in it, and
reading a plan. Every test that calls `snakemake` here is marked slow (tests/conftest.py checks)."""

import os
import re
import shutil
import signal
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


def start_snakemake(cwd: Path, *args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``snakemake *args`` in ``cwd``, its output (stdout and stderr) to ``log``. In its own
    process group, so that a timeout or a test's kill takes Snakemake and its jobs together."""
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}  # a SIGKILLed head keeps its last lines
    with open(log, "w") as out:
        return subprocess.Popen(["snakemake", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started by `start_snakemake` and everything in its group, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def snakemake(cwd: Path, *args: str, check=True, timeout=600, env=None, log=None) -> subprocess.CompletedProcess:
    """``snakemake *args`` in ``cwd`` with a hard timeout (SIGKILL to its process group): the process,
    ``text`` (its output) added. Its output goes to ``log`` if given (then ``stdout`` is all of it),
    else ``stdout`` and ``stderr`` are apart. ``check``: a failure raises with the output's end."""
    if log is None:
        proc = subprocess.Popen(["snakemake", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)  # fmt: skip
    else:
        proc = start_snakemake(cwd, *args, log=Path(log), env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        text = Path(log).read_text() if log else out + err
        raise AssertionError(f"snakemake {' '.join(args)} killed after {timeout} s:\n{text[-4000:]}") from None
    except BaseException:  # a Ctrl-C of pytest: its own session would not get it, so it goes with us
        kill_group(proc)
        raise
    if log is not None:
        out, err = Path(log).read_text(), ""
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    result.text = out + err
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.text[-4000:]}")
    return result


def dry_run(*args, timeout=300) -> subprocess.CompletedProcess:
    """``snakemake -n *args`` in the repository: the process, with ``text`` (stdout and stderr) and
    ``jobs`` (its job stats) added."""
    proc = snakemake(ROOT, "-n", *args, check=False, timeout=timeout)
    proc.jobs = job_stats(proc.stdout)
    return proc


def built_copy(tmp_path_factory, built: Path, name: str) -> Path:
    """A copy of the session's built tiny demo (conftest's ``tiny_built``) for one test module to
    change: modification times and Snakemake's records (``.snakemake/``, relative paths) come along,
    so it plans as the original does, and the demo is built once per session instead of per module."""
    work = tmp_path_factory.mktemp(name) / "work"
    shutil.copytree(built, work, symlinks=True)
    return work
