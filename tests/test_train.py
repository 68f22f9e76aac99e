"""The training engine: schedules, augmentation, determinism, resume after a real kill, NaN stop."""

import json
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
from l2ood import checkpoint as CK
from l2ood import engine as ENG
from l2ood import inference as INF
from l2ood import optim as OPT
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


def infer(model_path, images, labels) -> dict:
    """``l2ood.inference.infer_sets`` (the infer rule's one path) for one set of images."""
    return INF.infer_sets(model_path, {"set": (images, labels)})["set"]


def tiny_data(n=120, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    images[labels == 1, : size // 2] += 150  # learnable signal: a bright top half, a bright left half
    images[labels == 2, :, : size // 2] += 150
    return images, labels.astype(np.int64)


def test_multistep_schedule_matches_the_paper():
    r = {"lr": 0.1, "schedule": "multistep", "milestones": [40, 50], "gamma": 0.1, "epochs": 60}
    lrs = [OPT.learning_rate(r, e) for e in (0, 39, 40, 49, 50, 59)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_as_timm_with_warmup_and_cooldown():
    # the CCT recipe: 310 epochs = 300 cosine + 10 cooldown at min_lr, 10 warm-up epochs from 1e-5
    r = {"lr": 55e-5, "schedule": "cosine", "warmup_epochs": 10, "warmup_lr": 1e-5, "epochs": 310,
         "cooldown_epochs": 10, "min_lr": 1e-5}  # fmt: skip
    assert OPT.learning_rate(r, 0) == pytest.approx(1e-5)
    assert OPT.learning_rate(r, 5) == pytest.approx(1e-5 + 5 * (55e-5 - 1e-5) / 10)
    assert OPT.learning_rate(r, 150) == pytest.approx(1e-5 + 0.5 * (55e-5 - 1e-5))  # halfway through 300
    assert OPT.learning_rate(r, 100) == pytest.approx(1e-5 + 0.5 * 54e-5 * (1 + math.cos(math.pi / 3)))
    assert OPT.learning_rate(r, 305) == pytest.approx(1e-5)


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
    a, b, c = (torch.load(tmp_path / k / "model.pt", weights_only=True)["state_dict"] for k in "abc")
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
    out = infer(tmp_path / "model.pt", images, labels)
    assert out["feature_norm"].shape == (120,) and out["logits"].shape == (120, 3)


def test_probes_and_inference_see_the_same_features(tmp_path):
    """The per-epoch probes and inference run one forward pass (batched_forward): after the last
    epoch the probe norms are what inference gives the same images with the saved model."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=2), images, labels, tmp_path, seed=0)
    with np.load(tmp_path / "probes.npz") as z:
        idx, last_norms = z["indices"], z["norms"][-1]
    out = infer(tmp_path / "model.pt", images[idx], labels[idx])
    np.testing.assert_array_equal(out["feature_norm"], last_norms)


@pytest.mark.parametrize("fn", ["infer_sets", "infer_features"])
def test_inference_runs_under_the_engines_backend_flags(tmp_path, monkeypatch, fn):
    """Issue 20 item 5: `engine: {tf32: false}` and `deterministic: true` reached training only;
    inference and feature extraction ran with torch's defaults. Observed inside the forward pass
    (the deterministic switch is set on any device) and at the flags' setter (tf32, a CUDA flag)."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    flags, backend_flags = [], INF.backend_flags
    monkeypatch.setattr(INF, "backend_flags", lambda *a: (flags.append(a), backend_flags(*a))[1])
    seen, load = [], INF.load_model

    def observed(*args, **kwargs):
        model, cfg = load(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inp: seen.append(torch.are_deterministic_algorithms_enabled()))
        return model, cfg

    monkeypatch.setattr(INF, "load_model", observed)
    engine = {"device": "cpu", "deterministic": True, "tf32": True}
    getattr(INF, fn)(tmp_path / "model.pt", {"x": (images, labels)}, engine=engine)
    assert seen and all(seen) and not torch.are_deterministic_algorithms_enabled()
    assert flags and all(a == (True, torch.device("cpu"), True) for a in flags)


@pytest.mark.parametrize("optimizer, key", [("sgd", "momentum"), ("sgd", "nesterov"), ("sgd", "weight_decay"),
                                            ("adamw", "betas"), ("adamw", "weight_decay")])  # fmt: skip
def test_optimizer_values_are_never_defaulted(optimizer, key):
    recipe = {"optimizer": optimizer, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
              "betas": [0.9, 0.999]}  # fmt: skip
    model = torch.nn.Linear(2, 2)
    assert isinstance(OPT.build_optimizer(model, recipe), torch.optim.Optimizer)
    del recipe[key]
    with pytest.raises(KeyError, match=rf"^recipe 'r' does not state {key}, which optimizer '{optimizer}' needs"):
        OPT.build_optimizer(model, recipe, "r")


def test_optimizer_takes_the_recipes_values():
    model = torch.nn.Linear(2, 2)
    sgd = OPT.build_optimizer(model, {"optimizer": "sgd", "lr": 0.2, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01})
    assert {k: sgd.defaults[k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == {
        "lr": 0.2, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}  # fmt: skip
    adamw = OPT.build_optimizer(model, {"optimizer": "adamw", "lr": 0.3, "betas": [0.8, 0.9], "weight_decay": 0.02})
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        OPT.build_optimizer(model, {"optimizer": "adam", "lr": 0.1})


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    images, labels = tiny_data()
    with pytest.raises(T.NonFiniteLossError, match=r"epoch 1, step \d+ of 4"):
        T.fit(tiny_cfg(head="nol2", lr=1e30), images, labels, tmp_path, seed=0, engine={"log_every": 1})
    assert not (tmp_path / "model.pt").exists()


def test_infer_rejects_wrong_resolution(tmp_path):
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    with pytest.raises(ValueError, match="-r8"):
        infer(tmp_path / "model.pt", tiny_data(size=16)[0], labels)


RUNNER = """
import json, logging, sys, numpy as np
sys.path.insert(0, {root!r})
from test_train import tiny_cfg, tiny_data
from l2ood.train import fit
logging.basicConfig(level=logging.INFO)
images, labels = tiny_data(n=3000, size=16)
fit(tiny_cfg(epochs=8, size=16, width=8), images, labels, sys.argv[1], seed=5, engine=json.loads(sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_bit_identical(tmp_path, sig):
    """SIGKILL after the checkpoint of epoch 2 (checkpoints after every epoch), or SIGTERM after
    epoch 2 with no interval checkpoint due (60 minutes): the SIGTERM writes the checkpoint."""
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(root=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "OMP_NUM_THREADS": "1"}
    engine = json.dumps({"checkpoint_minutes": 0 if sig == signal.SIGKILL else 60})
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run([sys.executable, script, ref, engine], check=True, env=env, timeout=300, capture_output=True)

    log = tmp_path / "cut.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, script, cut, engine], env=env, stderr=err)
    ckpt = cut / CHECKPOINT
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if sig == signal.SIGKILL:
            ready = ckpt.exists() and torch.load(ckpt, weights_only=True)["state"]["epoch"] >= 2
        else:
            ready = "epoch 2/8" in log.read_text()
        if ready:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be killed"
    assert not (cut / "model.pt").exists()
    killed_at = torch.load(ckpt, weights_only=True)["state"]["epoch"]
    assert 2 <= killed_at < 8

    subprocess.run([sys.executable, script, cut, engine], check=True, env=env, timeout=300, capture_output=True)
    a, b = torch.load(ref / "model.pt", weights_only=True)["state_dict"], torch.load(cut / "model.pt", weights_only=True)["state_dict"]
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
    a, b = (torch.load(tmp_path / k / "model.pt", weights_only=True)["state_dict"] for k in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_infer_returns_one_norm_per_image(tmp_path):
    """The score is ||z_i|| per image (z.norm(dim=1)); Algorithm 1's torch.norm(z) would be one
    number for the whole batch. Each image's norm must not depend on the rest of its batch."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    batch = infer(tmp_path / "model.pt", images[:10], labels[:10])["feature_norm"]
    alone = [infer(tmp_path / "model.pt", images[i : i + 1], labels[i : i + 1])["feature_norm"][0] for i in range(10)]
    np.testing.assert_allclose(batch, alone, rtol=1e-5)
    assert len(np.unique(batch.round(6))) == 10
    model, _ = INF.load_model(tmp_path / "model.pt")
    with torch.no_grad():
        _, z = model(A.normalize(INF.to_device_images(images[:10], torch.device("cpu")), *INF.norm_tensors(tiny_cfg(), "cpu")))
    np.testing.assert_allclose(batch, z.norm(dim=1).numpy(), rtol=1e-5)
    assert not np.allclose(batch, torch.norm(z).item())


# --- the GPU path, observed on the CPU (issue 11) ---------------------------------------------


def test_resume_loads_the_checkpoint_to_the_cpu_whatever_the_device(tmp_path):
    """A CUDA run mapped its checkpoint to the GPU, and the RNG setters (CPU ByteTensors only)
    crashed every resume. ``meta`` stands in for the GPU: a run whose device is not the CPU must
    still restore weights, optimizer state and every RNG state from the file."""
    images, labels = tiny_data()
    cfg = tiny_cfg(optimizer="adamw", betas=[0.9, 0.999])
    e, cpu = INF.resolve_engine({"device": "cpu"}), torch.device("cpu")
    run = T.setup(cfg, images, labels, 0, e, cpu)
    T.train_epoch(run, 0)
    CK.save_checkpoint(tmp_path / CHECKPOINT, run, T.new_progress())
    saved_rng, saved_gen = torch.get_rng_state(), run.gen.get_state()

    other = T.setup(cfg, images, labels, 0, e, cpu)
    other.device = torch.device("meta")  # where the old code mapped the checkpoint's tensors
    torch.manual_seed(99)
    assert CK.load_checkpoint(tmp_path / CHECKPOINT, other) == T.new_progress()
    assert torch.equal(torch.get_rng_state(), saved_rng) and torch.equal(other.gen.get_state(), saved_gen)
    a, b = run.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    states = list(other.optimizer.state.values())
    assert states and all(s["step"].device.type == "cpu" for s in states)  # AdamW's counters stay on the CPU
    ref = list(run.optimizer.state.values())
    assert all(torch.equal(s["exp_avg"], r["exp_avg"]) for s, r in zip(states, ref))


def test_sigterm_mid_epoch_writes_a_checkpoint_that_resumes_bit_identically(tmp_path, monkeypatch):
    """SIGTERM (SLURM's notice before preemption or the time limit) in the middle of epoch 2:
    the run saves where it stands and stops; the restart continues from that step, and the
    result equals an uninterrupted run's. No interval checkpoint is due (60 minutes)."""
    images, labels = tiny_data()
    engine = {"checkpoint_minutes": 60}
    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "ref", seed=2, engine=engine)

    calls, augment = [], T.aug.augment

    def augment_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # 4 steps per epoch (120 images, batch 32): epoch 2, step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return augment(*args, **kwargs)

    def outside_fit(signum, frame):
        raise AssertionError("the SIGTERM reached the handler outside fit")

    previous = signal.signal(signal.SIGTERM, outside_fit)
    try:
        monkeypatch.setattr(T.aug, "augment", augment_then_sigterm)
        with pytest.raises(T.TrainingInterrupted, match="epoch 2, step 2"):
            T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "cut", seed=2, engine=engine)
        assert signal.getsignal(signal.SIGTERM) is outside_fit  # fit put the previous handler back
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["state"]
    assert state["epoch"] == 1 and state["position"]["step"] == 2 and not (tmp_path / "cut/model.pt").exists()

    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "cut", seed=2, engine=engine)
    a, b = (torch.load(tmp_path / k / "model.pt", weights_only=True)["state_dict"] for k in ("ref", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    cols = ["epoch", "loss", "accuracy", "lr"]
    ha, hb = (pd.read_csv(tmp_path / k / "history.csv")[cols] for k in ("ref", "cut"))
    pd.testing.assert_frame_equal(ha, hb)
    np.testing.assert_array_equal(*(np.load(tmp_path / k / "probes.npz")["norms"] for k in ("ref", "cut")))


@pytest.mark.parametrize("minutes, saves", [(0, 2), (60, 0)])
def test_checkpoints_follow_the_wall_clock_interval(tmp_path, monkeypatch, minutes, saves):
    """checkpoint_minutes: 0 = after every epoch but the last; otherwise only once that long has
    passed (a 3-epoch run of a second writes none), not after every epoch."""
    images, labels = tiny_data()
    written, save = [], CK.save_checkpoint
    monkeypatch.setattr(T, "save_checkpoint", lambda *a: (written.append(a[2]["epoch"]), save(*a)))
    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path, seed=0, engine={"checkpoint_minutes": minutes})
    assert written == [1, 2][:saves]


def test_the_engine_trains_in_float32_with_tf32_on_cuda():
    """bf16 autocast is off by default (DDU and LogitNorm train in float32); TF32 is on on CUDA."""
    assert ENG.ENGINE_DEFAULTS["amp"] is False and ENG.ENGINE_DEFAULTS["tf32"] == "auto"
    cuda = INF.resolve_engine({"device": "cuda"})  # resolving needs no GPU
    assert (cuda["amp"], cuda["tf32"], cuda["channels_last"]) == (False, True, True)
    assert INF.resolve_engine({"device": "cpu"})["tf32"] is False
    with pytest.raises(ValueError, match="compile_mode 'fast': choose one of default, reduce-overhead"):
        INF.resolve_engine({"compile_mode": "fast"})


def test_tf32_is_set_for_a_cuda_run_and_restored_after():
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    with INF.backend_flags(False, torch.device("cuda"), tf32=True):  # the flags need no GPU to be set
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    with INF.backend_flags(False, torch.device("cuda"), tf32=False):
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == saved


def test_optimizers_use_fused_kernels_on_cuda_only():
    assert OPT.optimizer_kernels("cuda") == {"fused": True}
    assert OPT.optimizer_kernels("cpu") == {} and OPT.optimizer_kernels("meta") == {}
    sgd = OPT.build_optimizer(torch.nn.Linear(2, 2), tiny_cfg()["recipe"])  # on the CPU: PyTorch's default
    assert not sgd.defaults["fused"]


def test_channels_last_keeps_the_layout_the_data_come_in(tmp_path, monkeypatch):
    """channels-last: the NHWC training set is used as it is (no NCHW copy on load), batches are
    gathered and fed in that layout, and the model input has augment.normalize's values."""
    images, labels = tiny_data()
    e, cpu, cl = INF.resolve_engine({"device": "cpu", "channels_last": True}), torch.device("cpu"), torch.channels_last
    run = T.setup(tiny_cfg(), images, labels, 0, e, cpu)
    assert run.images.is_contiguous(memory_format=cl) and run.images.data_ptr() == images.ctypes.data
    assert run.probe_images.is_contiguous(memory_format=cl)
    batch = T.take(run.images, torch.tensor([5, 1, 7]))
    assert batch.is_contiguous(memory_format=cl) and torch.equal(batch, run.images[[5, 1, 7]])
    x = INF.model_input(batch, run.mean, run.std, cl)
    assert x.is_contiguous(memory_format=cl) and torch.equal(x, A.normalize(batch, run.mean, run.std))
    # what the model sees in training
    seen, build = [], T.build_model

    def observed_model(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].is_contiguous(memory_format=cl)))
        return model

    monkeypatch.setattr(T, "build_model", observed_model)
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0, engine={"channels_last": True})
    assert seen and all(seen)


def test_compiled_step_sees_full_batches_only_and_shares_its_cache(tmp_path, monkeypatch):
    """torch.compile with the engine's mode, one static shape (dynamic=False), the cache in
    compile_cache_dir; the epoch's last, short batch (120 = 3 x 32 + 24) runs uncompiled, and the
    run is the same training as without compile (a stand-in compiler that runs the model as is)."""
    images, labels = tiny_data()
    compiled, batches = [], []

    def fake_compile(model, **kwargs):
        compiled.append(kwargs)
        return lambda x: (batches.append(len(x)), model(x))[1]

    monkeypatch.setattr(T.torch, "compile", fake_compile)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    engine = {"compile": True, "compile_mode": "max-autotune", "compile_cache_dir": str(tmp_path / "cache")}
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path / "a", seed=0, engine=engine)
    assert compiled == [{"mode": "max-autotune", "dynamic": False}] and batches == [32, 32, 32]
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "cache").resolve())
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path / "b", seed=0)
    a, b = (torch.load(tmp_path / k / "model.pt", weights_only=True)["state_dict"] for k in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_feature_extraction_sets_torchs_thread_count_as_inference_does(tmp_path):
    """The features job ran with torch's default thread count (every core): _common.setup set the
    config's count for train and infer only, and CPU float reductions depend on it."""
    code = f"""
import sys, types
sys.path.insert(0, {str(ROOT / "workflow/scripts")!r})
from _common import setup
sm = types.SimpleNamespace(scriptdir={str(ROOT / "workflow/scripts")!r}, log=[], rule="features",
                           config={{"threads": {{"infer": 1}}}}, threads=1)
setup(sm)
import torch
print(torch.get_num_threads())
"""
    env = {**os.environ, "OMP_NUM_THREADS": "3"}  # torch's default otherwise
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["1"]
