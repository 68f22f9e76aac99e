"""l2ood.plan: measured throughput from benchmarks/gpu_check.py's JSON replaces the estimates; the study-start
line and the command-line summary a user sees."""

import json
import math
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
    totals = r"paper: \d+ runs, \d+ training jobs, \d+ epochs, about \d+-\d+ GPU hours"
    assert re.search(totals, proc.stdout), proc.stdout


def test_the_estimate_is_a_range_from_flops_and_says_so(config):
    """ResNet18, 60 epochs on CIFAR-10: 90-140 s between the fast and the slow end; both ends in the table and
    the totals; the cluster request takes the slow end."""
    fast, slow = (60 * plan.epoch_seconds(config, RUN, {}, end) for end in ("fast", "slow"))
    assert 85 <= fast <= 95 and 135 <= slow <= 145
    df = plan.summary(config, "paper", {}).set_index("run")
    assert df.loc[RUN, "gpu_hours_fast"] == pytest.approx(15 * fast / 3600)
    assert df.loc[RUN, "gpu_hours"] == pytest.approx(15 * slow / 3600)
    assert plan.runtime_request(config, RUN) == math.ceil(3 * slow / 60 + 10)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    out = subprocess.run([sys.executable, "-m", "l2ood.plan"], env=env, capture_output=True, text=True, timeout=120)
    assert f"about {plan.hours_range(df)} GPU hours (estimate" in out.stdout
    assert "GPU hours not measured yet, estimated from training FLOPs per image" in out.stdout
    assert re.search(rf"{RUN} +15 +60 +\d\.\d\d-\d\.\d\d estimate", out.stdout), out.stdout


def test_readme_gpu_hours_are_what_the_plan_prints(config):
    from l2ood.config import spec_runs, study_item

    readme = (ROOT / "README.md").read_text()
    df = plan.summary(config, "paper", {}).set_index("run")
    assert f"210 training jobs, about {plan.hours_range(df)} GPU hours" in readme
    assert f"**about {plan.hours_range(df)} GPU hours**" in readme
    for table, text in (("table8", "Table 8 is 30 training jobs (ResNet18, 60 epochs, both heads, 15 seeds), about {}"),
                        ("table4", "Table 4, the paper's main table, 140 jobs and about {}")):  # fmt: skip
        rows = df.loc[spec_runs(study_item(config, "paper", "tables", table))]
        assert text.format(f"{plan.hours_range(rows)} GPU hours") in readme, table
    assert not re.search(r"about \d+ GPU hours", readme)  # a single figure would be the old, unmeasured one


@pytest.mark.parametrize("args,message", [
    (["papr"], "no study 'papr' in .*config.yaml; its studies: demo, paper"),
    (["paper", "no/such.yaml"], "cannot read the config file no/such.yaml: No such file or directory"),
])  # fmt: skip
def test_command_line_errors_say_what_is_wrong_without_a_traceback(tmp_path, args, message):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    proc = subprocess.run([sys.executable, "-m", "l2ood.plan", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    helped = subprocess.run([sys.executable, "-m", "l2ood.plan", "--help"], env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert helped.returncode == 0 and "usage: python -m l2ood.plan [-h] [study] [config]" in helped.stdout


@pytest.mark.parametrize("model", sorted(plan.TRAIN_GFLOP_PER_IMAGE))
def test_train_flops_are_counted_from_the_models(config, model):
    """The table is a count, not a guess: one forward and backward pass of the paper's model at 32 px."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from l2ood.config import resolve_run
    from l2ood.models import build_model

    run = next(r for r, spec in config["runs"].items() if spec["model"] == model)
    cfg = resolve_run(config, run)
    net = build_model(cfg["model"], cfg["num_classes"], cfg["head"], 32, **cfg["model_kwargs"])
    with FlopCounterMode(display=False) as counter:
        out = net(torch.randn(2, 3, 32, 32))
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert counter.get_total_flops() / 2 / 1e9 == pytest.approx(plan.TRAIN_GFLOP_PER_IMAGE[model], rel=0.01)
