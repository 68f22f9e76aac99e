"""The miniature paper study: every run, table and figure of the paper on tiny fake datasets.

Fake archives in each dataset's real layout (tests/fakes) stand in for the downloads, their
MD5s given through ``download.md5``; every recipe is cut to 2 epochs at batch 16, every run to
2 seeds, a small width and no GPU request (``gpus: 0``, so its jobs run side by side). Write the config and run it by hand with

    python tests/paper_mini.py /tmp/mini && snakemake paper --cores 2 --configfile /tmp/mini/paper-mini.yaml
"""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: tests/ is not on the path
from conftest import ROOT  # noqa: E402  (conftest also puts workflow/ on the path)
from fakes.raw_datasets import make  # noqa: E402
from l2ood.config import study_runs  # noqa: E402
from l2ood.sources import RAW_KINDS  # noqa: E402

SMALL = {
    "resnet18": {"width": 4},
    "resnet50": {"width": 4},
    "vgg16": {"width": 8},
    "cct_7_3x1": {"embedding_dim": 32, "num_layers": 1, "num_heads": 2},
    "convnext_tiny": {"width": 8, "depths": [1, 1, 1, 1]},
}
FAKE_SIZES = {"cifar10": {"per_batch": 8, "n_test": 20}, "cifar100": {"per_batch": 8, "n_test": 20},
              "svhn": {"n_train": 6, "n_test": 20}}  # fmt: skip


def mini_config(fakes: Path, seeds: int = 2, epochs: int = 2) -> dict:
    """The override config (merged over config.yaml by ``--configfile``)."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    md5 = {}
    for i, kind in enumerate(RAW_KINDS):  # a seed each: identical fake images would make every OoD set ID
        sums, _ = make(kind, fakes / kind, seed=i, **FAKE_SIZES.get(kind, {}))
        md5.update(sums)
    runs = study_runs(base, "paper")
    recipes = {base["runs"][r]["recipe"] for r in runs}
    rec = {}
    for name in recipes:
        r = base["recipes"][name]
        rec[name] = {"epochs": epochs, "batch_size": 16}
        if r["schedule"] == "multistep":
            rec[name]["milestones"] = [epochs - 1]
        if "warmup_epochs" in r:
            rec[name].update(warmup_epochs=1, cooldown_epochs=0)
        if "mixup_off_epoch" in r:
            rec[name]["mixup_off_epoch"] = 1
    return {
        "default_study": "paper",
        "download": {"existing": {k: str(fakes / k) for k in RAW_KINDS}, "md5": md5},
        "recipes": rec,
        # gpus: 0, CPU-sized as the demo's runs: a GPU job each would run one at a time (the default
        # profile's gpu=1), and the miniature is 44 training and 44 inference jobs
        "runs": {r: {"seeds": seeds, "probe_size": 12, "model_kwargs": SMALL[base["runs"][r]["model"]],
                     "recipe_overrides": {"batch_size": 16}, "gpus": 0} for r in runs},  # fmt: skip
        "studies": {"paper": {"figures": {"fig7": {"bins": 4}}}},
        "detectors": {"params": {"knn": {"k": 5}, "nnguide": {"k": 5}}},  # k 50, 100 > 40 fake CIFAR-10 images
    }


def write(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "paper-mini.yaml"
    path.write_text(yaml.safe_dump(mini_config(dest / "fakes"), sort_keys=False))
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]).resolve()))
