"""External checkpoints (l2ood.weights) and OpenOOD's CIFAR ResNet18 (models/openood.py).

The OpenOOD layout is written here from its published description (key names and shapes of
ResNet18_32x32, openood/networks/resnet18_32x32.py), not from l2ood's module, and the loaded model
is checked against a functional forward pass written with those tensors alone."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from l2ood.detectors import DETECTORS, Head, score_all
from l2ood.models import build_model
from l2ood.weights import WeightsMismatchError, import_weights, read_state_dict

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix, c, gen):
    return {
        f"{prefix}.weight": 1 + 0.1 * torch.randn(c, generator=gen),
        f"{prefix}.bias": 0.1 * torch.randn(c, generator=gen),
        f"{prefix}.running_mean": 0.1 * torch.randn(c, generator=gen),
        f"{prefix}.running_var": 1 + 0.1 * torch.rand(c, generator=gen),
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


def openood_state_dict(num_classes=10, seed=0) -> dict:
    """Random weights under OpenOOD v1.5 ResNet18_32x32's keys and shapes."""
    gen = torch.Generator().manual_seed(seed)
    conv = lambda cout, cin, k: torch.randn(cout, cin, k, k, generator=gen) * (2 / (cin * k * k)) ** 0.5  # noqa: E731
    sd = {"conv1.weight": conv(64, 3, 3), **_bn("bn1", 64, gen)}
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{stage}.{block}"
            sd[f"{p}.conv1.weight"] = conv(width, cin if block == 0 else width, 3)
            sd.update(_bn(f"{p}.bn1", width, gen))
            sd[f"{p}.conv2.weight"] = conv(width, width, 3)
            sd.update(_bn(f"{p}.bn2", width, gen))
            if block == 0 and stage > 1:
                sd[f"{p}.shortcut.0.weight"] = conv(width, cin, 1)
                sd.update(_bn(f"{p}.shortcut.1", width, gen))
        cin = width
    sd["fc.weight"] = 0.05 * torch.randn(num_classes, 512, generator=gen)
    sd["fc.bias"] = 0.05 * torch.randn(num_classes, generator=gen)
    return sd


def functional_forward(sd, x):
    """ResNet18_32x32's forward in eval mode, from the tensors alone: (logits, features)."""

    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"])

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    for stage in range(1, 5):
        for block in (0, 1):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            y = bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            short = x
            if f"{p}.shortcut.0.weight" in sd:
                short = bn(F.conv2d(x, sd[f"{p}.shortcut.0.weight"], stride=stride), f"{p}.shortcut.1")
            x = F.relu(y + short)
    z = x.mean(dim=(2, 3))
    return z @ sd["fc.weight"].T + sd["fc.bias"], z


def _cfg(model="openood_resnet18_32x32", head="nol2"):
    return {"model": model, "num_classes": 10, "head": head, "image_size": 32, "model_kwargs": {}}


def test_openood_checkpoint_loads_and_computes_what_openood_computes(tmp_path):
    sd = openood_state_dict()
    src = tmp_path / "best.ckpt"
    torch.save(sd, src)
    record = import_weights(src, _cfg(), seed=0, out=tmp_path / "model.pt")
    assert record["layout"] == "backbone+fc" and len(record["sha256"]) == 64
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    model = build_model("openood_resnet18_32x32", 10, "nol2", 32).eval()
    model.load_state_dict(ckpt["state_dict"])
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, z = model(x)
        ref_logits, ref_z = functional_forward(sd, x)
    torch.testing.assert_close(z, ref_z, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_openood_checkpoint_is_scored_by_every_detector(tmp_path):
    sd = openood_state_dict()
    gen = torch.Generator().manual_seed(2)
    x_train, x_id, x_ood = (torch.rand(n, 3, 32, 32, generator=gen) for n in (120, 12, 12))
    with torch.no_grad():
        (_, z_train), (_, z_id), (_, z_ood) = (functional_forward(sd, x) for x in (x_train, x_id, x_ood))
    head = Head(sd["fc.weight"].numpy(), sd["fc.bias"].numpy(), head_normalized=False)
    y_train = np.arange(120) % 10
    names = [n for n, c in DETECTORS.items() if not c.stored]  # ODIN: scored from the network, in the features job
    scores = score_all(head, {"id": z_id.numpy(), "ood": z_ood.numpy()}, z_train.numpy(), y_train, names=names)
    assert set(scores) == set(names) and len(names) == len(DETECTORS) - 1
    for name, per_set in scores.items():
        assert all(np.isfinite(v).all() and v.shape == (12,) for v in per_set.values()), name


def test_module_prefix_and_containers_are_read(tmp_path):
    sd = openood_state_dict()
    torch.save({"net": {f"module.{k}": v for k, v in sd.items()}, "epoch": 100}, tmp_path / "wrapped.pt")
    assert set(read_state_dict(tmp_path / "wrapped.pt")) == set(sd)


def test_a_mismatch_names_missing_and_unexpected_keys_and_the_architectures_that_fit(tmp_path):
    src = tmp_path / "openood.ckpt"
    torch.save(openood_state_dict(), src)
    with pytest.raises(WeightsMismatchError) as err:
        import_weights(src, _cfg(model="resnet18"), seed=0, out=tmp_path / "model.pt")
    msg = str(err.value)
    assert str(src) in msg and "Missing keys:" in msg and "Unexpected keys:" in msg
    assert "openood_resnet18_32x32" in msg  # the registered architecture it does fit
    assert not (tmp_path / "model.pt").exists()


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "x.pt")
    with pytest.raises(WeightsMismatchError, match="x.pt: holds no state_dict"):
        read_state_dict(tmp_path / "x.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(Exception, match="cut.pt"):
        read_state_dict(tmp_path / "cut.pt")


def test_the_config_check_of_a_weights_run_names_what_does_not_fit():
    """A run is trained (recipe) or imported (weights), one of the two; {seed} for several seeds; no
    figure of training records; an image_folder set names its test path."""
    import copy

    import yaml
    from conftest import ROOT

    from l2ood import config as C

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    run = {k: v for k, v in base["runs"]["demo-smallcnn-l2"].items() if k not in ("recipe", "probe_size")}

    def errors(**changes):
        cfg = copy.deepcopy(base)
        cfg["runs"]["ext"] = {**run, **changes}
        try:
            C.check(cfg)
        except C.ConfigError as err:
            return str(err)
        return ""

    assert errors(weights="ckpt/s{seed}.pt") == ""
    assert "runs.ext.recipe: a run with `weights:` is not trained; remove `recipe`" in errors(weights="a{seed}.pt", recipe="demo-sgd60")
    assert "runs.ext.weights: 'one.pt' names one file for 3 seeds; put {seed}" in errors(weights="one.pt")
    assert errors(weights="one.pt", seeds=1) == ""
    assert "runs.ext: needs a `recipe` to train with (or `weights:`" in errors()
    cfg = copy.deepcopy(base)
    cfg["runs"]["ext"] = {**run, "weights": "s{seed}.pt"}
    cfg["studies"]["demo"]["figures"]["variability"] = {"kind": "norm_variability", "caption": "c",
                                                        "panels": [{"run": "ext", "label": "x"}]}
    with pytest.raises(C.ConfigError, match="kind norm_variability reads training records, which run ext"):
        C.check(cfg)
    cfg = copy.deepcopy(base)
    cfg["datasets"]["mine"] = {"kind": "image_folder", "image_size": 8}
    with pytest.raises(C.ConfigError, match="datasets.mine: kind 'image_folder' needs 'test'"):
        C.check(cfg)


def test_an_imported_openood_checkpoint_gets_odins_scores_from_the_network(tmp_path):
    """ODIN, the detector that needs the network, on the imported OpenOOD model: finite, and with
    eps = 0 the temperature-scaled MSP of OpenOOD's own forward pass (log softmax max at T)."""
    from l2ood.detectors.network import ODIN
    from l2ood.odin import odin_sets

    sd = openood_state_dict()
    torch.save(sd, tmp_path / "best.ckpt")
    cfg = {**_cfg(), "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    import_weights(tmp_path / "best.ckpt", cfg, seed=0, out=tmp_path / "model.pt")
    images = np.random.default_rng(3).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    grid = odin_sets(tmp_path / "model.pt", {"ood": images}, engine={"device": "cpu"})["ood"]
    scores = ODIN().score_stored(grid, "raw")
    assert scores.shape == (6,) and np.isfinite(scores).all()
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255 - 0.5) / 0.25
    with torch.no_grad():
        logits, _ = functional_forward({k: v.double() if v.is_floating_point() else v for k, v in sd.items()}, x)
    expected = torch.log_softmax(logits / 1000.0, dim=1).max(dim=1).values.numpy()
    np.testing.assert_allclose(ODIN(temperature=1000.0, epsilon=0.0).score_stored(grid, "raw"), expected, atol=1e-5)
