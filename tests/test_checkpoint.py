"""What training and inference read from disk (issue 19: items 4, 9, 12): a checkpoint resumes only the
run it was written for, no file runs code, a damaged file is named with its fix, and a full disk or a
killed writer says what happened."""

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import infer, tiny_cfg, tiny_data

from l2ood import checkpoint as CK
from l2ood import inference as INF
from l2ood import train as T
from l2ood.fileio import DamagedFileError
from l2ood.layout import CHECKPOINT
from l2ood.outputs import load_outputs, save_outputs

ENGINE = {"checkpoint_minutes": 60}  # no interval checkpoint: only the SIGTERM writes one


def interrupted(out_dir, images, labels, seed=0, epochs=3, engine=ENGINE):
    """Train until a SIGTERM in epoch 2 (as preemption sends one): the checkpoint is written, no model."""
    calls, augment = [], T.aug.augment

    def augment_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # 4 steps per epoch (120 images, batch 32): epoch 2, step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return augment(*args, **kwargs)

    T.aug.augment = augment_then_sigterm
    try:
        with pytest.raises(T.TrainingInterrupted):
            T.fit(tiny_cfg(epochs=epochs), images, labels, out_dir, seed=seed, engine=engine)
    finally:
        T.aug.augment = augment
    assert (out_dir / CHECKPOINT).exists() and not (out_dir / "model.pt").exists()


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --- item 4: the checkpoint's identity covers the engine's numerics and the training data ---------


def test_a_checkpoint_resumes_under_the_same_engine_and_data(tmp_path, caplog):
    images, labels = tiny_data()
    interrupted(tmp_path / "cut", images, labels)
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "cut", seed=0, engine=ENGINE)
    assert "resumed from" in caplog.text and "not resuming" not in caplog.text


def test_a_checkpoint_of_another_engine_is_not_resumed(tmp_path, caplog):
    """SIGTERM, then the same job under `engine: {amp: true}`: it trained in float32 so far, so it
    starts from epoch 1 in bf16, says so, and ends with the model an uninterrupted amp run gives."""
    images, labels = tiny_data()
    interrupted(tmp_path / "cut", images, labels)
    amp = {**ENGINE, "amp": True}
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "cut", seed=0, engine=amp)
    assert "resumed from" not in caplog.text
    assert "engine differs: amp False, now True" in caplog.text and "starts from epoch 1" in caplog.text
    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "ref", seed=0, engine=amp)
    assert same_weights(weights(tmp_path / "ref/model.pt"), weights(tmp_path / "cut/model.pt"))


def test_a_checkpoint_of_another_split_is_not_resumed(tmp_path, caplog):
    """SIGTERM, then the data set prepared again with another split seed and a larger test
    fraction: fewer, other training images. The old checkpoint's epoch (its permutation of 120
    images) raised IndexError at every retry; now the run starts afresh on the new split."""
    images, labels = tiny_data()
    interrupted(tmp_path / "cut", images, labels)
    new_images, new_labels = tiny_data(n=90, seed=5)
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        T.fit(tiny_cfg(epochs=3), new_images, new_labels, tmp_path / "cut", seed=0, engine=ENGINE)
    assert "training data differ" in caplog.text and "starts from epoch 1" in caplog.text
    T.fit(tiny_cfg(epochs=3), new_images, new_labels, tmp_path / "ref", seed=0, engine=ENGINE)
    assert same_weights(weights(tmp_path / "ref/model.pt"), weights(tmp_path / "cut/model.pt"))


def test_the_identity_covers_each_numeric_engine_option_and_the_data():
    from l2ood.engine import NUMERIC_ENGINE_OPTIONS

    cfg, images, labels = tiny_cfg(), *tiny_data()
    e = INF.resolve_engine({"device": "cpu"})
    data = CK.data_digest(images, labels)
    base = CK.config_digest(cfg, 0, e, data)
    changed = {"device": "cuda", "amp": True, "tf32": True, "compile": True, "compile_mode": "max-autotune",
               "channels_last": True, "deterministic": True}  # fmt: skip
    assert sorted(changed) == sorted(NUMERIC_ENGINE_OPTIONS)
    for key, value in changed.items():
        assert CK.config_digest(cfg, 0, {**e, key: value}, data) != base, key
    assert CK.config_digest(cfg, 0, {**e, "log_every": 7, "checkpoint_minutes": 1}, data) == base
    other = images.copy()
    other[0, 0, 0, 0] ^= 1  # one pixel
    assert CK.data_digest(other, labels) != data and CK.data_digest(images, labels[::-1].copy()) != data


# --- item 9: nothing is loaded with pickle's full power --------------------------------------------


class Payload:
    """A pickle that runs a shell command when it is loaded without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted(path: Path, marker: Path, fmt: str) -> None:
    """A file at ``path`` whose loading with pickle's full power creates ``marker``: torch's zip
    format ("zip") or a bare pickle ("pickle"), which torch.load also reads."""
    obj = {"state_dict": Payload(marker), "config": tiny_cfg(), "seed": 0, "digest": Payload(marker)}
    if fmt == "zip":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize("fmt", ["zip", "pickle"])
def test_a_crafted_model_file_runs_nothing_and_is_named(tmp_path, fmt):
    model, marker = tmp_path / "model.pt", tmp_path / "pwned"
    crafted(model, marker, fmt)
    images, labels = tiny_data(n=10)
    with pytest.raises(
        DamagedFileError, match=rf"cannot read {re.escape(str(model))}: it holds more than tensors .* Delete it"
    ):
        INF.load_model(model)
    with pytest.raises(DamagedFileError, match="not run"):
        INF.infer_sets(model, {"x": (images, labels)})
    with pytest.raises(DamagedFileError):
        INF.infer_features(model, {"x": (images, labels)})
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["zip", "pickle"])
def test_a_crafted_checkpoint_runs_nothing_and_is_moved_aside(tmp_path, caplog, fmt):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    out.mkdir()
    crafted(out / CHECKPOINT, marker, fmt)
    images, labels = tiny_data()
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        T.fit(tiny_cfg(), images, labels, out, seed=0)
    assert not marker.exists()
    assert f"cannot resume from {out / CHECKPOINT}: it holds more than tensors" in caplog.text
    assert (out / (CHECKPOINT + ".unreadable")).exists() and (out / "model.pt").exists()


def test_a_checkpoint_holds_only_what_weights_only_reads_and_restores_every_rng(tmp_path):
    """numpy's RNG state and the probe history are stored as tensors and plain values."""
    images, labels = tiny_data()
    e, cpu = INF.resolve_engine({"device": "cpu"}), torch.device("cpu")
    run = T.setup(tiny_cfg(), images, labels, 0, e, cpu)
    progress = T.new_progress()
    T.record_probe(progress, 0, T.probe_features(run), None, run.probe_labels)
    np.random.seed(7)
    np.random.standard_normal()  # a cached Gaussian is part of the state too
    saved = np.random.get_state()
    CK.save_checkpoint(tmp_path / CHECKPOINT, run, progress)
    torch.load(tmp_path / CHECKPOINT, weights_only=True)  # no error
    np.random.seed(99)
    back = CK.load_checkpoint(tmp_path / CHECKPOINT, T.setup(tiny_cfg(), images, labels, 0, e, cpu))
    now = np.random.get_state()
    assert now[0] == saved[0] and np.array_equal(now[1], saved[1]) and now[2:] == saved[2:]
    assert isinstance(back["norms"][0], np.ndarray) and np.array_equal(back["norms"][0], progress["norms"][0])


# --- item 12: damaged files, a full disk, a killed writer -------------------------------------------


def test_a_truncated_checkpoint_is_moved_aside_and_training_starts_afresh(tmp_path, caplog):
    """torch's "failed finding central directory", with no path, failed every retry."""
    images, labels = tiny_data()
    interrupted(tmp_path / "cut", images, labels)
    ckpt = tmp_path / "cut" / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "cut", seed=0, engine=ENGINE)
    assert f"cannot resume from {ckpt}" in caplog.text
    assert "moved it to checkpoint.pt.unreadable, training starts from epoch 1" in caplog.text
    assert (tmp_path / "cut" / (CHECKPOINT + ".unreadable")).exists() and not ckpt.exists()
    T.fit(tiny_cfg(epochs=3), images, labels, tmp_path / "ref", seed=0, engine=ENGINE)
    assert same_weights(weights(tmp_path / "ref/model.pt"), weights(tmp_path / "cut/model.pt"))


def test_a_truncated_model_is_named_with_its_fix(tmp_path):
    """It said "OSError: [Errno 22] Invalid argument" and nothing else."""
    images, labels = tiny_data()
    T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
    model = tmp_path / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(
        DamagedFileError, match=rf"cannot read {re.escape(str(model))}: .*Delete it and run snakemake again"
    ):
        infer(model, images, labels)


def test_a_truncated_outputs_file_is_named_with_its_fix(tmp_path):
    """It said "BadZipFile: File is not a zip file" and nothing else."""
    path = tmp_path / "outputs/cifar10.npz"
    path.parent.mkdir()
    save_outputs(path, {"feature_norm": np.ones(5, np.float32), "logits": np.zeros((5, 3), np.float32)})
    assert load_outputs(path)["logits"].shape == (5, 3)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        DamagedFileError,
        match=rf"cannot read {re.escape(str(path))}: .*Delete the folder {re.escape(str(path.parent))} ",
    ):
        load_outputs(path)
    with pytest.raises(FileNotFoundError):  # a missing file is not called damaged
        load_outputs(tmp_path / "outputs/none.npz")


def full_disk(path: Path) -> None:
    """Make ``atomic_path``'s temporary for ``path`` (this process's) a link to /dev/full, whose
    writes fail as a full disk's do (ENOSPC)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    path.with_name(f".{path.name}.{os.getpid()}.tmp").symlink_to("/dev/full")


def test_a_full_disk_is_named_when_torch_writes(tmp_path):
    """torch.save to a path said "unexpected pos 704 vs 598"."""
    target = tmp_path / "model.pt"
    full_disk(target)
    with pytest.raises(OSError, match=rf"no space left on {re.escape(str(tmp_path))} \(writing model.pt"):
        CK.atomic_torch_save({"x": torch.zeros(1000)}, target)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_writers_are_removed_at_the_next_start(tmp_path, caplog):
    """A kill -9 in a checkpoint write left `.checkpoint.pt.<pid>.tmp` (115 MB) forever; one of a
    live process (maybe writing now) stays."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp_path.joinpath(f".{CHECKPOINT}.{dead_pid}.tmp").write_bytes(b"half")
        tmp_path.joinpath(f".model.pt.{live.pid}.tmp").write_bytes(b"busy")
        images, labels = tiny_data()
        with caplog.at_level(logging.INFO, logger="l2ood.train"):
            T.fit(tiny_cfg(epochs=1), images, labels, tmp_path, seed=0)
        assert not tmp_path.joinpath(f".{CHECKPOINT}.{dead_pid}.tmp").exists()
        assert tmp_path.joinpath(f".model.pt.{live.pid}.tmp").exists()
        assert f"removed {tmp_path}/.{CHECKPOINT}.{dead_pid}.tmp" in caplog.text
    finally:
        live.kill()
        live.wait()


def test_the_log_says_what_differs():
    cfg = tiny_cfg()
    e = INF.resolve_engine({"device": "cpu"})
    saved = CK.run_identity(cfg, 0, e, "abc")
    now = CK.run_identity(tiny_cfg(lr=0.2), 1, {**e, "deterministic": True}, "abd")
    assert CK.identity_differences(saved, now) == (
        "config differs: recipe.lr 0.1, now 0.2; seed differs: 0, now 1; engine differs: deterministic False, now True; "
        "training data differ (another prepared split: its content digest changed)"
    )
    assert "not recorded" in CK.identity_differences(None, now)
