"""GPU check of the training engine: speed switches, bf16 against float32, determinism. One call.

Trains the paper's CIFAR-10 ResNet18 (config.yaml's ``cifar10-resnet18-l2-sgd60``: width 64,
L2 head, spectral normalization, SGD at batch 1024, zero-pad crop + flip on the device) with
``l2ood.train.fit`` itself, on random CIFAR-10-sized data, and prints:

1. speed: training images/s of the engine's CUDA default (bf16 autocast, channels-last,
   cudnn.benchmark) and with each switch changed one at a time (torch.compile on; bf16 off;
   channels-last off; deterministic, which turns cudnn.benchmark off and
   torch.use_deterministic_algorithms on; float32 and contiguous), each with the projected wall
   time of the 60-epoch run on 50,000 images (training steps only, no probes or inference);
   images/s is the last epoch's (``history.csv``); the first epoch carries cudnn's autotuning
   and the compilation, shown as "first-epoch overhead";
2. bf16 against float32: per-epoch training loss of the same short run (same seed, same
   data) with and without autocast, and their relative difference;
3. determinism: two runs with the same seed, default engine and ``deterministic: true``;
   the largest absolute difference between their final weights.

    PYTHONPATH=workflow python benchmarks/gpu_check.py           # GPU: under 5 minutes on an H100
    PYTHONPATH=workflow python benchmarks/gpu_check.py --smoke   # CPU, tiny sizes: checks that it runs

Copy the printed tables into docs/benchmarks.md ("## GPU") with the card's name.
"""

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path

# cuBLAS is only deterministic with a fixed workspace; it must be set before CUDA starts, and
# torch.use_deterministic_algorithms(True) raises on matmuls without it.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np
import torch
import yaml

from l2ood.config import resolve_run
from l2ood.train import fit

ROOT = Path(__file__).resolve().parents[1]
RUN = "cifar10-resnet18-l2-sgd60"
PAPER_IMAGES, PAPER_EPOCHS = 50_000, 60


def run_config(epochs: int, width: int | None, batch: int | None) -> dict:
    """The paper run's resolved config, shortened to ``epochs`` (the milestones stay beyond them)."""
    with open(ROOT / "config.yaml") as f:
        cfg = resolve_run(yaml.safe_load(f), RUN)
    cfg["recipe"]["epochs"] = epochs
    cfg["probe_size"] = min(cfg["probe_size"], 500)
    if width is not None:
        cfg["model_kwargs"]["width"] = width
    if batch is not None:
        cfg["recipe"]["batch_size"] = batch
    return cfg


def random_cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 n x 32 x 32 x 3 noise with a class-dependent colour shift (so the loss can fall)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    shift = rng.integers(0, 96, (10, 1, 1, 3))
    images = rng.integers(0, 160, (n, 32, 32, 3)) + shift[labels]
    return images.astype(np.uint8), labels.astype(np.int64)


@contextlib.contextmanager
def fresh_global_state():
    """fit sets process-wide switches (deterministic algorithms, cudnn.benchmark): undo them."""
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False


def train(cfg, images, labels, engine: dict, seed: int = 0) -> tuple[list[dict], dict, float]:
    """(history rows, final weights, peak GPU memory in GiB) of one ``fit`` run in a temp dir."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as d, fresh_global_state():
        history = fit(cfg, images, labels, d, seed=seed, engine={"log_every": 10_000, **engine})
        weights = torch.load(Path(d) / "model.pt", map_location="cpu")["state_dict"]
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return history, weights, peak


def max_weight_diff(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def speed_table(cfg, images, labels, configs: dict) -> None:
    print(
        f"| engine | images/s | 60 epochs x {PAPER_IMAGES:,} images | first-epoch overhead (s) | peak GiB |"
    )
    print("|---|---|---|---|---|")
    for name, engine in configs.items():
        try:
            hist, _, peak = train(cfg, images, labels, engine)
        except Exception as err:  # one failing switch must not hide the others' figures
            print(
                f"| {name} | FAILED: {type(err).__name__}: {str(err).splitlines()[0][:150]} | | | |",
                flush=True,
            )
            continue
        ips = hist[-1]["images_per_s"]
        overhead = hist[0]["seconds"] - hist[-1]["seconds"]
        projected = PAPER_EPOCHS * PAPER_IMAGES / ips
        print(f"| {name} | {ips:,.0f} | {projected / 60:.1f} min | {overhead:.1f} | {peak:.1f} |", flush=True)


def bf16_check(cfg, images, labels) -> None:
    h32, w32, _ = train(cfg, images, labels, {"amp": False})
    h16, w16, _ = train(cfg, images, labels, {"amp": True})
    print("| epoch | loss float32 | loss bf16 autocast | relative difference |")
    print("|---|---|---|---|")
    for a, b in zip(h32, h16):
        rel = abs(b["loss"] - a["loss"]) / abs(a["loss"])
        print(f"| {a['epoch']} | {a['loss']:.5f} | {b['loss']:.5f} | {rel:.2e} |")
    print(f"final accuracy (training, augmented): float32 {h32[-1]['accuracy']:.4f}, bf16 {h16[-1]['accuracy']:.4f}; "
          f"max weight difference {max_weight_diff(w32, w16):.3g}")  # fmt: skip


def determinism_check(cfg, images, labels) -> None:
    print("| engine | run 1 vs run 2, same seed: max abs weight difference |")
    print("|---|---|")
    for name, engine in {"default": {}, "deterministic: true": {"deterministic": True}}.items():
        try:
            _, a, _ = train(cfg, images, labels, engine, seed=1)
            _, b, _ = train(cfg, images, labels, engine, seed=1)
            print(f"| {name} | {max_weight_diff(a, b):.3g} |", flush=True)
        except Exception as err:
            print(f"| {name} | FAILED: {type(err).__name__}: {str(err).splitlines()[0][:200]} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--n", type=int, default=33_000,
        help="random training images per speed run; like 50,000 not a multiple of the batch, so the last, "
        "short batch shows what it costs (torch.compile compiles a second graph for it)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=2, help="epochs per speed run (the last one is timed)")
    p.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile row (its compilation takes minutes)"
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes on any device: check that the script runs"
    )
    args = p.parse_args()
    width = batch = None
    n_small = 4096
    if args.smoke:  # width 4, batch 64, a few hundred images; no compile (50-80 s on a CPU)
        args.n, width, batch, n_small, args.no_compile = 256, 4, 64, 256, True

    on_cuda = torch.cuda.is_available()
    device = (
        torch.cuda.get_device_name() if on_cuda else f"CPU ({platform.processor() or platform.machine()})"
    )
    cfg = run_config(args.epochs, width, batch)
    print(
        f"{device}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}\n"
        f"run {RUN}: {cfg['model']} {cfg['model_kwargs'] or ''} head {cfg['head']}, batch "
        f"{cfg['recipe']['batch_size']}, {args.n:,} random 32x32 images, {args.epochs} epochs per row\n"
    )
    t0 = time.perf_counter()
    images, labels = random_cifar(args.n)
    default = {"amp": True, "channels_last": True}  # what "auto" resolves to on CUDA
    configs = {
        "default (bf16 + channels-last + cudnn.benchmark)": default,
        "+ torch.compile": {**default, "compile": True},
        "bf16 off": {**default, "amp": False},
        "channels-last off": {**default, "channels_last": False},
        "deterministic (cudnn.benchmark off, deterministic algorithms)": {**default, "deterministic": True},
        "bf16 and channels-last off (float32, contiguous)": {"amp": False, "channels_last": False},
    }
    if args.no_compile:
        del configs["+ torch.compile"]
    print("## Speed switches\n")
    speed_table(cfg, images, labels, configs)

    small_cfg = run_config(3, width, batch)
    small_images, small_labels = random_cifar(n_small, seed=1)
    print("\n## bf16 autocast against float32 (same seed and data, 3 epochs)\n")
    bf16_check(small_cfg, small_images, small_labels)
    print("\n## Determinism (same seed twice, 3 epochs)\n")
    determinism_check(small_cfg, small_images, small_labels)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
