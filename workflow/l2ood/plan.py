"""How much training a study asks for: jobs, epochs and an estimate of GPU hours.

    python -m l2ood.plan paper                  # a line per run and the totals, from the repository's config.yaml
    python -m l2ood.plan demo my-config.yaml    # another config file

Measured where a GPU has measured: ``benchmarks/gpu_check.py`` run on a GPU writes
``benchmarks/gpu_check.json``, whose ``throughput`` (training images/s of one job, by model,
image size and batch) replaces the estimate of every run it covers. Otherwise the per-model
speeds below are ESTIMATES for one H100 with the package's fast path (uint8 data on the GPU,
channels-last), scaled from the training engine's target (a 60-epoch CIFAR-10 ResNet18 run in
about one minute) by each model's relative cost. The cluster profile's ``runtime`` request is
derived from either with a 3x margin.
"""

import functools
import json
import math
import sys
from pathlib import Path

from .config import run_recipe, run_spec, seeds, study_runs

#: what benchmarks/gpu_check.py measured on a GPU (absent until a session with a GPU commits it)
MEASURED_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.json"
#: the repository's config.yaml (the package is installed editable from ``workflow/``)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"

#: estimated GPU seconds per 1,000 training images at 32 x 32 (scales with pixels)
SECONDS_PER_KIMG = {
    "smallcnn": 0.002,
    "resnet18": 0.02,
    "resnet50": 0.06,
    "vgg16": 0.015,
    "convnext_tiny": 0.04,
    "cct_7_3x1": 0.08,
}
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


def epoch_seconds(config: dict, run: str, measured: dict | None = None) -> float:
    """GPU seconds for one epoch of ``run``: measured (``measured``, default ``measured_throughput()``)
    where its model, image size and batch were, else estimated."""
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
    per_kimg = SECONDS_PER_KIMG.get(spec["model"], 0.05) * (ds["image_size"] / 32) ** 2
    factor = SMALL_BATCH_FACTOR if recipe["batch_size"] < 256 else 1.0
    return images / 1000 * per_kimg * factor


def run_minutes(config: dict, run: str, measured: dict | None = None) -> float:
    """GPU minutes of one seed of ``run`` (all epochs), measured or estimated (``epoch_seconds``)."""
    return run_recipe(config, run)["epochs"] * epoch_seconds(config, run, measured) / 60


def runtime_request(config: dict, run: str) -> int:
    """Minutes to ask a cluster for: 3x the estimate plus 10 minutes for start-up and inference."""
    return int(math.ceil(3 * run_minutes(config, run) + 10))


def summary(config: dict, study: str, measured: dict | None = None):
    """One row per run of ``study``: seeds, epochs, GPU hours and whether they are measured."""
    import pandas as pd

    measured = measured_throughput() if measured is None else measured
    rows = []
    for run in study_runs(config, study):
        spec, recipe = run_spec(config, run), run_recipe(config, run)
        key = throughput_key(spec["model"], config["datasets"][spec["dataset"]]["image_size"], recipe["batch_size"])
        n_seeds = len(seeds(config, run))  # `seeds:` is a count or a list
        hours = n_seeds * run_minutes(config, run, measured) / 60
        on_gpu = spec["gpus"] > 0  # the demo's runs are CPU-sized (gpus: 0): their hours are CPU hours
        speed = ("measured" if key in measured else "estimate") if on_gpu else "CPU, measured"
        rows.append({"run": run, "seeds": n_seeds, "epochs": recipe["epochs"],
                     "gpu_hours": hours if on_gpu else 0.0, "cpu_hours": 0.0 if on_gpu else hours,
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
    on_gpu = {r: run_spec(config, r)["gpus"] > 0 for r in by_run}
    gpu, cpu = (sum(m for r, m in minutes.items() if on_gpu[r] == g) for g in (True, False))
    runs = "; ".join(f"{r} ({_seed_ranges(s)})" for r, s in by_run.items())
    cost = []
    if gpu:
        cost.append(f"about {_duration(gpu)} of GPU time (one GPU per job; `python -m l2ood.plan` for details)")
    if cpu:
        cost.append(f"about {_duration(cpu)} of CPU time for one core (measured; jobs run in parallel with --cores)")
    text = " and ".join(cost)
    return f"Training {len(jobs)} jobs, {epochs} epochs: {runs}. {text[0].upper()}{text[1:]}."


if __name__ == "__main__":
    import yaml

    study = sys.argv[1] if len(sys.argv) > 1 else "paper"
    with open(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_CONFIG) as f:
        cfg = yaml.safe_load(f)
    df = summary(cfg, study)
    cpu = f", {df.cpu_hours.sum() * 60:.1f} CPU minutes for one core (measured)" if df.cpu_hours.any() else ""
    if not df.cpu_hours.any():
        df = df.drop(columns="cpu_hours")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    n_measured = int((df.speed == "measured").sum())
    basis = f"{n_measured} of {len(df)} runs measured ({MEASURED_JSON.name})" if n_measured else "estimate"
    gpu = f"about {df.gpu_hours.sum():.0f} GPU hours ({basis}, one GPU per job)" if df.gpu_hours.any() else ""
    print(f"\n{study}: {len(df)} runs, {df.seeds.sum()} training jobs, {(df.seeds * df.epochs).sum()} epochs, "
          + ", ".join(x for x in (gpu, cpu.lstrip(", ")) if x))  # fmt: skip
