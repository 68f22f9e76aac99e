"""benchmarks/gpu_check.py, the GPU acceptance run: its CPU smoke mode runs every part, and a failing or hanging
task is recorded without stopping the others."""

import importlib.util
import json
import math
import os
import re
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
    assert (
        name in runs
        and gc.recipe_key(cfg) == "resnet18@32/b1024"
        and cfg["head"] == "l2"
        and cfg["recipe"]["epochs"] == 60
    )


def test_plan_puts_the_planning_figures_first_and_fits_the_budget_order(gc):
    tasks = gc.plan(type("A", (), {"smoke": False})(), gc.load_config())
    assert {t["part"] for t in tasks} == PARTS
    parts = [t["part"] for t in tasks]
    # each recipe's throughput (what l2ood.plan reads), then resume, then the rest
    assert parts[: len(PAPER_KEYS) + 3] == ["recipes"] * len(PAPER_KEYS) + ["resume", "full60", "determinism"]
    full = next(t["spec"] for t in tasks if t["part"] == "full60")
    assert full["n"] == 50_000 and full["cfg"]["recipe"]["epochs"] == 60 and full["cfg"]["recipe"]["batch_size"] == 1024
    levels = [t["spec"]["processes"] for t in tasks if t["part"] == "concurrency"]
    assert levels == [1, 2, 4, 1, 2, 4]
    assert tasks[-1]["name"] == "compile_max-autotune"  # the slowest, most expendable row last
    # the planning figures and full60 fit the default budget: it cuts only the tail
    assert sum(t["need_s"] for t in tasks if t["part"] in ("recipes", "resume", "full60")) <= gc.BUDGET_S
    # compile, no spectral norm and deterministic: the engine's float32 default, as the recipes (no bf16)
    rows = {t["name"]: t["spec"] for t in tasks if t["part"] == "switches"}
    for row in ("compile_default", "no_spectral_norm", "deterministic", "fp32_tf32"):
        assert "amp" not in rows[row]["engine"] and "channels_last" not in rows[row]["engine"], row
    assert rows["bf16_channels_last"]["engine"]["amp"] is True
    assert all("amp" not in t["spec"]["engine"] for t in tasks if t["part"] == "recipes")


def test_the_concurrency_total_counts_only_the_common_window(gc):
    """Two processes at 100 images/s each, the second starting late: 200 images/s while both run, not the sum
    of anything measured outside that window; no overlap, no figure."""
    a = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]  # 100 images per epoch of 1 s
    b = [(1.5, 2.5), (2.5, 3.5)]
    rate, window = gc.common_rate([a, b], 100)
    assert window == pytest.approx(1.5) and rate == pytest.approx(200.0)
    assert gc.common_rate([[(0.0, 1.0)], [(2.0, 3.0)]], 100) is None


def test_a_task_that_cannot_finish_in_the_time_left_is_not_started(gc, tmp_path):
    task = {"part": "recipes", "name": "x", "timeout": 60, "need_s": 30, "spec": {"kind": "train"}}
    entry = gc.run_task(task, tmp_path, 29)
    assert entry["status"] == "skipped" and "29 s left, the task needs 30 s" in entry["note"]


def test_tf32_flags_are_read_as_fit_set_them(gc):
    """Before fit the process has torch's defaults; the record is taken inside fit's own backend_flags."""
    import contextlib

    import torch

    class Engine:  # a stand-in for l2ood.inference: its backend_flags turns TF32 on, as fit does on CUDA
        @staticmethod
        @contextlib.contextmanager
        def backend_flags(*args):
            saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
            try:
                yield
            finally:
                torch.set_float32_matmul_precision(saved[0])
                torch.backends.cudnn.allow_tf32 = saved[1]

    record = {}
    torch.backends.cudnn.allow_tf32 = False
    try:
        with gc.recording_flags(Engine, torch, record)():
            pass
    finally:
        torch.backends.cudnn.allow_tf32 = True
    assert record == {"matmul": "high", "conv": True}


def test_a_train_task_records_the_flags_fit_set(gc, tmp_path, monkeypatch):
    """task_train wraps the backend_flags that fit really enters (l2ood.inference's, through
    engine_flags): a wrapper on a name fit does not call would leave the record empty."""
    import torch

    from l2ood import inference, train

    cfg = gc.shrink(gc.full_run(gc.paper_runs(gc.load_config()))[1], smoke=True, epochs=1)
    for module, name in ((inference, "backend_flags"), (train, "train_epoch")):  # task_train patches them
        monkeypatch.setattr(module, name, getattr(module, name))
    threads = torch.get_num_threads()
    try:
        out = gc.task_train({"kind": "train", "cfg": cfg, "n": 32, "seed": 0, "engine": {"device": "cpu"},
                             "tf32": None, "threads": 1, "out_dir": str(tmp_path / "run")})  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert out["tf32"] == {"matmul": "highest", "conv": torch.backends.cudnn.allow_tf32}


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
    # 1 s: less than two workers take to import torch, so it times out however fast the machine is
    hung = gc.run_task({"part": "concurrency", "name": "slow", "timeout": 1, "spec": slow}, tmp_path, 600)
    assert hung["status"] == "timeout" and hung["wall_s"] < 60
    deadline = time.time() + 10  # SIGKILL is delivered at once, the exit takes a moment
    while alive_in_group(hung["pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert alive_in_group(hung["pid"]) == []
    late = gc.run_task({"part": "recipes", "name": "late", "timeout": 60, "spec": {**train, "cfg": cfg}}, tmp_path, 5)
    assert late["status"] == "skipped" and "budget" in late["note"]


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
        assert p["switches"][row]["status"] == "skipped", row

    assert set(p["concurrency"]) == {"resnet18@32/b1024", "resnet18@32/b128"}
    for key, levels in p["concurrency"].items():
        assert set(levels) == {"1", "2"}
        for k, e in levels.items():
            assert e["status"] == "ok" and len(e["per_process_images_per_s"]) == int(k)
            assert 0 < e["common_window_s"] <= e["fit_wall_s"] and e["aggregate_images_per_s"] > 0
        one = levels["1"]  # one process: its steady epochs' rate, measured around the epoch instead of inside
        assert one["aggregate_images_per_s"] == pytest.approx(one["per_process_images_per_s"][0], rel=0.25)

    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in proc.stdout
    assert "Failed tasks" not in proc.stdout


BLOCKER = """
import sys


class Blocker:  # the GPU machine has neither: gpu_check must not need them
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("snakemake", "jsonschema"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")


sys.meta_path.insert(0, Blocker())
"""


def test_a_kill_at_any_moment_leaves_every_finished_task_in_the_json(tmp_path):
    """SIGKILL gpu_check (no handler can run) once two tasks have finished: the JSON holds both, with their logs,
    says what was running and what was pending, and the running task's processes die with it. Without snakemake
    and jsonschema on the path, as on the GPU machine."""
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), str(ROOT / "workflow")])}
    out = tmp_path / "gpu_check.json"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--smoke", "--parts", "recipes", "--jobs", "1", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    first = proc.stdout.readline()
    try:
        deadline = time.time() + 600
        report = {}
        while time.time() < deadline and proc.poll() is None:
            if out.exists():
                report = json.loads(out.read_text())  # written atomically: never half a file
                if len(report["parts"]["recipes"]) >= 2 and report["running"]:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
    finally:
        proc.kill()
        rest = proc.communicate()[0]
    found = r"gpu_check: Python 3\.\d+\.\d+, torch \S+ .*torchvision \S+.*; GPU: none \(CPU only\)"
    assert re.match(found, first), first
    report = json.loads(out.read_text())
    done = report["parts"]["recipes"]
    assert len(done) >= 2 and report["complete"] is False and report["throughput"]
    assert len(done) + len(report["pending"]) == len(PAPER_KEYS), (done, report["pending"])
    for key, e in done.items():
        assert e["status"] == "ok" and e["images_per_s"] > 0 and report["throughput"][key] == e["images_per_s"]
        log = Path(e["log"]).read_text()  # kept, with the engine's epoch lines
        assert log.startswith("task train") and re.search(r"l2ood.train \S+ seed 0: epoch 2/2 ", log), log
    for line in rest.splitlines():
        if line.startswith("[") and "recipes/" in line:  # every task the output says finished is in the JSON
            assert line.split("recipes/")[1].split(":")[0] in done, line
    running = report["running"][0]
    assert running["task"].startswith("recipes/") and Path(running["log"]).exists()
    deadline = time.time() + 20  # the running task dies with its parent (PR_SET_PDEATHSIG)
    while alive_in_group(running["pid"]) and time.time() < deadline:
        time.sleep(0.2)
    assert alive_in_group(running["pid"]) == []


def test_the_row_called_the_engines_default_runs_the_engines_default(gc):
    """The switches row said to be "the engine's CUDA default" is the one whose engine resolves, on
    CUDA, to what ENGINE_DEFAULTS resolve to (float32 with TF32 and channels-last, not bf16)."""
    from types import SimpleNamespace

    from l2ood.engine import ENGINE_DEFAULTS
    from l2ood.inference import resolve_engine

    tasks = gc.plan(SimpleNamespace(smoke=False), gc.load_config())
    rows = {t["name"]: t for t in tasks if t["part"] == "switches" and t["spec"]}
    cuda = {"device": "cuda"}
    default = resolve_engine({**ENGINE_DEFAULTS, **cuda})

    def engine_of(row):
        e = resolve_engine({**rows[row]["spec"]["engine"], **cuda})
        return e if rows[row]["spec"]["tf32"] is None else {**e, "tf32": rows[row]["spec"]["tf32"]}

    said = [row for row in rows if "the engine's" in rows[row]["label"] and "default" in rows[row]["label"]]
    assert said == [gc.DEFAULT_ROW] and engine_of(gc.DEFAULT_ROW) == default
    assert default["amp"] is False and default["tf32"] is True
    assert all(engine_of(row)["amp"] for row in rows if row.startswith("bf16"))
