"""The training engine: schedules, augmentation, determinism, resume after a real kill, NaN stop."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from l2ood import augment as A
from l2ood import train as T
from l2ood.layout import CHECKPOINT, TRAIN_OUTPUTS

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(epochs=2, head="l2", lr=0.1, size=8, width=4, **recipe):
    return {
        "run": "t", "dataset": "d", "model": "smallcnn", "model_kwargs": {"width": width}, "head": head,
        "num_classes": 3, "image_size": size, "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "probe_size": 30, "recipe_name": "r",
        "recipe": {"optimizer": "sgd", "lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
                   "epochs": epochs, "schedule": "multistep", "milestones": [max(1, epochs - 1)], "gamma": 0.1,
                   "batch_size": 32, "crop_padding": 1, "flip": True, **recipe},
    }  # fmt: skip


def tiny_data(n=120, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    images[labels == 1, : size // 2] += 150  # learnable signal: a bright top half, a bright left half
    images[labels == 2, :, : size // 2] += 150
    return images, labels.astype(np.int64)


def test_multistep_schedule_matches_the_paper():
    r = {"lr": 0.1, "schedule": "multistep", "milestones": [40, 50], "gamma": 0.1, "epochs": 60}
    lrs = [T.learning_rate(r, e) for e in (0, 39, 40, 49, 50, 59)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_as_timm_with_warmup_and_cooldown():
    # the CCT recipe: 310 epochs = 300 cosine + 10 cooldown at min_lr, 10 warm-up epochs from 1e-5
    r = {"lr": 55e-5, "schedule": "cosine", "warmup_epochs": 10, "warmup_lr": 1e-5, "epochs": 310,
         "cooldown_epochs": 10, "min_lr": 1e-5}  # fmt: skip
    assert T.learning_rate(r, 0) == pytest.approx(1e-5)
    assert T.learning_rate(r, 5) == pytest.approx(1e-5 + 5 * (55e-5 - 1e-5) / 10)
    assert T.learning_rate(r, 150) == pytest.approx(1e-5 + 0.5 * (55e-5 - 1e-5))  # halfway through 300
    assert T.learning_rate(r, 100) == pytest.approx(1e-5 + 0.5 * 54e-5 * (1 + math.cos(math.pi / 3)))
    assert T.learning_rate(r, 305) == pytest.approx(1e-5)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = A.random_crop(x, 2, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[i, :, dy : dy + 5, dx : dx + 5], out[i])]
        assert found, "crop is not a window of the zero-padded image"


def test_flip_is_independent_per_image():
    x = torch.arange(64 * 1 * 1 * 2, dtype=torch.uint8).view(64, 1, 1, 2)
    out = A.random_flip(x, torch.Generator().manual_seed(1))
    flipped = (out[:, 0, 0, 0] == x[:, 0, 0, 1])
    assert 10 < flipped.sum() < 54  # about half, not all-or-nothing (no alternating or batch-wide flip)
    assert torch.equal(out[~flipped], x[~flipped])


def test_same_seed_same_weights(tmp_path):
    images, labels = tiny_data()
    T.fit(tiny_cfg(), images, labels, tmp_path / "a", seed=3)
    T.fit(tiny_cfg(), images, labels, tmp_path / "b", seed=3)
    T.fit(tiny_cfg(), images, labels, tmp_path / "c", seed=4)
    a, b, c = (torch.load(tmp_path / k / "model.pt")["state_dict"] for k in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_deterministic_switch_is_restored_after_fit(tmp_path, monkeypatch):
    images, labels = tiny_data(n=60)
    assert not torch.are_deterministic_algorithms_enabled()
    seen, run = [], T._fit  # observe the flag inside the run; it is off again afterwards

    def observed(*args):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return run(*args)

    monkeypatch.setattr(T, "_fit", observed)
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0, engine={"deterministic": True})
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()


def test_run_files_have_the_expected_content(tmp_path):
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path, seed=0)
    # fit writes the declared training outputs, by layout's names; the script writes the config
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v for k, v in TRAIN_OUTPUTS.items() if k != "config")
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist.columns) == ["epoch", "loss", "accuracy", "lr", "seconds", "images_per_s"]
    assert hist.epoch.tolist() == [1, 2, 3] and np.isfinite(hist.to_numpy()).all()
    assert hist.lr.tolist() == pytest.approx([0.1, 0.1, 0.01])
    coll = pd.read_csv(tmp_path / "collapse.csv")
    assert coll.epoch.tolist() == [0, 1, 2, 3] and (coll.nc1 > 0).all()
    with np.load(tmp_path / "probes.npz") as z:
        assert z["norms"].shape == (4, 30) and z["sq_change"].shape == (3, 30)
        assert z["features"].dtype == np.float16 and z["features"].shape == (30, 16)
        assert np.bincount(z["labels"]).tolist() == [10, 10, 10]  # stratified
    assert not (tmp_path / CHECKPOINT).exists()
    out = T.infer(tmp_path / "model.pt", images, labels)
    assert out["feature_norm"].shape == (120,) and out["logits"].shape == (120, 3)


def test_probes_and_inference_see_the_same_features(tmp_path):
    """The per-epoch probes and inference run one forward pass (batched_forward): after the last
    epoch the probe norms are what inference gives the same images with the saved model."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=2), images, labels, tmp_path, seed=0)
    with np.load(tmp_path / "probes.npz") as z:
        idx, last_norms = z["indices"], z["norms"][-1]
    out = T.infer(tmp_path / "model.pt", images[idx], labels[idx])
    np.testing.assert_array_equal(out["feature_norm"], last_norms)


@pytest.mark.parametrize("optimizer, key", [("sgd", "momentum"), ("sgd", "nesterov"), ("sgd", "weight_decay"),
                                            ("adamw", "betas"), ("adamw", "weight_decay")])  # fmt: skip
def test_optimizer_values_are_never_defaulted(optimizer, key):
    recipe = {"optimizer": optimizer, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
              "betas": [0.9, 0.999]}  # fmt: skip
    model = torch.nn.Linear(2, 2)
    assert isinstance(T.build_optimizer(model, recipe), torch.optim.Optimizer)
    del recipe[key]
    with pytest.raises(KeyError, match=rf"^recipe 'r' does not state {key}, which optimizer '{optimizer}' needs"):
        T.build_optimizer(model, recipe, "r")


def test_optimizer_takes_the_recipes_values():
    model = torch.nn.Linear(2, 2)
    sgd = T.build_optimizer(model, {"optimizer": "sgd", "lr": 0.2, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01})
    assert {k: sgd.defaults[k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == {
        "lr": 0.2, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}  # fmt: skip
    adamw = T.build_optimizer(model, {"optimizer": "adamw", "lr": 0.3, "betas": [0.8, 0.9], "weight_decay": 0.02})
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        T.build_optimizer(model, {"optimizer": "adam", "lr": 0.1})


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    images, labels = tiny_data()
    with pytest.raises(T.NonFiniteLossError, match=r"epoch 1, step \d+ of 4"):
        T.fit(tiny_cfg(head="nol2", lr=1e30), images, labels, tmp_path, seed=0, engine={"log_every": 1})
    assert not (tmp_path / "model.pt").exists()


def test_infer_rejects_wrong_resolution(tmp_path):
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    with pytest.raises(ValueError, match="-r8"):
        T.infer(tmp_path / "model.pt", tiny_data(size=16)[0], labels)


RUNNER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from test_train import tiny_cfg, tiny_data
from l2ood.train import fit
images, labels = tiny_data(n=3000, size=16)
fit(tiny_cfg(epochs=8, size=16, width=8), images, labels, sys.argv[1], seed=5)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_bit_identical(tmp_path, sig):
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(root=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "OMP_NUM_THREADS": "1"}
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run([sys.executable, script, ref], check=True, env=env, timeout=300)

    proc = subprocess.Popen([sys.executable, script, cut], env=env)
    ckpt = cut / CHECKPOINT
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["state"]["epoch"] >= 2:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be killed"
    assert not (cut / "model.pt").exists()
    killed_at = torch.load(ckpt, weights_only=False)["state"]["epoch"]
    assert 2 <= killed_at < 8

    subprocess.run([sys.executable, script, cut], check=True, env=env, timeout=300)
    a, b = torch.load(ref / "model.pt")["state_dict"], torch.load(cut / "model.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    ha, hb = pd.read_csv(ref / "history.csv"), pd.read_csv(cut / "history.csv")
    pd.testing.assert_frame_equal(ha[["epoch", "loss", "accuracy", "lr"]], hb[["epoch", "loss", "accuracy", "lr"]])
    np.testing.assert_array_equal(np.load(ref / "probes.npz")["norms"], np.load(cut / "probes.npz")["norms"])


def cct_style_cfg():
    cfg = tiny_cfg(epochs=2, size=16)
    cfg["recipe"].pop("crop_padding")
    cfg["recipe"].update(
        optimizer="adamw", lr=5.5e-4, betas=[0.9, 0.999], weight_decay=0.06, schedule="cosine", warmup_epochs=1,
        warmup_lr=1e-5, min_lr=1e-5, random_resized_crop={"scale": [0.8, 1.0]}, randaugment={"num_ops": 2, "magnitude": 9,
        "magnitude_std": 0.5}, mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0, switch_prob=0.5, mixup_off_epoch=1,
        loss={"name": "ce", "label_smoothing": 0.1},
    )  # fmt: skip
    return cfg


def test_cct_recipe_path_trains_and_is_deterministic(tmp_path):
    """Random-resized crop, RandAugment, mixup/cutmix (off after epoch 1), AdamW, warm-up + cosine."""
    images, labels = tiny_data(size=16)
    h1 = T.fit(cct_style_cfg(), images, labels, tmp_path / "a", seed=1)
    T.fit(cct_style_cfg(), images, labels, tmp_path / "b", seed=1)
    assert [r["lr"] for r in h1] == pytest.approx([1e-5, 1e-5 + 0.5 * (5.5e-4 - 1e-5) * (1 + math.cos(math.pi / 2))])
    assert all(np.isfinite(r["loss"]) for r in h1)
    a, b = (torch.load(tmp_path / k / "model.pt")["state_dict"] for k in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_infer_returns_one_norm_per_image(tmp_path):
    """The score is ||z_i|| per image (z.norm(dim=1)); Algorithm 1's torch.norm(z) would be one
    number for the whole batch. Each image's norm must not depend on the rest of its batch."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    batch = T.infer(tmp_path / "model.pt", images[:10], labels[:10])["feature_norm"]
    alone = [T.infer(tmp_path / "model.pt", images[i : i + 1], labels[i : i + 1])["feature_norm"][0] for i in range(10)]
    np.testing.assert_allclose(batch, alone, rtol=1e-5)
    assert len(np.unique(batch.round(6))) == 10
    model, _ = T.load_model(tmp_path / "model.pt")
    with torch.no_grad():
        _, z = model(A.normalize(T.to_device_images(images[:10], torch.device("cpu")), *T.norm_tensors(tiny_cfg(), "cpu")))
    np.testing.assert_allclose(batch, z.norm(dim=1).numpy(), rtol=1e-5)
    assert not np.allclose(batch, torch.norm(z).item())
