"""How much training a study asks for: jobs, epochs and an estimate of GPU hours.

    python -m l2ood.plan paper                  # a line per run and the totals, from the repository's config.yaml
    python -m l2ood.plan demo my-config.yaml    # another config file

Measured where a GPU has measured: ``benchmarks/gpu_check.py`` run on a GPU writes
``benchmarks/gpu_check.json``, whose ``throughput`` (training images/s of one job, by model,
image size and batch) replaces the estimate of every run it covers. Until then the GPU figures
are a RANGE from first principles (``ESTIMATE_BASIS``): each model's training FLOPs per image
(``TRAIN_GFLOP_PER_IMAGE``) at the effective float32 + TF32 speed of one H100-class GPU
(``EFFECTIVE_TFLOPS``, a fast and a slow end). The cluster profile's ``runtime`` request is
derived from the measured speed or the slow end with a 3x margin.
"""

import functools
import json
import math
import sys
from pathlib import Path

from .config import is_external, run_recipe, run_spec, seeds, study_runs

#: what benchmarks/gpu_check.py measured on a GPU (absent until a session with a GPU commits it)
MEASURED_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.json"
#: the repository's config.yaml (the package is installed editable from ``workflow/``)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"

#: training GFLOP per 32 x 32 image, one forward and backward pass of this package's model (torch's
#: FlopCounterMode on a CPU, the paper's model_kwargs; tests/test_plan.py counts them again); scales with pixels
TRAIN_GFLOP_PER_IMAGE = {
    "resnet18": 5.49,
    "resnet50": 9.50,
    "vgg16": 3.13,
    "convnext_tiny": 1.73,
    "cct_7_3x1": 7.08,
}
#: a model not in the table: about ResNet50's
DEFAULT_TRAIN_GFLOP = 10.0
#: effective TFLOP/s of one H100-class GPU training these small-image models in float32 with TF32
#: (the engine's default), fast and slow end: a quarter to a third of TF32's ~500 dense peak, as
#: batch-norm, ReLU and optimizer kernels bound by memory take much of each step. Not measured.
EFFECTIVE_TFLOPS = {"fast": 180.0, "slow": 120.0}
#: what the GPU-hour range rests on until benchmarks/gpu_check.json has measured
ESTIMATE_BASIS = (
    "training FLOPs per image at an effective 120-180 TFLOP/s (float32 + TF32, one "
    "H100-class GPU), half that at batches under 256; ResNet18 60 epochs on CIFAR-10: 90-140 s"
)
#: batches under 256 keep a GPU busy for less of the time (LogitNorm+ and CCT use 128)
SMALL_BATCH_FACTOR = 2.0
#: MEASURED CPU seconds per 1,000 training images of the CPU-sized runs (``gpus: 0``, the demo): the
#: default smallcnn on 8 x 8 digits, one thread, on the 2-core machine the package is developed on
#: (history.csv's images_per_s: 3,000 to 5,000 per second when the machine is otherwise idle, 1,200 to
#: 1,900 at a load average of 10)
CPU_SECONDS_PER_KIMG = {"smallcnn": 0.3}
#: training images per data set kind
TRAIN_IMAGES = {"digits": 585, "cifar10": 50_000, "cifar100": 50_000, "gtsrb": 26_640, "tinyimagenet": 100_000}


def throughput_key(model: str, image_size: int, batch_size: int) -> str:
    """``"<model>@<image size>/b<batch size>"`` (``"resnet50@64/b512"``): how gpu_check.json keys
    its ``throughput``, by what a job's speed depends on."""
    return f"{model}@{image_size}/b{batch_size}"


def measured_throughput(path=None) -> dict:
    """``{throughput_key: images/s}`` from gpu_check's JSON (``MEASURED_JSON`` by default); empty
    when there is none, or it is a smoke run's or a CPU's (their figures say nothing of a GPU)."""
    path = Path(MEASURED_JSON if path is None else path)
    if not path.exists():
        return {}
    return dict(_read_measured(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)  # read once per parse, not once per job (runtime_request)
def _read_measured(path: str, mtime_ns: int) -> tuple:
    data = json.loads(Path(path).read_text())
    if data.get("smoke") or data.get("device") != "cuda":
        return ()
    return tuple((k, float(v)) for k, v in (data.get("throughput") or {}).items() if v and v > 0)


def epoch_seconds(config: dict, run: str, measured: dict | None = None, end: str = "slow") -> float:
    """GPU seconds for one epoch of ``run``: measured (``measured``, default ``measured_throughput()``)
    where its model, image size and batch were, else estimated at the ``end`` ("fast" or "slow") of
    ``EFFECTIVE_TFLOPS``."""
    spec = config["runs"][run]
    ds = config["datasets"][spec["dataset"]]
    recipe = run_recipe(config, run)
    images = TRAIN_IMAGES.get(ds["kind"], 50_000)
    if run_spec(config, run)["gpus"] == 0 and spec["model"] in CPU_SECONDS_PER_KIMG:  # CPU seconds, measured
        return images / 1000 * CPU_SECONDS_PER_KIMG[spec["model"]]
    measured = measured_throughput() if measured is None else measured
    key = throughput_key(spec["model"], ds["image_size"], recipe["batch_size"])
    if key in measured:
        return images / measured[key]
    gflop = TRAIN_GFLOP_PER_IMAGE.get(spec["model"], DEFAULT_TRAIN_GFLOP) * (ds["image_size"] / 32) ** 2
    factor = SMALL_BATCH_FACTOR if recipe["batch_size"] < 256 else 1.0
    return images * gflop / (1000 * EFFECTIVE_TFLOPS[end]) * factor


def run_minutes(config: dict, run: str, measured: dict | None = None, end: str = "slow") -> float:
    """GPU minutes of one seed of ``run`` (all epochs), measured or estimated (``epoch_seconds``)."""
    return run_recipe(config, run)["epochs"] * epoch_seconds(config, run, measured, end) / 60


def runtime_request(config: dict, run: str) -> int:
    """Minutes to ask a cluster for: 3x the measured time or the estimate's slow end, plus 10 minutes
    for start-up and inference."""
    return int(math.ceil(3 * run_minutes(config, run) + 10))


def summary(config: dict, study: str, measured: dict | None = None):
    """One row per run of ``study``: seeds, epochs, GPU hours (``gpu_hours``: measured or the estimate's
    slow end; ``gpu_hours_fast``: its fast end) and whether they are measured."""
    import pandas as pd

    measured = measured_throughput() if measured is None else measured
    rows = []
    for run in study_runs(config, study):
        if is_external(config, run):  # evaluated from its `weights:`, not trained
            continue
        spec, recipe = run_spec(config, run), run_recipe(config, run)
        key = throughput_key(spec["model"], config["datasets"][spec["dataset"]]["image_size"], recipe["batch_size"])
        n_seeds = len(seeds(config, run))  # `seeds:` is a count or a list
        hours = n_seeds * run_minutes(config, run, measured) / 60
        fast = n_seeds * run_minutes(config, run, measured, "fast") / 60
        on_gpu = spec["gpus"] > 0  # the demo's runs are CPU-sized (gpus: 0): their hours are CPU hours
        speed = ("measured" if key in measured else "estimate") if on_gpu else "CPU, measured"
        rows.append({"run": run, "seeds": n_seeds, "epochs": recipe["epochs"],
                     "gpu_hours": hours if on_gpu else 0.0, "gpu_hours_fast": fast if on_gpu else 0.0,
                     "cpu_hours": 0.0 if on_gpu else hours,
                     "speed": speed})  # fmt: skip
    return pd.DataFrame(rows)


def _seed_ranges(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _duration(minutes: float) -> str:
    if minutes < 1.5:
        return f"{minutes * 60:.0f} s"
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def start_line(config: dict, jobs: list[tuple[str, int]]) -> str:
    """What a workflow invocation is about to train, in one line for the terminal: the runs with their
    seeds, the epochs and the time (GPU runs: the sum over jobs of one GPU each, measured or estimated
    as ``summary``; CPU runs: as measured on the development machine).

    ``jobs``: the (run, seed) of each training job that will run (none: nothing to train).
    """
    if not jobs:
        return "Nothing to train: every model is there; evaluating, tables and figures only."
    by_run: dict[str, list[int]] = {}
    for run, seed in jobs:
        by_run.setdefault(run, []).append(int(seed))
    measured = measured_throughput()
    epochs = sum(run_recipe(config, r)["epochs"] * len(s) for r, s in by_run.items())
    minutes = {r: run_minutes(config, r, measured) * len(s) for r, s in by_run.items()}
    fast = {r: run_minutes(config, r, measured, "fast") * len(s) for r, s in by_run.items()}
    on_gpu = {r: run_spec(config, r)["gpus"] > 0 for r in by_run}
    gpu, cpu = (sum(m for r, m in minutes.items() if on_gpu[r] == g) for g in (True, False))
    gpu_fast = sum(m for r, m in fast.items() if on_gpu[r])
    runs = "; ".join(f"{r} ({_seed_ranges(s)})" for r, s in by_run.items())
    cost = []
    if gpu:
        span = _duration(gpu) if _duration(gpu_fast) == _duration(gpu) else f"{_duration(gpu_fast)} to {_duration(gpu)}"
        cost.append(f"about {span} of GPU time (one GPU per job; `python -m l2ood.plan` for details)")
    if cpu:
        cost.append(f"about {_duration(cpu)} of CPU time for one core (measured; jobs run in parallel with --cores)")
    text = " and ".join(cost)
    return f"Training {len(jobs)} jobs, {epochs} epochs: {runs}. {text[0].upper()}{text[1:]}."


def hours_range(df) -> str:
    """``"29-44"`` (``"0.8-1.1"`` under 10): the GPU hours of ``summary``'s rows, fast to slow end (one
    number where everything is measured)."""
    digits = 0 if df.gpu_hours.sum() >= 10 else 1
    fast, slow = (f"{df[c].sum():.{digits}f}" for c in ("gpu_hours_fast", "gpu_hours"))
    return slow if fast == slow else f"{fast}-{slow}"


def main(argv=None) -> None:
    import argparse

    import yaml

    ap = argparse.ArgumentParser(
        prog="python -m l2ood.plan",
        description="A study's training: a line per run (seeds, epochs, GPU hours) and the totals.",
        epilog=f"GPU hours, until benchmarks/gpu_check.py has measured, are estimated from {ESTIMATE_BASIS}.",
    )
    ap.add_argument("study", nargs="?", default="paper", help="a study of the config (default: paper)")
    ap.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help=f"config file (default: {DEFAULT_CONFIG})")
    args = ap.parse_args(argv)
    try:
        with open(args.config) as f:
            cfg = yaml.safe_load(f)
    except OSError as err:
        ap.error(f"cannot read the config file {args.config}: {err.strerror}; give the path of a config.yaml")
    studies = sorted((cfg or {}).get("studies", {}))
    if args.study not in studies:
        ap.error(f"no study {args.study!r} in {args.config}; its studies: {', '.join(studies)}")
    df = summary(cfg, args.study)
    cpu = f", {df.cpu_hours.sum() * 60:.1f} CPU minutes for one core (measured)" if df.cpu_hours.any() else ""
    shown = df.drop(columns="gpu_hours_fast")
    if df.gpu_hours.any():  # fast to slow end, as the totals
        pairs = zip(df.gpu_hours_fast, df.gpu_hours)
        shown["gpu_hours"] = [f"{a:.2f}" if a == b else f"{a:.2f}-{b:.2f}" for a, b in pairs]
    if not df.cpu_hours.any():
        shown = shown.drop(columns="cpu_hours")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    n_measured = int((df.speed == "measured").sum())
    basis = f"{n_measured} of {len(df)} runs measured ({MEASURED_JSON.name})" if n_measured else "estimate"
    gpu = f"about {hours_range(df)} GPU hours ({basis}, one GPU per job)" if df.gpu_hours.any() else ""
    print(f"\n{args.study}: {len(df)} runs, {df.seeds.sum()} training jobs, {(df.seeds * df.epochs).sum()} epochs, "
          + ", ".join(x for x in (gpu, cpu.lstrip(", ")) if x))  # fmt: skip
    if n_measured < len(df) and df.gpu_hours.any():
        print(f"GPU hours not measured yet, estimated from {ESTIMATE_BASIS}")


if __name__ == "__main__":
    main()
