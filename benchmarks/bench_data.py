"""The training data path against torchvision's standard pipeline, from one run.

Ours (``l2ood.train`` / ``l2ood.augment``): the uint8 training set on the device once; per step
index a batch, zero-pad-4 random crop and independent flip as batched tensor ops, normalize.
Standard: an in-memory uint8 dataset (as ``torchvision.datasets.CIFAR10`` holds it) -> PIL ->
RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, in a DataLoader with
``--workers`` worker processes (persistent, warmed up for one epoch so start-up is not counted).

Measured on the same random CIFAR-10-sized data (``--n`` 32 x 32 images), batch ``--batch``:
1. data side alone (no model): images/s over whole epochs, median of ``--repeats``;
2. the whole training step (data + forward/backward/SGD step of ``--model``), images/s over
   ``--steps`` steps after one warm-up step.
It prints both and their ratios; paste the table into docs/benchmarks.md.

    PYTHONPATH=workflow python benchmarks/bench_data.py                # about 2 minutes on 2 cores
    PYTHONPATH=workflow python benchmarks/bench_data.py --smoke        # seconds: tiny sizes, checks it runs
"""

import argparse
import platform
import statistics
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from l2ood import augment as aug
from l2ood.inference import to_device_images
from l2ood.losses import build_loss
from l2ood.mix import mix
from l2ood.models import build_model
from l2ood.optim import build_optimizer

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10
RECIPE = {
    "crop_padding": 4,
    "flip": True,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 5e-4,
}
CCT_AUG = {"random_resized_crop": {"scale": (0.8, 1.0)}, "flip": True,
           "randaugment": {"num_ops": 2, "magnitude": 9, "magnitude_std": 0.5}}  # fmt: skip


class InMemoryImages(torch.utils.data.Dataset):
    """uint8 N x H x W x 3 + labels, served one PIL image at a time, as torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def standard_loader(images, labels, batch: int, workers: int) -> torch.utils.data.DataLoader:
    transform = T.Compose(
        [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
    )
    return torch.utils.data.DataLoader(
        InMemoryImages(images, labels, transform), batch_size=batch, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0, drop_last=False,
    )  # fmt: skip


def our_batches(x_all, y_all, batch: int, gen, mean, std, recipe=RECIPE, num_classes=10):
    """One epoch of (normalized images, labels or soft targets), as l2ood.train.fit makes them."""
    perm = torch.randperm(len(y_all), device=x_all.device, generator=gen)
    for start in range(0, len(perm), batch):
        idx = perm[start : start + batch]
        x, y = aug.augment(x_all.index_select(0, idx), recipe, gen), y_all[idx]  # indexed as l2ood.train.fit does
        if "mixup_alpha" in recipe:
            x, y = mix(x, y, gen, num_classes, recipe["mixup_alpha"], recipe["cutmix_alpha"])
        yield aug.normalize(x, mean, std), y


def epoch_rates(make_epochs: dict, n: int, repeats: int) -> dict:
    """Median images/s of each pipeline over ``repeats`` full passes of ``make_epochs[name]()``
    (an iterable of batches); the pipelines' passes are interleaved, so machine load hits all alike."""
    rates = {name: [] for name in make_epochs}
    for _ in range(repeats):
        for name, make_epoch in make_epochs.items():
            t0 = time.perf_counter()
            for _batch in make_epoch():
                pass
            rates[name].append(n / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def step_rate(batches, model, optimizer, loss_fn, steps: int) -> float:
    """images/s of ``steps`` training steps (data + forward/backward/step), after one warm-up step."""
    seen, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 1:
            seen, t0 = 0, time.perf_counter()
        logits, _ = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(x)
        if i == steps:
            break
    loss.item()
    return seen / (time.perf_counter() - t0)


def cycle(make_epoch):
    while True:
        yield from make_epoch()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="random 32 x 32 training images")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the standard pipeline")
    p.add_argument("--repeats", type=int, default=3, help="data-only epochs timed (median)")
    p.add_argument("--steps", type=int, default=8, help="training steps timed per pipeline")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    args = p.parse_args()
    if args.smoke:
        args.n, args.batch, args.repeats, args.steps, args.width = 512, 64, 1, 2, 4

    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.n)
    x_all, y_all = to_device_images(images, device), torch.from_numpy(labels).to(device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    gen = torch.Generator(device=device).manual_seed(0)
    loader = standard_loader(images, labels, args.batch, args.workers)
    for _ in loader:  # warm-up epoch: workers started, pages touched
        pass

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, {args.n} random 32x32 images, batch {args.batch}, standard pipeline with {args.workers} workers\n"
    )
    data = epoch_rates(
        {"ours": lambda: our_batches(x_all, y_all, args.batch, gen, mean, std), "standard": lambda: loader},
        args.n, args.repeats,
    )  # fmt: skip
    ours_data, std_data = data["ours"], data["standard"]
    n_cct = min(args.n, 4 * args.batch)  # about 1 ms per image on this CPU: a few batches are enough
    cct_recipe = {**CCT_AUG, "mixup_alpha": 0.8, "cutmix_alpha": 1.0}
    cct_data = epoch_rates(
        {"cct": lambda: our_batches(x_all[:n_cct], y_all[:n_cct], args.batch, gen, mean, std, cct_recipe)},
        n_cct,
        1,
    )["cct"]

    torch.manual_seed(0)
    model = build_model(args.model, 10, "l2", 32, width=args.width).train()
    optimizer, loss_fn = build_optimizer(model, RECIPE), build_loss("ce")
    ours_step = step_rate(
        cycle(lambda: our_batches(x_all, y_all, args.batch, gen, mean, std)),
        model,
        optimizer,
        loss_fn,
        args.steps,
    )
    std_step = step_rate(cycle(lambda: loader), model, optimizer, loss_fn, args.steps)

    print("| measured | ours (images/s) | standard (images/s) | ratio (ours / standard) |")
    print("|---|---|---|---|")
    print(f"| data side alone | {ours_data:,.0f} | {std_data:,.0f} | {ours_data / std_data:.1f}x |")
    print(
        f"| whole step, {args.model} width {args.width} | {ours_step:,.0f} | {std_step:,.0f} | "
        f"{ours_step / std_step:.2f}x |"
    )
    print(
        f"\ndata-side cost per image: ours {1e6 / ours_data:.1f} us, standard {1e6 / std_data:.1f} us "
        f"({ours_data / std_data:.1f}x lower; bar: >= 10x)"
    )
    print(
        f"CCT recipe data side (random-resized crop, flip, RandAugment m9 mstd0.5, mixup/cutmix), ours: "
        f"{cct_data:,.0f} images/s ({1e6 / cct_data:.1f} us per image)"
    )


if __name__ == "__main__":
    main()
