"""GPU acceptance run of the training engine: one call, at most 8 minutes on one H100-class GPU.

    python benchmarks/gpu_check.py                 # JSON to $OUT/gpu_check.json ($OUT set), else the path below
    python benchmarks/gpu_check.py figures.json    # JSON to figures.json
    python benchmarks/gpu_check.py --smoke f.json  # CPU, tiny models and sizes: every code path (tests/test_gpu_check.py)

Everything trains through the public ``l2ood.train.fit(cfg, images, labels, out_dir, seed, engine=...)``
with resolved run configs (``l2ood.config.resolve_run`` of the paper's runs in config.yaml, found
by model, size and batch, not by name) on synthetic uint8 images with a class-dependent colour,
the engine options of config.yaml's ``engine`` section, and the run's ``threads.train``.

Needs only Python (3.11 or 3.12), torch, torchvision, numpy, pandas and pyyaml: no snakemake, no
jsonschema, no pip install. Its first line says what it found (Python, torch, torchvision, GPU).

Every task runs in its own process group under its own timeout, so a CUDA error, a hang or an
out-of-memory kills one task, which is recorded, and the rest go on. The tasks run one after
another within a total budget (``--budget``, 470 s), the planning figures first: ``recipes``
(each recipe's throughput, what ``l2ood.plan`` reads), ``resume``, then ``full60``,
``determinism``, the switches, the concurrency runs and the compile rows. A task whose least
time (``need_s``, its start-up included) exceeds the time left is recorded as skipped, not
started. The JSON is written (atomically) at the start, when each task starts and when it
finishes: a kill at any moment leaves every task finished so far, the running one (``running``)
and those not run (``pending``). Each task's log stays in ``<json stem>-logs/`` beside it.

1. ``full60``: config.yaml's CIFAR-10 ResNet18-L2 60-epoch run (batch 1024, probes and
   checkpoints as configured) on 50,000 synthetic 32 x 32 images, timed from process start to
   ``model.pt`` (the bar: 60 s).
2. ``resume``: two identical deterministic runs (8 epochs, a checkpoint after every epoch); one
   is SIGKILLed after its second checkpoint and restarted. Tolerance: the restarted run's final
   weights within ``RESUME_ATOL`` (1e-6) of the uninterrupted run's, its per-epoch losses within
   ``RESUME_RTOL`` (1e-6) relative. Deterministic mode makes both the same computation, so any
   difference beyond float rounding is lost state (an RNG stream, momentum, the schedule),
   which shows up as differences of 1e-3 and more.
3. ``determinism``: two runs with ``deterministic: true``, same seed, at the same time: identical
   weights required; the same pair with the default engine is reported for comparison.
4. ``recipes``: one timed epoch (the second; the first carries cudnn's autotuning) of every
   distinct (model, image size, batch) among the paper's runs: ResNet18 at 1024 and at 128
   (LogitNorm+), ResNet50 at 768 and at 512 on 64 px, VGG16, ConvNeXt-Tiny, CCT (with its
   random-resized crop, RandAugment and mixup/cutmix), TinyImageNet ResNet18 on 64 px.
5. ``switches``: ResNet18 at 1024, images/s of the steady epochs and peak memory reserved, for:
   float32 with TF32 on and channels-last (the engine's CUDA default), float32 with TF32 off,
   bf16 + channels-last, bf16 contiguous; and, in the float32 default, spectral normalization
   off, ``deterministic: true``, and torch.compile in each mode (default, reduce-overhead,
   max-autotune; cold inductor cache) with its compile time (its first-epoch overhead minus the
   default row's). ``tf32`` records the flags as ``fit`` set them.
6. ``concurrency``: 1, 2 and 4 processes training at once on the one GPU (started together
   behind a barrier), ResNet18 at 1024 and the ResNet18 batch-128 recipe. The aggregate is the
   images/s of all of them together over the window in which every one was in its steady epochs
   (after the first), each epoch counted in proportion to its overlap with that window
   (``common_window_s``; ``window_epochs`` "all" where the steady epochs never overlapped and
   the first ones are counted too): not a sum of per-process medians, whose epochs overlap only
   in part.

JSON schema (``"schema": 1``); every task entry has ``status`` ("ok", "failed", "timeout",
"skipped"), ``wall_s``, ``timeout_s``, and on failure ``error`` (its log's tail)::

    {"schema": 1, "smoke": false, "gpu": "NVIDIA H100 80GB HBM3", "device": "cuda",
     "torch": "2.x", "cuda": "12.x", "cudnn": 90100, "started": "2025-01-01T12:00:00",
     "total_s": 452.0, "budget_s": 470, "engine_options": ["amp", ...],
     "found": "Python 3.12.3, torch 2.11.0 (CUDA 12.8), torchvision 0.26.0, ...; GPU: NVIDIA H100 ...",
     "complete": false, "pending": ["switches/compile_max-autotune", ...],
     "running": [{"task": "concurrency/resnet18@32/b128|4", "pid", "log", "started_at"}],
     "throughput": {"resnet18@32/b1024": 52000.0, "resnet50@64/b512": 4100.0, ...},
     "parts": {
       "full60": {"status", "run", "images", "epochs", "batch", "start_to_model_s", "meets_bar", "bar_s",
                  "fit_s", "first_epoch_s", "images_per_s", "peak_memory_gib", "memory_kind", ...},
       "resume": {"status", "killed_at_epoch", "epochs", "max_abs_weight_diff", "max_rel_loss_diff",
                  "atol", "rtol", "matches", ...},
       "determinism": {"status", "deterministic": {"identical", "max_abs_weight_diff"},
                       "default": {"identical", "max_abs_weight_diff"}},
       "recipes": {"<key>": {"status", "run", "images_per_s", "epoch_s", "images", "peak_memory_gib", ...}},
       "switches": {"<row>": {"status", "label", "images_per_s", "first_epoch_overhead_s", "compile_s"
                              (compile rows), "peak_memory_gib", "note"?}},
       "concurrency": {"<key>": {"1": {"status", "aggregate_images_per_s", "per_process_images_per_s",
                                       "common_window_s", "fit_wall_s", "peak_memory_gib"}, "2": {...}, "4": {...}}}}}

``throughput`` is what ``l2ood.plan`` reads: training images per second of one job on this GPU,
keyed ``"<model>@<image size>/b<batch size>"`` (``throughput_key``), from the ``recipes`` part;
an epoch of a run takes its training-set size / that. Ignore a file with ``"smoke": true``.
``memory_kind`` is "cuda_reserved" (``torch.cuda.max_memory_reserved``) or, on a CPU,
"host_max_rss".
"""

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROCESS_START = time.time()  # before torch: the full run is timed from here
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

import numpy as np  # noqa: E402

DEFAULT_JSON = ROOT / "benchmarks" / "gpu_check.json"
BUDGET_S = 470  # 8 minutes less the parent's own start and the summary
STARTUP_S = 15  # a task process's start: Python, torch, CUDA context, the synthetic data
BAR_S = 60  # ResNet18-L2 60 epochs at batch 1024, process start to model.pt, one H100
RESUME_ATOL, RESUME_RTOL = 1e-6, 1e-6
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
DEFAULT_ROW = "fp32_tf32"  # the switches row that runs the engine's own CUDA default
CONCURRENCY = (1, 2, 4)
PARTS = ("full60", "resume", "determinism", "recipes", "switches", "concurrency")

# Smoke mode: every model at a size a CPU trains in a second.
SMOKE_MODEL_KWARGS = {
    "resnet18": {"width": 4},
    "resnet50": {"width": 4},
    "vgg16": {"width": 4},
    "convnext_tiny": {"width": 8, "depths": [1, 1, 1, 1]},
    "cct_7_3x1": {"embedding_dim": 32, "num_layers": 1, "num_heads": 2},
}
SMOKE_BATCH = 16


def recipe_key(cfg: dict) -> str:
    """``l2ood.plan.throughput_key`` of a resolved run config: the key ``l2ood.plan`` reads its speed by."""
    from l2ood.plan import throughput_key  # no snakemake, no jsonschema: l2ood.config loads that lazily

    return throughput_key(cfg["model"], cfg["image_size"], cfg["recipe"]["batch_size"])


# --- what to run ------------------------------------------------------------------------------


def load_config() -> dict:
    import yaml

    with open(ROOT / "config.yaml") as f:
        return yaml.safe_load(f)


def paper_runs(config: dict) -> dict:
    """``{run: resolved cfg}`` of the paper study's runs (every run if there is no study "paper")."""
    from l2ood.config import resolve_run, study_runs

    names = study_runs(config, "paper") if "paper" in config.get("studies", {}) else list(config["runs"])
    return {name: resolve_run(config, name) for name in names}


def full_run(runs: dict) -> tuple[str, dict]:
    """The CIFAR-10 ResNet18-L2 60-epoch run at batch 1024."""
    want = {"model": "resnet18", "image_size": 32, "head": "l2", "batch_size": 1024, "epochs": 60}
    for name, cfg in runs.items():
        if {k: cfg.get(k, cfg["recipe"].get(k)) for k in want} == want:
            return name, cfg
    raise SystemExit("config.yaml has no ResNet18 run with the L2 head, 32 px, batch 1024, 60 epochs")


def recipe_runs(runs: dict) -> dict:
    """``{throughput_key: (run, cfg)}``: one run per distinct key, an L2 run where there is one."""
    out = {}
    for name, cfg in sorted(runs.items(), key=lambda kv: kv[1]["head"] != "l2"):
        out.setdefault(recipe_key(cfg), (name, cfg))
    return dict(sorted(out.items()))


def shrink(cfg: dict, smoke: bool, epochs: int | None = None, probe_size: int | None = None) -> dict:
    """A copy of ``cfg`` with ``epochs``; in smoke mode also a tiny model, batch and probe set."""
    cfg = json.loads(json.dumps(cfg))
    if epochs is not None:
        cfg["recipe"]["epochs"] = epochs
    if probe_size is not None:
        cfg["probe_size"] = probe_size
    if smoke:
        cfg["model_kwargs"].update(SMOKE_MODEL_KWARGS.get(cfg["model"], {}))
        cfg["recipe"]["batch_size"] = SMOKE_BATCH
        cfg["probe_size"] = 32
    return cfg


def plan(args, config: dict) -> list[dict]:
    """Every task, in the order they run (the budget cuts the tail): the planning figures first (each
    recipe's throughput, then resume), the rest after. ``need_s`` is a task's least time on an
    H100-class GPU, its start-up included: a task with less time left is not started."""
    smoke = args.smoke
    base_engine = dict(config.get("engine", {}))
    if smoke:
        base_engine["device"] = "cpu"
    threads = 1 if smoke else int(config.get("threads", {}).get("train", 1))
    runs = paper_runs(config)
    full_name, full_cfg = full_run(runs)
    timeout = (lambda s: 300) if smoke else (lambda s: s)

    def train(cfg, n, engine=None, seed=0, tf32=None, **extra):
        return {"kind": "train", "cfg": cfg, "n": n, "seed": seed, "engine": {**base_engine, **(engine or {})},
                "tf32": tf32, "threads": threads, **extra}  # fmt: skip

    tasks = []
    by_key = recipe_runs(runs)  # what l2ood.plan reads: first
    for key, (name, cfg) in by_key.items():
        c = shrink(cfg, smoke, epochs=2, probe_size=500)
        bs = c["recipe"]["batch_size"]
        tasks.append({"part": "recipes", "name": key, "timeout": timeout(60), "need_s": STARTUP_S + 15,
                      "spec": {**train(c, 2 * bs if smoke else max(16 * bs, 8192)), "run": name}})  # fmt: skip

    short = shrink(full_cfg, smoke, epochs=5 if smoke else 8, probe_size=500)
    det = {"checkpoint_minutes": 0, "deterministic": True}  # a checkpoint after every epoch, to kill between them
    tasks.append({"part": "resume", "name": "resume", "timeout": timeout(120), "need_s": 3 * STARTUP_S + 20,
                  "spec": {"kind": "resume", "train": train(short, 128 if smoke else 16_384, det)}})  # fmt: skip

    n = 128 if smoke else 50_000
    tasks.append({"part": "full60", "name": "full60", "timeout": timeout(200), "need_s": STARTUP_S + 90,  # 90-140 s
                  "spec": {**train(shrink(full_cfg, smoke, epochs=3 if smoke else None), n), "run": full_name}})  # fmt: skip

    pair = shrink(full_cfg, smoke, epochs=2, probe_size=500)
    tasks.append({"part": "determinism", "name": "determinism", "timeout": timeout(90), "need_s": 2 * STARTUP_S + 15,
                  "spec": {"kind": "determinism", "runs": {
                      "deterministic": train(pair, 64 if smoke else 8192, {"deterministic": True}),
                      "default": train(pair, 64 if smoke else 8192)}}})  # fmt: skip

    sw = shrink(full_cfg, smoke, epochs=2 if smoke else 3, probe_size=500)
    n_sw = 40 if smoke else 12 * 1024 + 848  # like 50,000, not a multiple of the batch: the short last batch counts
    fast = {"amp": True, "channels_last": True}  # bf16: not the default, timed for comparison
    no_sn = json.loads(json.dumps(sw))
    no_sn["model_kwargs"]["spectral"] = False
    # the engine's float32 default (amp off; TF32 and channels-last "auto", on on CUDA) unless a row says
    switches = [
        ("bf16_channels_last", "bf16 autocast + channels-last", sw, fast, None),
        ("bf16_contiguous", "bf16 autocast, contiguous (NCHW)", sw, {**fast, "channels_last": False}, None),
        ("fp32", "float32, TF32 off, channels-last", sw, {"amp": False, "channels_last": True}, False),
        (DEFAULT_ROW, "float32, TF32 on, channels-last (the engine's CUDA default)", sw, {}, True),
        ("no_spectral_norm", "spectral normalization off (float32 default)", no_sn, {}, None),
        ("deterministic", "deterministic: true, cudnn.benchmark off (float32)", sw, {"deterministic": True}, None),
    ]
    for row, label, cfg, engine, tf32 in switches:
        tasks.append({"part": "switches", "name": row, "label": label, "timeout": timeout(60),
                      "need_s": STARTUP_S + 10, "spec": train(cfg, n_sw, engine, tf32=tf32)})  # fmt: skip
    compile_rows = []
    for mode in COMPILE_MODES:
        engine = {"compile": True, "compile_mode": mode}
        compile_rows.append({"part": "switches", "name": f"compile_{mode}", "label": f"torch.compile mode {mode} (float32 default)",
                             "timeout": timeout({"max-autotune": 240}.get(mode, 150)), "cold_cache": True,
                             "need_s": STARTUP_S + {"max-autotune": 150}.get(mode, 60),
                             "spec": train(sw, n_sw, engine),
                             "skip": "smoke: compiling takes minutes on a CPU" if smoke else None})  # fmt: skip
    tasks.append(compile_rows[0])

    conc_keys = [recipe_key(full_cfg)]
    small = [k for k, (_, c) in by_key.items() if c["model"] == "resnet18" and c["image_size"] == 32]
    conc_keys.append(min(small, key=lambda k: by_key[k][1]["recipe"]["batch_size"]))  # LogitNorm+'s 128
    for key in dict.fromkeys(conc_keys):
        name, cfg = by_key[key]
        c = shrink(cfg, smoke, epochs=2 if smoke else 3, probe_size=500)
        bs = c["recipe"]["batch_size"]
        for k in CONCURRENCY[:2] if smoke else CONCURRENCY:
            tasks.append({"part": "concurrency", "name": f"{key}|{k}", "timeout": timeout(90), "need_s": STARTUP_S + 20,
                          "spec": {"kind": "concurrent", "processes": k, "run": name,
                                   "train": train(c, 2 * bs if smoke else (16_384 if bs >= 512 else 64 * bs))}})  # fmt: skip
    tasks += compile_rows[1:]
    return tasks


# --- running tasks ----------------------------------------------------------------------------


class TaskError(RuntimeError):
    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(spec: dict, workdir: Path, name: str, env: dict | None = None, new_group: bool = False):
    """Start ``gpu_check.py --task`` on ``spec``; (process, result path, log path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "out_dir": str(workdir / name)}
    (workdir / f"{name}.spec.json").write_text(json.dumps(spec))
    result, logf = workdir / f"{name}.result.json", workdir / f"{name}.log"
    started = time.time()
    with open(logf, "a") as log:  # a restarted run (resume) appends: the killed run's lines stay
        proc = subprocess.Popen(
            [sys.executable, __file__, "--task", str(workdir / f"{name}.spec.json"), "--result", str(result)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=new_group,
        )  # fmt: skip
    proc.started = started
    return proc, result, logf


def collect(proc, result: Path, logf: Path, timeout: float) -> dict:
    """The task's result dict; TaskError with its log's tail if it failed or ran out of time."""
    try:
        proc.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TaskError(f"timed out after {timeout:.0f} s\n{log_tail(logf)}", timed_out=True) from None
    if proc.returncode != 0 or not result.exists():
        raise TaskError(f"exit status {proc.returncode}\n{log_tail(logf)}")
    return json.loads(result.read_text())


#: the task processes running now, by task: the JSON names them, the parent kills them when it is stopped
RUNNING: dict = {}


#: what stays of a task's directory: its workers' logs, specs, results and histories (the models go)
KEPT_SUFFIXES = (".log", ".json", ".csv")


def prune(folder: Path) -> None:
    """Delete what a task trained (models, checkpoints, features), keep what says what happened."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        if path.is_file() and path.suffix not in KEPT_SUFFIXES:
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the task and every worker it started
    except (ProcessLookupError, PermissionError):
        pass


def run_task(task: dict, workdir: Path, left_s: float, on_start=None) -> dict:
    """Run one task in its own process group; its JSON entry."""
    entry = {"timeout_s": round(min(task["timeout"], left_s)), **({"label": task["label"]} if "label" in task else {})}
    if task.get("skip"):
        return {**entry, "status": "skipped", "wall_s": 0.0, "note": task["skip"]}
    need = task.get("need_s", STARTUP_S)
    if left_s < need:  # it would be killed before it finished: its time goes to nothing
        return {**entry, "status": "skipped", "wall_s": 0.0,
                "note": f"total budget spent: {left_s:.0f} s left, the task needs {need:.0f} s with its start-up"}  # fmt: skip
    env = {}
    if task["spec"].get("engine", {}).get("deterministic") or task["spec"]["kind"] in ("resume", "determinism"):
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # cuBLAS is deterministic only with it, set before CUDA starts
    if task.get("cold_cache"):
        env["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / f"inductor-{task['name']}")
    if task["spec"].get("threads") == 1:
        env["OMP_NUM_THREADS"] = "1"
    safe = "".join(c if c.isalnum() else "_" for c in f"{task['part']}-{task['name']}")
    proc, result, logf = spawn(task["spec"], workdir, safe, env, new_group=True)
    RUNNING[proc] = {"task": f"{task['part']}/{task['name']}", "pid": proc.pid, "log": str(logf),
                     "started_at": proc.started}  # fmt: skip
    if on_start:
        on_start()
    try:
        out = collect(proc, result, logf, entry["timeout_s"])
        entry.update(status="ok", **out)
    except TaskError as err:
        entry.update(status="timeout" if err.timed_out else "failed", error=str(err)[-3000:])
    finally:
        kill_group(proc)
        RUNNING.pop(proc, None)
        entry["wall_s"] = round(time.time() - proc.started, 2)
        entry["started_at"] = proc.started  # unix time of the task process's start
        entry["pid"] = proc.pid  # = its process group
        entry["log"] = str(logf)  # kept, with its workers' logs beside it; the trained models are not
        prune(workdir / safe)
    return entry


# --- the tasks, in their own processes --------------------------------------------------------


def synthetic_images(n: int, size: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 n x size x size x 3 noise with a class-dependent colour shift (so the loss can fall)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    shift = rng.integers(0, 96, (num_classes, 1, 1, 3))
    images = rng.integers(0, 160, (n, size, size, 3), dtype=np.int64) + shift[labels]
    return images.astype(np.uint8), labels.astype(np.int64)


def tf32_flags(torch) -> dict:
    """Whether float32 matmuls and convolutions may use TF32: the switches the engine sets
    (``l2ood.inference.backend_flags``: the matmul precision, "high" = TF32, and cuDNN's allow_tf32)."""
    return {"matmul": torch.get_float32_matmul_precision(), "conv": bool(torch.backends.cudnn.allow_tf32)}


def timing_epochs(train_module, windows: list):
    """Wrap ``train_module.train_epoch`` so that ``windows`` gets each epoch's (start, end) wall time."""
    inner = train_module.train_epoch

    def wrapper(*args, **kwargs):
        start = time.time()
        row = inner(*args, **kwargs)
        windows.append((start, time.time()))
        return row

    return wrapper


def common_rate(windows: list[list[tuple[float, float]]], images: int) -> tuple[float, float] | None:
    """(images/s of all processes together, the window's seconds) over the time all of them were in
    their steady epochs (``windows``: each process's steady epochs, (start, end)): every epoch's
    ``images`` counted in proportion to its overlap with that window. None if they never overlapped."""
    lo, hi = max(w[0][0] for w in windows), min(w[-1][1] for w in windows)
    if hi <= lo:
        return None
    done = sum(images * max(0.0, min(b, hi) - max(a, lo)) / (b - a) for w in windows for a, b in w if b > a)
    return done / (hi - lo), hi - lo


def recording_flags(module, torch, record: dict):
    """Wrap ``module.backend_flags`` (``l2ood.inference``'s, which ``fit`` enters before training and
    leaves after) so that ``record`` gets the TF32 flags as ``fit`` set them, not as they were before it ran."""
    import contextlib

    inner = module.backend_flags

    @contextlib.contextmanager
    def wrapper(*args, **kwargs):
        with inner(*args, **kwargs):
            record.update(tf32_flags(torch))
            yield

    return wrapper


def peak_memory(torch, cuda: bool) -> tuple[float, str]:
    if cuda:
        return torch.cuda.max_memory_reserved() / 2**30, "cuda_reserved"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "host_max_rss"  # Linux: KiB


def task_train(spec: dict) -> dict:
    """One ``fit``; its timings, history and peak memory."""
    import torch

    from l2ood import inference
    from l2ood import train as train_module
    from l2ood.inference import resolve_engine
    from l2ood.train import fit

    torch.set_num_threads(spec["threads"])
    engine = dict(spec["engine"])
    cuda = torch.device(resolve_engine(engine)["device"]).type == "cuda"
    if spec.get("tf32") is not None:
        engine["tf32"] = spec["tf32"]
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    cfg = spec["cfg"]
    images, labels = synthetic_images(spec["n"], cfg["image_size"], cfg["num_classes"])
    if spec.get("barrier"):
        Path(spec["barrier"]["ready"]).touch()
        deadline = time.time() + 120
        while not Path(spec["barrier"]["go"]).exists():
            if time.time() > deadline:
                raise TimeoutError("no go signal within 120 s")
            time.sleep(0.005)
    tf32_state = {}  # filled in by fit's own backend_flags, once it has set them
    inference.backend_flags = recording_flags(inference, torch, tf32_state)  # what fit's engine_flags calls
    epoch_windows = []  # each epoch's (start, end): the concurrency part's common window
    train_module.train_epoch = timing_epochs(train_module, epoch_windows)
    fit_start = time.time()
    history = fit(cfg, images, labels, spec["out_dir"], seed=spec["seed"], engine=engine)
    fit_end = time.time()
    model_mtime = os.stat(Path(spec["out_dir"]) / "model.pt").st_mtime
    steady = [r["images_per_s"] for r in history[1:]] or [history[0]["images_per_s"]]
    ips = float(np.median(steady))
    memory, kind = peak_memory(torch, cuda)
    return {
        "device_name": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "images": spec["n"], "epochs": len(history), "batch": cfg["recipe"]["batch_size"],
        "images_per_s": ips, "epoch_s": spec["n"] / ips, "first_epoch_s": history[0]["seconds"],
        "first_epoch_overhead_s": history[0]["seconds"] - spec["n"] / ips,
        "process_start": PROCESS_START, "setup_s": fit_start - PROCESS_START, "fit_s": fit_end - fit_start,
        "model_mtime": model_mtime, "tf32": tf32_state, "epoch_windows": epoch_windows,
        "peak_memory_gib": memory, "memory_kind": kind, "final_loss": history[-1]["loss"],
        "losses": [r["loss"] for r in history], "engine": engine,
    }  # fmt: skip


def weights(out_dir) -> dict:
    import torch

    return torch.load(Path(out_dir) / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


def max_abs_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


def task_resume(spec: dict, workdir: Path) -> dict:
    """An uninterrupted run and one SIGKILLed after its second checkpoint, then restarted."""
    import torch

    ref = spawn(spec["train"], workdir, "ref")
    cut = spawn(spec["train"], workdir, "cut")
    ckpt = workdir / "cut" / "checkpoint.pt"
    seen, deadline = set(), time.time() + 300
    while cut[0].poll() is None and time.time() < deadline:
        try:
            st = os.stat(ckpt)
            seen.add((st.st_ino, st.st_mtime_ns, st.st_size))  # written anew (tmp + rename) after each epoch
        except FileNotFoundError:
            pass
        if len(seen) >= 2:
            cut[0].send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    cut[0].wait()
    if cut[0].returncode == 0:
        raise TaskError(
            f"the run finished before it could be killed ({len(seen)} checkpoint(s) seen): the engine wrote no "
            f"checkpoint per epoch (engine {spec['train']['engine']}), or the epochs are too short to catch"
        )
    try:  # for the report only: the checkpoint's layout is the engine's business
        killed_at = int(torch.load(ckpt, map_location="cpu", weights_only=True)["state"]["epoch"])
    except (OSError, KeyError, TypeError, RuntimeError):
        killed_at = None
    restart_start = time.time()
    resumed = collect(*spawn(spec["train"], workdir, "cut"), timeout=300)
    restart_s = time.time() - restart_start
    uninterrupted = collect(*ref, timeout=300)
    w_diff = max_abs_diff(weights(workdir / "ref"), weights(workdir / "cut"))
    la, lb = np.array(uninterrupted["losses"]), np.array(resumed["losses"])
    if la.shape != lb.shape:
        raise TaskError(f"the resumed run's history has {len(lb)} epochs, the uninterrupted run's {len(la)}")
    l_diff = float(np.max(np.abs(la - lb) / np.maximum(np.abs(la), 1e-12)))
    return {
        "epochs": spec["train"]["cfg"]["recipe"]["epochs"], "images": spec["train"]["n"], "killed_at_epoch": killed_at,
        "checkpoints_seen": len(seen), "restart_s": restart_s, "max_abs_weight_diff": w_diff,
        "max_rel_loss_diff": l_diff, "atol": RESUME_ATOL, "rtol": RESUME_RTOL,
        "matches": bool(w_diff <= RESUME_ATOL and l_diff <= RESUME_RTOL), "engine": spec["train"]["engine"],
        "device_name": uninterrupted["device_name"],
    }  # fmt: skip


def task_determinism(spec: dict, workdir: Path) -> dict:
    """Each engine's pair of same-seed runs, all at once; the largest weight difference within a pair."""
    procs = {(name, i): spawn(s, workdir, f"{name}{i}") for name, s in spec["runs"].items() for i in (0, 1)}
    results = {key: collect(*p, timeout=300) for key, p in procs.items()}
    out = {}
    for name in spec["runs"]:
        d = max_abs_diff(weights(workdir / f"{name}0"), weights(workdir / f"{name}1"))
        out[name] = {"identical": d == 0.0, "max_abs_weight_diff": d}
    return {**out, "device_name": results[(next(iter(spec["runs"])), 0)]["device_name"]}


def task_concurrent(spec: dict, workdir: Path) -> dict:
    """``processes`` copies of one run, released together; aggregate images/s of their steady epochs."""
    k = spec["processes"]
    go = workdir / "go"
    procs = []
    for i in range(k):
        barrier = {"ready": str(workdir / f"ready{i}"), "go": str(go)}
        procs.append(spawn({**spec["train"], "barrier": barrier}, workdir, f"p{i}"))
    deadline = time.time() + 240
    while not all((workdir / f"ready{i}").exists() for i in range(k)):
        if any(p[0].poll() is not None for p in procs) or time.time() > deadline:
            for p in procs:
                p[0].kill()
            raise TaskError(
                "a process died or stalled before the start:\n" + "\n".join(log_tail(p[2], 8) for p in procs)
            )
        time.sleep(0.01)
    start = time.time()
    go.touch()
    results = [collect(*p, timeout=600) for p in procs]
    per = [r["images_per_s"] for r in results]
    # not a sum of per-process medians (each process's steady epochs fall in different windows, some
    # of them with fewer processes running): the rate of all of them while all were in steady epochs
    steady = [r["epoch_windows"][1:] or r["epoch_windows"] for r in results]
    common, epochs = common_rate(steady, results[0]["images"]), "steady"
    if common is None:  # short epochs out of step (a loaded CPU): every epoch, the first ones included
        common, epochs = common_rate([r["epoch_windows"] for r in results], results[0]["images"]), "all"
    if common is None:
        raise TaskError(f"the {k} processes' epochs never ran at the same time: no common window")
    return {
        "processes": k, "aggregate_images_per_s": common[0], "common_window_s": common[1], "window_epochs": epochs,
        "per_process_images_per_s": per,
        "fit_wall_s": max(r["process_start"] + r["setup_s"] + r["fit_s"] for r in results) - start,
        "peak_memory_gib": max(r["peak_memory_gib"] for r in results), "memory_kind": results[0]["memory_kind"],
        "batch": results[0]["batch"], "images": results[0]["images"], "epochs": results[0]["epochs"],
        "device_name": results[0]["device_name"],
    }  # fmt: skip


def die_with_parent() -> None:
    """Linux: this process is SIGKILLed when the process (thread) that started it dies, so that a killed
    gpu_check leaves no task training on the GPU (a task's own workers follow it the same way)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def task_main(spec_path: str, result_path: str) -> None:
    import logging

    die_with_parent()
    # the engine's epoch lines (l2ood.train) go to this task's log, which gpu_check keeps
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    spec = json.loads(Path(spec_path).read_text())
    started = time.time() - PROCESS_START
    print(f"task {spec['kind']} ({spec_path}), started {started:.1f} s after its process", flush=True)
    workdir = Path(spec["out_dir"])
    kinds = {"train": task_train, "resume": lambda s: task_resume(s, workdir),
             "determinism": lambda s: task_determinism(s, workdir), "concurrent": lambda s: task_concurrent(s, workdir)}  # fmt: skip
    try:
        out = kinds[spec["kind"]](spec)
    except TaskError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    tmp = Path(result_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, result_path)


# --- the report -------------------------------------------------------------------------------


def assemble(tasks: list[dict], entries: list[dict | None], smoke: bool, started: str, total: float) -> dict:
    """The report of the tasks finished so far (``None``: not finished; listed in ``pending``)."""
    import torch

    from l2ood.engine import ENGINE_DEFAULTS

    parts = {part: {} for part in PARTS}
    pending = [f"{t['part']}/{t['name']}" for t, e in zip(tasks, entries) if e is None]
    for task, entry in zip(tasks, entries):
        if entry is None:
            continue
        if task.get("spec") and "run" in task["spec"]:
            entry = {"run": task["spec"]["run"], **entry}
        if task["part"] in ("full60", "resume", "determinism"):
            parts[task["part"]] = entry
        elif task["part"] == "concurrency":
            key, k = task["name"].split("|")
            parts["concurrency"].setdefault(key, {})[k] = entry
        else:
            parts[task["part"]][task["name"]] = entry
    full = parts["full60"]
    if full.get("status") == "ok":  # timed from the start of the process that trains to model.pt's last write
        full.update(start_to_model_s=full["model_mtime"] - full["started_at"], bar_s=BAR_S)
        full["meets_bar"] = bool(full["start_to_model_s"] <= BAR_S)
    default = parts["switches"].get(DEFAULT_ROW, {})
    for row, e in parts["switches"].items():
        if row.startswith("compile_") and e.get("status") == "ok" and default.get("status") == "ok":
            e["compile_s"] = e["first_epoch_overhead_s"] - default["first_epoch_overhead_s"]
    names = [e["device_name"] for e in entries if e and e.get("status") == "ok" and "device_name" in e]
    return {
        "schema": 1, "smoke": smoke, "gpu": names[0] if names else None,
        "device": "cpu" if smoke or not names or names[0].startswith("cpu") else "cuda",
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "started": started, "total_s": round(total, 1), "engine_options": sorted(ENGINE_DEFAULTS),
        "complete": not pending, "pending": pending, "running": sorted(list(RUNNING.values()), key=lambda r: r["task"]),
        "found": found_line(),
        "throughput": {k: e["images_per_s"] for k, e in parts["recipes"].items() if e.get("status") == "ok"},
        "parts": parts,
    }  # fmt: skip


def fmt(v, spec=",.0f", missing="-"):
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else missing


def status_of(e: dict) -> str:
    return e.get("status", "-") if e.get("status") != "ok" else "ok"


def not_ok_line(part: dict) -> str:
    """A part that did not run to the end: its status and the start of its error (or note)."""
    if not part:
        return "not run (not among --parts, or not finished: see the JSON's pending)"
    return f"{status_of(part)}: {part.get('error', part.get('note', ''))[:600]}"


def summary(report: dict) -> str:
    p, out = report["parts"], []
    out.append(f"GPU check on {report['gpu']}: torch {report['torch']}, CUDA {report['cuda']}, cuDNN {report['cudnn']}; "
               f"{report['total_s']:.0f} s{' (smoke: the figures mean nothing)' if report['smoke'] else ''}\n")  # fmt: skip
    f = p["full60"]
    out.append("## 1. ResNet18-L2 60 epochs (full60)\n")
    if f.get("status") == "ok":
        out.append(f"{f['run']}: {f['images']:,} images x {f['epochs']} epochs at batch {f['batch']}: "
                   f"{f['start_to_model_s']:.1f} s from process start to model.pt (bar {BAR_S} s: "
                   f"{'met' if f['meets_bar'] else 'NOT met'}); setup {f['setup_s']:.1f} s, fit {f['fit_s']:.1f} s, "
                   f"first epoch {f['first_epoch_s']:.2f} s, steady {f['images_per_s']:,.0f} images/s, "
                   f"peak {f['peak_memory_gib']:.1f} GiB ({f['memory_kind']})")  # fmt: skip
    else:
        out.append(not_ok_line(f))
    r = p["resume"]
    out.append("\n## 2. Resume after SIGKILL\n")
    if r.get("status") == "ok":
        out.append(f"killed at epoch {r['killed_at_epoch']} of {r['epochs']}, restarted ({r['restart_s']:.1f} s): "
                   f"max |weight difference| {r['max_abs_weight_diff']:.3g} (tolerance {r['atol']:g}), max relative "
                   f"loss difference {r['max_rel_loss_diff']:.3g} (tolerance {r['rtol']:g}): "
                   f"{'matches' if r['matches'] else 'DOES NOT MATCH'}")  # fmt: skip
    else:
        out.append(not_ok_line(r))
    d = p["determinism"]
    out.append("\n## 3. Determinism (same seed twice, at the same time)\n")
    if d.get("status") == "ok":
        for name in ("deterministic", "default"):
            out.append(f"- {name} engine: {'identical' if d[name]['identical'] else 'different'} weights "
                       f"(max |difference| {d[name]['max_abs_weight_diff']:.3g})")  # fmt: skip
    else:
        out.append(not_ok_line(d))
    out.append("\n## 4. Per-recipe throughput (one steady epoch)\n")
    out.append("| model@px/batch | run | images/s | peak GiB | status |\n|---|---|---|---|---|")
    for key, e in p["recipes"].items():
        out.append(f"| {key} | {e.get('run', '')} | {fmt(e.get('images_per_s'))} | {fmt(e.get('peak_memory_gib'), '.1f')} "
                   f"| {status_of(e)} |")  # fmt: skip
    out.append("\n## 5. Speed switches (ResNet18-L2, batch 1024)\n")
    out.append(
        "| engine | images/s | first-epoch overhead s | compile s | peak GiB | status |\n|---|---|---|---|---|---|"
    )
    for e in p["switches"].values():
        out.append(f"| {e.get('label')} | {fmt(e.get('images_per_s'))} | {fmt(e.get('first_epoch_overhead_s'), '.1f')} "
                   f"| {fmt(e.get('compile_s'), '.1f')} | {fmt(e.get('peak_memory_gib'), '.1f')} | {status_of(e)} |")  # fmt: skip
    out.append("\n## 6. Concurrent processes on one GPU\n")
    out.append("| model@px/batch | processes | aggregate images/s | per process | peak GiB (one) | status |\n"
               "|---|---|---|---|---|---|")  # fmt: skip
    for key, levels in p["concurrency"].items():
        for k, e in levels.items():
            per = ", ".join(fmt(v) for v in e.get("per_process_images_per_s", []))
            out.append(f"| {key} | {k} | {fmt(e.get('aggregate_images_per_s'))} | {per} | "
                       f"{fmt(e.get('peak_memory_gib'), '.1f')} | {status_of(e)} |")  # fmt: skip
    failed = [
        f"{t}: {e['error'].splitlines()[0]}"
        for t, e in flat_entries(report)
        if e.get("status") in ("failed", "timeout")
    ]
    if failed:
        out.append("\nFailed tasks (their log tails are in the JSON):\n" + "\n".join(f"- {x}" for x in failed))
    return "\n".join(out)


def flat_entries(report: dict):
    """(name, task entry) for every task of the report."""
    p = report["parts"]
    for name in ("full60", "resume", "determinism"):
        yield name, p[name]
    for part in ("recipes", "switches"):
        for key, e in p[part].items():
            yield f"{part}/{key}", e
    for key, levels in p["concurrency"].items():
        for k, e in levels.items():
            yield f"concurrency/{key}/{k}", e


def finite(value, path: str, found: list):
    """``value`` with NaN and infinities replaced by None (JSON has neither); their paths go to ``found``."""
    if isinstance(value, dict):
        return {k: finite(v, f"{path}/{k}", found) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v, f"{path}/{i}", found) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        found.append(path)
        return None
    return value


def found_line() -> str:
    """What this machine has, for the first line of the output: Python, torch, torchvision, the GPU."""
    import torch

    try:
        import torchvision

        vision = torchvision.__version__
    except ImportError:
        vision = "absent"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU only)"
    return (f"Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"torchvision {vision}, numpy {np.__version__}; GPU: {gpu}")  # fmt: skip


def write_json(report: dict, json_path: Path) -> None:
    """Atomically: a reader (or a kill) finds the previous complete file or this one, never half of one."""
    report["non_finite"] = []
    report = finite(report, "", report["non_finite"])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(f".{json_path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False))
    os.replace(tmp, json_path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", help=f"where the JSON goes (default: $OUT/gpu_check.json, else {DEFAULT_JSON})")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny models and sizes: check that every part runs")
    ap.add_argument("--budget", type=float, help=f"total seconds for the tasks (default {BUDGET_S}; smoke 1800)")
    ap.add_argument("--parts", help=f"comma-separated parts to run (default all): {','.join(PARTS)}")
    ap.add_argument(
        "--jobs", type=int, help="tasks at once (default 1; smoke 2); more than 1 on a GPU spoils the timings"
    )
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.task:
        return task_main(args.task, args.result)

    json_path = Path(
        args.json or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else DEFAULT_JSON)
    )
    print(f"gpu_check: {found_line()}", flush=True)  # first: what this machine has
    budget = args.budget or (1800 if args.smoke else BUDGET_S)
    tasks = plan(args, load_config())
    if args.parts:
        keep = set(args.parts.split(","))
        if keep - set(PARTS):
            ap.error(f"unknown part(s) {sorted(keep - set(PARTS))}; choose from {','.join(PARTS)}")
        tasks = [t for t in tasks if t["part"] in keep]
    started, t0 = datetime.datetime.now().isoformat(timespec="seconds"), time.time()
    # every task's log (and its workers') is kept beside the JSON; the models they train are not
    workdir = json_path.with_name(f"{json_path.stem}-logs")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    entries: list[dict | None] = [None] * len(tasks)
    lock = threading.RLock()

    def save():  # after every task: a kill at any moment leaves every task finished so far
        with lock:
            write_json(assemble(tasks, entries, args.smoke, started, time.time() - t0), json_path)

    def stop(signum, frame):  # the JSON is up to date; the running tasks' processes go with this one
        for proc in list(RUNNING):
            kill_group(proc)
        save()
        print(f"\nstopped by signal {signum}: {json_path} has every task finished so far", flush=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def one(i):
        task = tasks[i]
        entry = run_task(task, workdir, budget - (time.time() - t0), on_start=save)
        entries[i] = entry
        save()
        print(f"[{time.time() - t0:5.0f} s] {task['part']}/{task['name']}: {entry['status']} ({entry['wall_s']:.1f} s)",
              flush=True)  # fmt: skip

    save()  # at once: the machine and the pending tasks, before the first one finishes
    jobs = args.jobs or (2 if args.smoke else 1)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:  # each task is a process; a thread waits on it
        list(pool.map(one, range(len(tasks))))
    report = json.loads(json_path.read_text())
    print("\n" + summary(report) + f"\n\nJSON: {json_path}\nlogs: {workdir}")


if __name__ == "__main__":
    main()
