"""ODIN (l2ood.odin, l2ood.detectors.network): the perturbation against pytorch-ood 0.4's ODIN, eps = 0
by hand, the stored grid read by the detector, and the grid the schema allows."""

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT
from l2ood.detectors import ODIN, Head
from l2ood.detectors.network import EPSILONS, TEMPERATURES
from l2ood.odin import odin_grid, odin_sets
from test_detectors_workflow import save_model

STD = torch.tensor([0.2, 0.3, 0.5])


def tiny_model():
    """Smooth (tanh): no input gradient is exactly zero, where OpenOOD's ge and pytorch-ood's sign differ."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)
    ).eval()


def test_odin_is_pytorch_oods_odin():
    from pytorch_ood.detector import ODIN as TheirODIN

    model, x = tiny_model(), torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = odin_grid(model, x, STD)
    assert ours.shape == (len(TEMPERATURES), len(EPSILONS), 16) and ours.dtype == torch.float64
    for i, t in enumerate(TEMPERATURES):
        for j, eps in enumerate(EPSILONS):
            theirs = TheirODIN(model, eps=eps, temperature=t, norm_std=STD.tolist()).predict(x)  # -max softmax
            np.testing.assert_allclose(np.exp(ours[i, j].numpy()), -theirs.numpy(), rtol=1e-6, atol=0)
    # the perturbation moves the scores (else the comparison above would not test it)
    assert (ours[:, 2] - ours[:, 0]).abs().max() > 1e-4


def test_eps_zero_is_the_temperature_scaled_msp():
    model, x = tiny_model(), torch.randn(9, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    grid = odin_grid(model, x, STD)
    with torch.no_grad():
        logits = model(x).double().numpy()
    for i, t in enumerate(TEMPERATURES):
        l = logits / t
        msp = np.exp(l.max(1)) / np.exp(l).sum(1)
        np.testing.assert_allclose(np.exp(grid[i, EPSILONS.index(0.0)].numpy()), msp, rtol=1e-12)


def test_the_step_is_the_gradient_sign_over_the_channel_std():
    """A linear model (logits = A x): the gradient of -log S_yhat is known, so is x'."""
    torch.manual_seed(3)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 4, bias=False)).eval()
    x = torch.randn(5, 3, 2, 2, dtype=torch.float32)
    eps, t = 0.0028, 10.0
    grid = odin_grid(lin, x, STD, temperatures=(t,), epsilons=(eps,))
    a = lin[1].weight.detach().double()
    xf = x.reshape(5, -1).double()
    p = torch.softmax(xf @ a.T / t, dim=1)
    yhat = (xf @ a.T).argmax(1)
    grad = (p @ a - a[yhat]) / t  # d(-log S_yhat)/dx
    std = STD.double().repeat_interleave(4)
    x2 = xf - eps * torch.where(grad >= 0, 1.0, -1.0) / std
    expected = torch.log_softmax(x2 @ a.T / t, dim=1).max(1).values
    np.testing.assert_allclose(grid[0, 0].numpy(), expected.numpy(), rtol=1e-5)


@pytest.mark.parametrize("head", ["l2", "nol2"])
def test_odin_sets_perturbs_each_variants_own_logits(tmp_path, head):
    model = save_model(tmp_path / "model.pt", head=head)
    images = np.random.default_rng(4).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    out = odin_sets(tmp_path / "model.pt", {"d": images}, engine={"device": "cpu"})["d"]
    assert set(out) == {"temperature", "epsilon", "raw"} | ({"normalized"} if head == "l2" else set())
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    std = torch.full((3,), 0.25)
    raw = odin_grid(lambda v: model.fc(model.encoder(v)), x, std)  # W z + b
    np.testing.assert_allclose(out["raw"], raw.numpy(), rtol=1e-6)
    if head == "l2":
        np.testing.assert_allclose(out["normalized"], odin_grid(lambda v: model(v)[0], x, std).numpy(), rtol=1e-6)
        assert not np.allclose(out["normalized"], out["raw"])


def test_the_detector_picks_its_pair_from_the_stored_grid():
    grid = {"temperature": np.array(TEMPERATURES), "epsilon": np.array(EPSILONS)}
    grid["raw"] = np.arange(len(TEMPERATURES) * len(EPSILONS) * 2, dtype=float).reshape(len(TEMPERATURES), -1, 2)
    d = ODIN(temperature=1, epsilon=0.0028)
    np.testing.assert_array_equal(d.score_stored(grid, "raw"), grid["raw"][0, 2])
    np.testing.assert_array_equal(ODIN().score_stored(grid, "raw"), grid["raw"][1, 1])  # OpenOOD's T = 1000, 0.0014
    with pytest.raises(KeyError, match="no 'normalized' logits"):
        d.score_stored(grid, "normalized")
    with pytest.raises(ValueError, match=r"temperature one of \[1.0, 1000.0\]"):
        ODIN(temperature=500)
    with pytest.raises(ValueError, match="rerun the features job"):
        d.score_stored({**grid, "epsilon": np.array([0.0, 0.001, 0.002])}, "raw")
    with pytest.raises(TypeError, match="needs the network"):
        d.fit(Head(np.eye(3), np.zeros(3), False)).score(np.zeros((1, 3)))


def test_the_schema_allows_the_stored_grid():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    odin = schema["properties"]["detectors"]["properties"]["params"]["properties"]["odin"]["properties"]
    assert tuple(odin["temperature"]["enum"]) == TEMPERATURES and tuple(odin["epsilon"]["enum"]) == EPSILONS


@pytest.mark.parametrize("head", ["l2", "nol2"])
def test_the_detectors_job_scores_the_chosen_pair_of_each_variant(tmp_path, head):
    from l2ood.evaluate_detectors import evaluate_detectors
    from l2ood.layout import odin_file
    from l2ood.metrics import auroc
    from test_detectors_workflow import META, write_run

    write_run(tmp_path, head, np.random.default_rng(5))
    df = evaluate_detectors(tmp_path, {**META, "head": head}, ["odin"], {"odin": {"temperature": 1, "epsilon": 0.0}})
    assert sorted(df.logits) == (["normalized", "raw"] if head == "l2" else ["raw"])
    for variant, value in zip(df.logits, df.auroc):
        grids = [np.load(tmp_path / odin_file(d))[variant][0, 0] for d in ("id", "far")]
        assert value == auroc(*grids)
    (tmp_path / odin_file("far")).unlink()
    with pytest.raises(FileNotFoundError, match=r"far.test.odin.npz is missing: the features job stores it"):
        evaluate_detectors(tmp_path, {**META, "head": head}, ["odin"])


def test_a_pair_off_the_grid_is_refused_when_the_config_is_read():
    from l2ood import config as C

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["detectors"]["params"] = {"odin": {"temperature": 500, "epsilon": 0.0014}}
    errors = "\n".join(C.schema_errors(cfg, str(ROOT / "workflow/schemas/config.schema.yaml")))
    assert "detectors.params.odin.temperature: 500 is not one of [1.0, 1000.0]" in errors, errors
