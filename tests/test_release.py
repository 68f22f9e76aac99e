"""A run's release zip (l2ood.release): contents, sums, determinism, the model card's numbers and
its loading snippet (run as written)."""

import hashlib
import re
import zipfile

import pandas as pd
import pytest
import torch
import yaml

from l2ood.models import build_model
from l2ood.release import build_release


def _seed_dir(tmp_path, seed, auroc):
    d = tmp_path / "runs" / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {"run": "r", "dataset": "digits-id", "model": "smallcnn", "model_kwargs": {"width": 4}, "head": "l2",
           "num_classes": 3, "image_size": 8, "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3},
           "recipe_name": "demo", "recipe": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "epochs": 2,
                                             "batch_size": 8, "schedule": "multistep", "loss": {"name": "ce"}},
           "training_code_version": 2, "seed": seed}
    torch.manual_seed(seed)
    model = build_model("smallcnn", 3, "l2", 8, width=4)
    torch.save({"state_dict": model.state_dict(), "config": cfg, "seed": seed}, d / "model.pt")
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    pd.DataFrame({"run": "r", "seed": seed, "ood": "near", "score": "feature_norm", "auroc": [auroc],
                  "fpr95": [0.5], "accuracy": [0.9 + seed / 100]}).to_csv(d / "metrics.csv", index=False)
    return d


def test_release_holds_every_seed_with_sums_and_a_card_whose_numbers_and_snippet_are_true(tmp_path, monkeypatch):
    dirs = {0: _seed_dir(tmp_path, 0, 0.80), 1: _seed_dir(tmp_path, 1, 0.90)}
    out = tmp_path / "release" / "r.zip"
    build_release("r", dirs, out)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {"r/MODEL_CARD.md", "r/SHA256SUMS"} | {f"r/seed{s}/{f}" for s in (0, 1)
                                                                for f in ("model.pt", "config.yaml", "metrics.csv")}
        sums = zf.read("r/SHA256SUMS").decode().splitlines()
        assert len(sums) == 7
        for line in sums:
            digest, name = line.split("  ")
            assert hashlib.sha256(zf.read(f"r/{name}")).hexdigest() == digest
        card = zf.read("r/MODEL_CARD.md").decode()
        zf.extractall(tmp_path / "unpacked")
    assert "| near | feature_norm | 85.0 ± 7.1 | 50.0 ± 0.0 |" in card  # mean, sample std of 80 and 90
    assert "ID test accuracy: 90.5 ± 0.7." in card
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    monkeypatch.chdir(tmp_path / "unpacked")
    scope = {}
    exec(snippet, scope)  # the card's five lines, as a user pastes them
    assert torch.equal(scope["model"].fc.weight, torch.load(dirs[0] / "model.pt", weights_only=True)["state_dict"]["fc.weight"])


def test_release_is_the_same_bytes_when_built_again_and_names_a_missing_file(tmp_path):
    dirs = {0: _seed_dir(tmp_path, 0, 0.8)}
    build_release("r", dirs, tmp_path / "a.zip")
    build_release("r", dirs, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    (dirs[0] / "metrics.csv").unlink()
    with pytest.raises(FileNotFoundError, match="seed0/metrics.csv is missing"):
        build_release("r", dirs, tmp_path / "c.zip")
    assert not (tmp_path / "c.zip").exists()
