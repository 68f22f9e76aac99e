"""How much training a study asks for: jobs, epochs and an estimate of GPU hours.

    python -m l2ood.plan paper          # (PYTHONPATH=workflow) a table per run and the totals

The per-model speeds below are ESTIMATES for one H100 with the package's fast path (uint8 data
on the GPU, bf16, channels-last), scaled from the training engine's target (a 60-epoch CIFAR-10
ResNet18 run in about one minute) by each model's relative cost. They are not
measured: run ``benchmarks/gpu_check.py`` on a GPU and correct them. The cluster profile's
``runtime`` request is derived from them with a 3x margin.
"""

import math
import sys

from .config import run_recipe, run_spec, study_runs

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
#: training images per data set kind
TRAIN_IMAGES = {"digits": 585, "cifar10": 50_000, "cifar100": 50_000, "gtsrb": 26_640, "tinyimagenet": 100_000}


def epoch_seconds(config: dict, run: str) -> float:
    """Estimated GPU seconds for one epoch of ``run``."""
    spec = config["runs"][run]
    ds = config["datasets"][spec["dataset"]]
    recipe = run_recipe(config, run)
    per_kimg = SECONDS_PER_KIMG.get(spec["model"], 0.05) * (ds["image_size"] / 32) ** 2
    factor = SMALL_BATCH_FACTOR if recipe["batch_size"] < 256 else 1.0
    return TRAIN_IMAGES.get(ds["kind"], 50_000) / 1000 * per_kimg * factor


def run_minutes(config: dict, run: str) -> float:
    """Estimated GPU minutes of one seed of ``run`` (all epochs)."""
    return run_recipe(config, run)["epochs"] * epoch_seconds(config, run) / 60


def runtime_request(config: dict, run: str) -> int:
    """Minutes to ask a cluster for: 3x the estimate plus 10 minutes for start-up and inference."""
    return int(math.ceil(3 * run_minutes(config, run) + 10))


def summary(config: dict, study: str):
    import pandas as pd

    rows = []
    for run in study_runs(config, study):
        seeds = run_spec(config, run)["seeds"]
        rows.append({"run": run, "seeds": seeds, "epochs": run_recipe(config, run)["epochs"],
                     "gpu_hours": seeds * run_minutes(config, run) / 60})  # fmt: skip
    return pd.DataFrame(rows)


if __name__ == "__main__":
    import yaml

    study = sys.argv[1] if len(sys.argv) > 1 else "paper"
    with open(sys.argv[2] if len(sys.argv) > 2 else "config.yaml") as f:
        cfg = yaml.safe_load(f)
    df = summary(cfg, study)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\n{study}: {len(df)} runs, {df.seeds.sum()} training jobs, {(df.seeds * df.epochs).sum()} epochs, "
          f"about {df.gpu_hours.sum():.0f} GPU hours (estimate, one H100 per job)")  # fmt: skip
