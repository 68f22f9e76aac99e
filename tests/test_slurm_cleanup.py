"""The test SLURM daemons (tests/slurm/cluster.py, started as root) stop when the process that
started them dies without stopping them: pytest killed with SIGKILL or SIGTERM runs no finalizer, and a
Ctrl-C (SIGINT) stops a pytest whose cluster was started outside a fixture.
About 10 s a case; needs SLURM and root as tests/test_slurm.py does."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT
from slurm import cluster as slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

#: a test session that starts a cluster, writes the daemons' PIDs and waits to be killed
INNER = """
import os, time
from pathlib import Path
from slurm import cluster

def test_start_and_wait():
    c = cluster.start(Path(os.environ["CLUSTER_DIR"]))
    Path(os.environ["PIDS"]).write_text(" ".join(str(p.pid) for p in c.procs.values()))
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited: only its parent's wait is missing


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_the_daemons_stop_when_pytest_is_killed(tmp_path, sig):
    reason = slurm_cluster.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    (tmp_path / "test_inner.py").write_text(INNER)
    pids = tmp_path / "pids"
    short = Path(tempfile.mkdtemp(prefix="l2ood-slurm-"))  # munge's socket path must stay short
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "CLUSTER_DIR": str(short), "PIDS": str(pids)}
    inner = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    daemons = []
    try:
        deadline = time.monotonic() + 120
        while not pids.exists() and inner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids.exists():
            inner.kill()
            raise AssertionError(f"no cluster started:\n{inner.communicate(timeout=30)[0].decode()[-3000:]}")
        time.sleep(0.2)  # the PIDs are written whole (one short write); let it land
        daemons = [int(p) for p in pids.read_text().split()]
        assert len(daemons) == 3 and all(alive(p) for p in daemons), daemons
        inner.send_signal(sig)
        inner.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in daemons) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in daemons if alive(p)]
        assert not left, f"daemons still running after pytest got {sig.name}: {left}"
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        for p in daemons:  # this test's own daemons only, by PID
            if alive(p):
                os.kill(p, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)
