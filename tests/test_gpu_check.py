"""benchmarks/gpu_check.py, the GPU acceptance run: its CPU smoke mode runs every part, and a failing or hanging
task is recorded without stopping the others."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

# The list: ResNet18 at 1024 and at 128 (LogitNorm+), ResNet50 at 768 and at 512 on 64 px, VGG16,
# ConvNeXt-Tiny, CCT, TinyImageNet ResNet18.
PAPER_KEYS = {
    "resnet18@32/b1024", "resnet18@32/b128", "resnet50@32/b768", "resnet50@64/b512", "vgg16@32/b1024",
    "convnext_tiny@32/b1024", "cct_7_3x1@32/b128", "resnet18@64/b1024",
}  # fmt: skip
PARTS = {"full60", "resume", "determinism", "recipes", "switches", "concurrency"}
SWITCHES = {"bf16_channels_last", "bf16_contiguous", "fp32", "fp32_tf32", "no_spectral_norm", "deterministic"}
COMPILE_ROWS = {"compile_default", "compile_reduce-overhead", "compile_max-autotune"}


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_recipe_per_model_size_and_batch_of_the_paper(gc):
    runs = gc.paper_runs(gc.load_config())
    assert set(gc.recipe_runs(runs)) == PAPER_KEYS
    name, cfg = gc.full_run(runs)
    assert name in runs and gc.throughput_key(cfg) == "resnet18@32/b1024" and cfg["head"] == "l2" and cfg["recipe"]["epochs"] == 60


def test_engine_options_the_engine_lacks_are_listed_not_passed(gc):
    known, missing = gc.engine_options({"amp": True, "compile_mode": "max-autotune"}, {"amp": "auto", "compile": False})
    assert known == {"amp": True} and missing == ["compile_mode"]


def test_plan_has_every_part_and_fits_the_budget_order(gc):
    tasks = gc.plan(type("A", (), {"smoke": False})(), gc.load_config())
    assert {t["part"] for t in tasks} == PARTS
    assert [t["part"] for t in tasks[:3]] == ["full60", "resume", "determinism"]
    full = tasks[0]["spec"]
    assert full["n"] == 50_000 and full["cfg"]["recipe"]["epochs"] == 60 and full["cfg"]["recipe"]["batch_size"] == 1024
    levels = [t["spec"]["processes"] for t in tasks if t["part"] == "concurrency"]
    assert levels == [1, 2, 4, 1, 2, 4]
    assert tasks[-1]["name"] == "compile_max-autotune"  # the slowest, most expendable row last


def test_failing_and_hanging_tasks_are_recorded_and_their_processes_killed(gc, tmp_path):
    cfg = gc.shrink(gc.full_run(gc.paper_runs(gc.load_config()))[1], smoke=True, epochs=1)
    bad = json.loads(json.dumps(cfg))
    bad["model"] = "no_such_model"
    train = {"kind": "train", "n": 32, "seed": 0, "engine": {"device": "cpu"}, "tf32": None, "threads": 1}
    failed = gc.run_task(
        {"part": "recipes", "name": "bad", "timeout": 300, "spec": {**train, "cfg": bad}}, tmp_path, 600
    )
    assert failed["status"] == "failed" and "unknown model 'no_such_model'" in failed["error"]
    # a task that starts two workers and runs out of time: it and its workers are killed
    slow = {"kind": "concurrent", "processes": 2, "run": "x", "train": {**train, "cfg": cfg}}
    hung = gc.run_task({"part": "concurrency", "name": "slow", "timeout": 4, "spec": slow}, tmp_path, 600)
    assert hung["status"] == "timeout" and hung["wall_s"] < 60
    deadline = time.time() + 10  # SIGKILL is delivered at once, the exit takes a moment
    while alive_in_group(hung["pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert alive_in_group(hung["pid"]) == []
    late = gc.run_task({"part": "recipes", "name": "late", "timeout": 60, "spec": {**train, "cfg": cfg}}, tmp_path, 5)
    assert late["status"] == "skipped" and "budget" in late["note"]
    unsupported = gc.run_task({"part": "switches", "name": "x", "timeout": 60, "spec": None}, tmp_path, 600)
    assert unsupported["status"] == "not supported" and "not supported by this engine version" in unsupported["note"]


def alive_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def numbers(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from numbers(v, f"{path}/{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def positive(e: dict, *keys):
    return all(isinstance(e[k], (int, float)) and e[k] > 0 for k in keys)


@pytest.mark.slow
def test_smoke_run_exercises_every_part_and_writes_the_json_to_out(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT / "workflow")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"], env=env, capture_output=True, text=True, timeout=1700, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def no_nan(name):
        raise AssertionError(f"{name} in the JSON")

    report = json.loads((tmp_path / "gpu_check.json").read_text(), parse_constant=no_nan)
    assert report["schema"] == 1 and report["smoke"] is True and report["device"] == "cpu"
    assert report["gpu"].startswith("cpu") and report["non_finite"] == []
    assert all(math.isfinite(v) for _, v in numbers(report))
    p = report["parts"]
    assert set(p) == PARTS

    f = p["full60"]
    assert f["status"] == "ok" and "resnet18" in f["run"] and isinstance(f["meets_bar"], bool)
    assert positive(f, "start_to_model_s", "fit_s", "setup_s", "images_per_s", "peak_memory_gib")
    assert f["start_to_model_s"] >= f["fit_s"]  # process start to model.pt includes the imports and set-up

    r = p["resume"]
    assert r["status"] == "ok" and r["matches"] is True
    assert 2 <= r["killed_at_epoch"] < r["epochs"]
    assert r["max_abs_weight_diff"] == 0.0 and r["max_rel_loss_diff"] == 0.0  # bit-identical on a CPU

    d = p["determinism"]
    assert d["status"] == "ok" and d["deterministic"]["identical"] is True

    assert set(p["recipes"]) == PAPER_KEYS and set(report["throughput"]) == PAPER_KEYS
    for key, e in p["recipes"].items():
        assert e["status"] == "ok" and positive(e, "images_per_s", "epoch_s", "peak_memory_gib"), key
        assert report["throughput"][key] == e["images_per_s"]

    assert set(p["switches"]) == SWITCHES | COMPILE_ROWS
    for row in SWITCHES:
        e = p["switches"][row]
        assert e["status"] == "ok" and positive(e, "images_per_s", "peak_memory_gib") and e["label"], row
    assert (
        p["switches"]["fp32"]["engine"]["amp"] is False
        and p["switches"]["bf16_contiguous"]["engine"]["channels_last"] is False
    )
    for row in COMPILE_ROWS:
        assert p["switches"][row]["status"] in ("skipped", "not supported"), row

    assert set(p["concurrency"]) == {"resnet18@32/b1024", "resnet18@32/b128"}
    for key, levels in p["concurrency"].items():
        assert set(levels) == {"1", "2"}
        for k, e in levels.items():
            assert e["status"] == "ok" and len(e["per_process_images_per_s"]) == int(k)
            assert e["aggregate_images_per_s"] == pytest.approx(sum(e["per_process_images_per_s"]))

    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in proc.stdout
    assert "Failed tasks" not in proc.stdout
