"""CPU throughput of the paper's architectures, and what spectral normalization costs.

For every model: training-mode forward + backward (cross-entropy, L2 head) images/s at a small
batch. For the spectrally normalized models (ResNet18/50, VGG16) the same network without
spectral normalization is timed in the same run, the two interleaved step by step so that
machine load hits both alike; the ratio is median step time with SN / without.

    PYTHONPATH=workflow python benchmarks/bench_models.py                     # full width
    PYTHONPATH=workflow python benchmarks/bench_models.py --width-scale 0.25 --steps 3

Prints a markdown table (paste it into docs/benchmarks.md).
"""

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from l2ood.models import build_model

SPECTRAL = ("resnet18", "resnet50", "vgg16")
MODELS = ("resnet18", "resnet50", "vgg16", "convnext_tiny", "cct_7_3x1")


def width_kwargs(name: str, scale: float) -> dict:
    """Model kwargs that scale its width (1.0 = the published model)."""
    if name in SPECTRAL:
        return {"width": max(1, round(64 * scale))}
    if name == "convnext_tiny":
        return {"width": max(1, round(96 * scale))}
    return {"embedding_dim": max(4, 4 * round(256 * scale / 4))}  # 4 heads must divide it


def step_time(model, x, y) -> float:
    """Seconds for one forward + backward (gradients zeroed first)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    logits, _ = model(x)
    F.cross_entropy(logits, y).backward()
    return time.perf_counter() - start


def bench(models: dict, batch: int, image_size: int, steps: int, warmup: int) -> dict:
    """Median step time of each model; the models' steps are interleaved."""
    x = torch.randn(batch, 3, image_size, image_size)
    y = torch.randint(0, 10, (batch,))
    times = {name: [] for name in models}
    for i in range(warmup + steps):
        for name, model in models.items():
            t = step_time(model, x, y)
            if i >= warmup:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--width-scale", type=float, default=1.0, help="1.0 = published widths")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (median taken)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads; batch {args.batch}, {args.image_size} px, "
        f"width x{args.width_scale}, median of {args.steps} steps after {args.warmup} warm-up\n"
    )
    print("| model | width kwargs | params (M) | fwd+bwd img/s | img/s without SN | SN cost (time ratio) |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        kw = width_kwargs(name, args.width_scale)
        torch.manual_seed(0)
        models = {"sn": build_model(name, 10, "l2", args.image_size, **kw).train()}
        if name in SPECTRAL:
            torch.manual_seed(0)
            models["plain"] = build_model(name, 10, "l2", args.image_size, spectral=False, **kw).train()
        t = bench(models, args.batch, args.image_size, args.steps, args.warmup)
        params = sum(p.numel() for p in models["sn"].parameters()) / 1e6
        row = [
            name,
            ", ".join(f"{k}={v}" for k, v in kw.items()),
            f"{params:.2f}",
            f"{args.batch / t['sn']:.1f}",
        ]
        if "plain" in t:
            row += [f"{args.batch / t['plain']:.1f}", f"{t['sn'] / t['plain']:.2f}"]
        else:
            row += ["-", "- (no SN)"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
