"""A workstation with two GPUs (declared: L2OOD_GPUS=2): every GPU job of the tiny demo takes a GPU
of its own (l2ood.gpus, called by the train and infer scripts), so jobs that run at the same time
name different CUDA_VISIBLE_DEVICES in their logs; a GPU held by a job that was SIGKILLed before
the workflow started is free again. No GPU is used: the devices are only named (torch finds none
and trains on the CPU). About a minute on 2 cores.
"""

import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pytest
from conftest import ROOT
from workflow_files import copy_workflow

pytestmark = pytest.mark.slow

# The demo's runs are CPU-sized (gpus: 0); here they ask for a GPU, as the paper's runs do.
GPU_YAML = "runs:\n  demo-smallcnn-nol2: {gpus: 1}\n  demo-smallcnn-l2: {gpus: 1}\n"
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from l2ood.gpus import claim_device
print(claim_device(), flush=True)
time.sleep(600)
"""
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)


def job_spans(log_dir: Path) -> list[tuple[str, str, datetime, datetime]]:
    """(log, device, first, last log time) of every job log under ``log_dir``."""
    spans = []
    for log in sorted(log_dir.rglob("*.log")):
        text = log.read_text()
        device = re.search(r"CUDA_VISIBLE_DEVICES=(\S*)", text)
        stamps = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in STAMP.findall(text)]
        assert device and stamps, f"{log}: no CUDA_VISIBLE_DEVICES line or no time stamps:\n{text[-2000:]}"
        spans.append((str(log.relative_to(log_dir)), device.group(1), stamps[0], stamps[-1]))
    return spans


def test_concurrent_gpu_jobs_get_distinct_devices_and_a_killed_jobs_device_is_free(tmp_path):
    work = copy_workflow(tmp_path / "work")
    (work / "gpu.yaml").write_text(GPU_YAML)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES" and not k.startswith("SLURM_")}
    env.update(L2OOD_GPUS="2", L2OOD_GPU_LOCK_DIR=str(tmp_path / "locks"))

    # a job that took GPU 0 and was killed: its lock must not keep the GPU
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ROOT / "workflow")], env=env, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "0"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    args = ["--cores", "2", "--resources", "gpu=2", "--configfile", "tests/config/tiny.yaml", "gpu.yaml"]
    # the data first, so that the next call has GPU jobs only and runs two of them at a time
    for stop in (["--omit-from", "train"], ["--until", "infer"]):
        out = subprocess.run(["snakemake", *stop, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    spans = job_spans(work / "logs/train") + job_spans(work / "logs/infer")
    assert len(spans) == 8, spans  # 2 runs x 2 seeds, trained and inferred
    assert {device for _, device, _, _ in spans} == {"0", "1"}, spans  # GPU 0 too: the kill freed it
    overlapping = [(a, b) for a, b in combinations(spans, 2) if a[2] <= b[3] and b[2] <= a[3]]
    assert overlapping, f"no two GPU jobs ran at the same time: {spans}"
    for a, b in overlapping:
        assert a[1] != b[1], f"{a[0]} and {b[0]} ran at the same time on GPU {a[1]}"
    assert "are taken" not in "".join(p.read_text() for p in (work / "logs").rglob("*.log"))  # nobody waited
