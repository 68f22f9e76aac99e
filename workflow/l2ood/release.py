"""A run's checkpoints to share: one zip with each seed's model, config and metrics, SHA-256 sums and
a model card (``snakemake results/release/<run>.zip``).

Layout of ``<run>.zip``::

    <run>/MODEL_CARD.md            what the model is, how it was trained, its measured numbers, how to load it
    <run>/SHA256SUMS               sha256sum -c format, every other file
    <run>/seed<k>/model.pt         {"state_dict", "config", "seed"} (torch.load(..., weights_only=True))
    <run>/seed<k>/config.yaml      the run's resolved config as training recorded it
    <run>/seed<k>/metrics.csv      the seed's OoD metrics (l2ood.evaluate)

The zip is deterministic (fixed member times, sorted members): built again from the same files, it
is the same bytes. A run exported here and named with ``weights: <dir>/<run>/seed{seed}/model.pt``
is evaluated again without training (``l2ood.weights``).
"""

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import yaml

from .fileio import atomic_path
from .layout import HEADS, METRICS, TRAIN_OUTPUTS
from .stats import mean_std, pct_std

#: the files of each seed a release holds, as named in the run folder
SEED_FILES = (TRAIN_OUTPUTS["model"], TRAIN_OUTPUTS["config"], METRICS)
CARD = "MODEL_CARD.md"
SUMS = "SHA256SUMS"
#: every member's time: a release built twice from the same files is the same bytes
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _pct(values) -> str:
    """Mean ± std over seeds as the tables print it (l2ood.stats: one seed prints the mean alone)."""
    return pct_std(*mean_std(values))


def model_card(run: str, config: dict, metrics: pd.DataFrame, seeds: list[int]) -> str:
    """The model card: what the model is, how it was trained, its numbers (mean ± std over seeds)."""
    recipe = config.get("recipe", {})
    trained = config.get("weights") is None
    lines = [
        f"# {run}",
        "",
        f"{config['model']} ({', '.join(f'{k}={v}' for k, v in config.get('model_kwargs', {}).items()) or 'default arguments'}),"
        f" head {config['head']} ({HEADS[config['head']]}: the classifier sees "
        + ("z/||z||" if config["head"] == "l2" else "z")
        + f"), {config['num_classes']} classes of `{config['dataset']}` at {config['image_size']}x{config['image_size']} px,"
        f" inputs normalized with mean {config['normalize']['mean']} and std {config['normalize']['std']}."
        f" Seeds: {', '.join(map(str, seeds))}.",
        "",
        "## How it was trained",
        "",
    ]
    if trained:
        lines.append(
            f"Recipe `{config.get('recipe_name')}`: {recipe.get('optimizer')} with learning rate {recipe.get('lr')},"
            f" weight decay {recipe.get('weight_decay')}, {recipe.get('epochs')} epochs of batch {recipe.get('batch_size')},"
            f" {recipe.get('schedule')} schedule; loss {recipe.get('loss', {}).get('name')}; training code version"
            f" {config.get('training_code_version')}. Every value is in each seed's `config.yaml`."
        )
    else:
        lines.append(f"Not trained by l2ood: imported from `{config['weights_file']['path']}` (SHA-256 {config['weights_file']['sha256']}; each seed's `config.yaml` names its file).")
    lines += ["", "## Measured (%, mean ± std over seeds)", ""]
    if len(metrics):
        acc = metrics.drop_duplicates("seed")["accuracy"]
        lines.append(f"ID test accuracy: {_pct(acc)}.")
        lines += ["", "| OoD set | score | AUROC | FPR95 (ID positive) |", "|---|---|---|---|"]
        for (ood, score), g in metrics.groupby(["ood", "score"], sort=True):
            lines.append(f"| {ood} | {score} | {_pct(g['auroc'])} | {_pct(g['fpr95'])} |")
    lines += [
        "",
        "## How to load it",
        "",
        "```python",
        "import torch",
        "from l2ood.models import build_model  # pip install -e . in the l2ood repository",
        f'ckpt = torch.load("{run}/seed{seeds[0]}/model.pt", map_location="cpu", weights_only=True)',
        'c = ckpt["config"]; model = build_model(c["model"], c["num_classes"], c["head"], c["image_size"], **c["model_kwargs"])',
        'model.load_state_dict(ckpt["state_dict"]); model.eval()  # logits, z = model((x - mean) / std)',
        "```",
        "",
        "`z` is the feature before L2 normalization; its norm `z.norm(dim=1)` is the paper's OoD score"
        " (higher = more in-distribution).",
        "",
    ]
    return "\n".join(lines)


def _member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build_release(run: str, seed_dirs: dict[int, Path], out) -> None:
    """Write ``out`` (a .zip) from each seed's run folder (``{seed: dir}`` holding ``SEED_FILES``)."""
    files = {}
    for seed, folder in sorted(seed_dirs.items()):
        for name in SEED_FILES:
            path = Path(folder) / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: build it first (snakemake {path})")
            files[f"{run}/seed{seed}/{name}"] = path.read_bytes()
    first = min(seed_dirs)
    config = yaml.safe_load(files[f"{run}/seed{first}/{TRAIN_OUTPUTS['config']}"])
    metrics = pd.concat(pd.read_csv(io.BytesIO(files[f"{run}/seed{s}/{METRICS}"])) for s in sorted(seed_dirs))
    files[f"{run}/{CARD}"] = model_card(run, config, metrics, sorted(seed_dirs)).encode()
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name.removeprefix(run + '/')}\n" for name, data in sorted(files.items()))
    files[f"{run}/{SUMS}"] = sums.encode()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(files):
            _member(zf, name, files[name])
