"""Each GPU job on a workstation gets its own device: lock files per (GPU, slot), free again when a job dies."""

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2ood import gpus

ROOT = Path(__file__).resolve().parents[1]

# A GPU job: claim a device, print what it got and what CUDA_VISIBLE_DEVICES is, hold it until stdin closes.
JOB = """
import json, logging, os, sys
sys.path.insert(0, {workflow!r})
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from l2ood.gpus import claim_device
got = claim_device({n}, jobs_per_gpu={k}, lock_dir={lock_dir!r}, timeout_s={timeout}, poll_s=0.05)
print(json.dumps([got, os.environ.get("CUDA_VISIBLE_DEVICES")]), flush=True)
sys.stdin.read()
"""


class Job:
    def __init__(self, lock_dir, n, k=1, timeout=None, env=None):
        code = JOB.format(workflow=str(ROOT / "workflow"), n=n, k=k, lock_dir=str(lock_dir), timeout=timeout)
        base = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**base, **(env or {})},
        )  # fmt: skip

    def device(self) -> str:
        """The claimed index; checks that CUDA_VISIBLE_DEVICES says the same."""
        if hasattr(self, "got"):
            return self.got
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"job printed nothing; stderr:\n{self.proc.stderr.read()}")
        got, visible = json.loads(line)
        assert got == visible
        self.got = got
        return got

    def end(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def jobs():
    started = []
    yield lambda *a, **kw: started.append(Job(*a, **kw)) or started[-1]
    for j in started:
        if j.proc.poll() is None:
            j.proc.kill()
        j.proc.wait(timeout=30)


def test_concurrent_jobs_see_distinct_devices_and_one_too_many_is_refused(tmp_path, jobs):
    started = [jobs(tmp_path, n=3) for _ in range(3)]  # start together: they race for the locks
    assert sorted(j.device() for j in started) == ["0", "1", "2"]
    fourth = jobs(tmp_path, n=3, timeout=0.5)
    fourth.proc.wait(timeout=30)
    err = fourth.proc.stderr.read()
    assert fourth.proc.returncode != 0
    assert "DevicesBusyError" in err and "all 3 GPU(s) x 1 slot(s)" in err
    assert all(f"pid {j.proc.pid}" in err for j in started)  # it names the holders


def test_jobs_per_gpu_puts_k_jobs_on_each_gpu_after_spreading(tmp_path, jobs):
    first = [jobs(tmp_path, n=2, k=2) for _ in range(2)]
    assert sorted(j.device() for j in first) == ["0", "1"]  # one per GPU before any GPU gets a second
    second = [jobs(tmp_path, n=2, k=2) for _ in range(2)]
    assert collections.Counter(j.device() for j in first + second) == {"0": 2, "1": 2}
    fifth = jobs(tmp_path, n=2, k=2, timeout=0.3)
    assert fifth.proc.wait(timeout=30) != 0


def test_a_killed_jobs_device_becomes_free(tmp_path, jobs):
    a, b = jobs(tmp_path, n=2), jobs(tmp_path, n=2)
    devices = {j: j.device() for j in (a, b)}
    os.kill(a.proc.pid, signal.SIGKILL)  # no clean-up code runs: the kernel drops the flock
    a.proc.wait(timeout=30)
    c = jobs(tmp_path, n=2, timeout=20)
    assert c.device() == devices[a]
    d = jobs(tmp_path, n=2, timeout=0.3)  # and b still holds its own
    assert d.proc.wait(timeout=30) != 0


def test_a_waiting_job_starts_when_a_device_frees_and_says_why_it_waited(tmp_path, jobs):
    a = jobs(tmp_path, n=1)
    assert a.device() == "0"
    lock = next(tmp_path.glob("*.gpu0.slot0.lock"))
    assert f"pid {a.proc.pid}" in lock.read_text()  # who holds it, for the waiting job's message
    b = jobs(tmp_path, n=1)
    time.sleep(1.5)
    assert b.proc.poll() is None, "the second job should wait, not fail"
    a.end()
    assert b.device() == "0"
    b.proc.stdin.close()
    b.proc.wait(timeout=30)
    assert "are taken" in b.proc.stderr.read()


def test_cuda_visible_devices_already_set_is_left_alone(tmp_path, jobs):
    j = jobs(tmp_path / "locks", n=2, env={"CUDA_VISIBLE_DEVICES": "3"})
    assert j.device() == "3"
    assert not (tmp_path / "locks").exists(), "no lock is taken for a device SLURM assigned"
    empty = jobs(tmp_path / "locks", n=2, env={"CUDA_VISIBLE_DEVICES": ""})  # "no GPU" is a choice too
    assert empty.device() == ""


def test_no_gpu_claims_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.claim_device(0, lock_dir=tmp_path) is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_device_count_from_argument_env_and_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.delenv(gpus.GPUS_ENV, raising=False)
    assert gpus.device_count(3) == 3
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n"
        "echo '  MIG 1g.10gb Device 0: (UUID: MIG-c)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert gpus.device_count() == 2  # MIG lines are not GPUs
    monkeypatch.setenv(gpus.GPUS_ENV, "4")
    assert gpus.device_count() == 4
    monkeypatch.setenv(gpus.GPUS_ENV, "four")
    with pytest.raises(ValueError, match="L2OOD_GPUS='four'"):
        gpus.device_count()
    monkeypatch.delenv(gpus.GPUS_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert gpus.device_count() == 0


def test_bad_arguments_and_late_calls_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(ValueError, match="jobs_per_gpu"):
        gpus.claim_device(2, jobs_per_gpu=0, lock_dir=tmp_path)
    with pytest.raises(ValueError, match="n_devices"):
        gpus.claim_device(-1, lock_dir=tmp_path)
    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="before the first CUDA call"):
        gpus.claim_device(2, lock_dir=tmp_path)


def test_a_claim_holds_until_the_process_lets_go(tmp_path, monkeypatch, jobs):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpus, "_claim", None)  # and back to none after the test
    try:
        assert gpus.claim_device(1, lock_dir=tmp_path) == "0"
        assert gpus.claim_device(1, lock_dir=tmp_path) == "0"  # a second call keeps the first claim
        assert jobs(tmp_path, n=1, timeout=0.3).proc.wait(timeout=30) != 0
    finally:
        os.close(gpus._claim[0])  # what the job's exit does: the library has no release of its own
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    assert jobs(tmp_path, n=1, timeout=20).device() == "0"
