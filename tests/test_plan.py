"""l2ood.plan: measured throughput from benchmarks/gpu_check.py's JSON replaces the estimates; the study-start
line and the command-line summary a user sees."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from l2ood import plan

RUN = "cifar10-resnet18-l2-sgd60"  # ResNet18, 32 px, batch 1024, 60 epochs, 15 seeds


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def figures(tmp_path, throughput, **top):
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"schema": 1, "smoke": False, "device": "cuda", "gpu": "H100", **top,
                                "throughput": throughput}))  # fmt: skip
    return path


def test_a_measured_speed_replaces_the_estimate(tmp_path, config):
    key = plan.throughput_key("resnet18", 32, 1024)
    assert key == "resnet18@32/b1024"  # the key gpu_check.json uses
    measured = plan.measured_throughput(figures(tmp_path, {key: 40_000.0, "resnet50@64/b512": 0}))
    assert measured == {key: 40_000.0}  # a zero (nothing measured) is no speed
    assert plan.epoch_seconds(config, RUN, measured) == pytest.approx(50_000 / 40_000)
    assert plan.run_minutes(config, RUN, measured) == pytest.approx(60 * 1.25 / 60)
    df = plan.summary(config, "paper", measured).set_index("run")
    assert df.loc[RUN, "speed"] == "measured" and df.loc[RUN, "gpu_hours"] == pytest.approx(15 * 1.25 / 60)
    assert df.loc["cifar10-resnet50-l2-sgd100", "speed"] == "estimate"  # batch 768 at 32 px: not measured
    estimate = plan.epoch_seconds(config, RUN, {})
    assert estimate != pytest.approx(1.25) and plan.epoch_seconds(config, "cifar10-resnet50-l2-sgd100", measured) == (
        plan.epoch_seconds(config, "cifar10-resnet50-l2-sgd100", {})
    )


def test_smoke_cpu_and_missing_figures_are_not_measurements(tmp_path, monkeypatch, config):
    key = plan.throughput_key("resnet18", 32, 1024)
    for name, top in (("smoke", {"smoke": True}), ("cpu", {"device": "cpu"})):
        (tmp_path / name).mkdir()
        assert plan.measured_throughput(figures(tmp_path / name, {key: 9.0}, **top)) == {}, name
    assert plan.measured_throughput(tmp_path / "absent.json") == {}
    # the default file is read where the runtime request is computed (every job, at parse time)
    monkeypatch.setattr(plan, "MEASURED_JSON", figures(tmp_path, {key: 1_000.0}))
    assert plan.runtime_request(config, RUN) == 3 * 50 + 10  # 60 epochs x 50 s = 50 minutes, 3x, + 10


def test_start_line_names_runs_seeds_epochs_and_time(config):
    jobs = [("demo-smallcnn-l2", s) for s in (0, 1, 2)] + [("demo-smallcnn-nol2", 1)]
    line = plan.start_line(config, jobs)
    epochs = config["recipes"]["demo-sgd60"]["epochs"]
    assert line.startswith(f"Training 4 jobs, {4 * epochs} epochs: ")
    assert "demo-smallcnn-l2 (seeds 0-2); demo-smallcnn-nol2 (seed 1)" in line
    assert "of CPU time" in line and "GPU" not in line  # the demo's runs are CPU-sized (gpus: 0)
    gpu = plan.start_line(config, [("cifar10-resnet18-l2-sgd60", 0), ("cifar10-resnet18-l2-sgd60", 3)])
    assert "(seeds 0, 3)" in gpu and "of GPU time (one GPU per job" in gpu and "CPU" not in gpu
    assert plan.start_line(config, []).startswith("Nothing to train")


def test_cpu_runs_are_estimated_apart_from_gpu_runs(config):
    df = plan.summary(config, "demo").set_index("run")
    assert (df.gpu_hours == 0).all() and (df.cpu_hours > 0).all()
    # 585 images x 60 epochs x 3 seeds at CPU_SECONDS_PER_KIMG
    per_kimg = plan.CPU_SECONDS_PER_KIMG["smallcnn"]
    assert df.loc["demo-smallcnn-l2", "cpu_hours"] == pytest.approx(0.585 * 60 * 3 * per_kimg / 3600)


def test_command_line_reads_the_repository_config_from_any_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    proc = subprocess.run([sys.executable, "-m", "l2ood.plan", "paper"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"paper: \d+ runs, \d+ training jobs, \d+ epochs, about \d+ GPU hours", proc.stdout), proc.stdout
