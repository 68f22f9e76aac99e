"""The detectors wired into the workflow: what inference stores, the evaluation on stored features,
which runs store features, and the detector tables and figure on constructed numbers."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from l2ood import config as C
from l2ood import tables
from l2ood.detectors import DETECTORS, Head
from l2ood.evaluate_detectors import evaluate_detectors
from l2ood.detectors.network import EPSILONS, TEMPERATURES
from l2ood.inference import infer_features
from l2ood.layout import FEATURES_DIR, FEATURES_HEAD, features_file, odin_file
from l2ood.metrics import auroc, fpr95_ood_positive
from l2ood.models import build_model
from l2ood.stats import diff_ci


def base_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


# --- what inference stores ----------------------------------------------------------------------


def save_model(path, head="l2", scale=1.0):
    torch.manual_seed(0)
    cfg = {"model": "smallcnn", "model_kwargs": {"width": 4}, "head": head, "num_classes": 3, "image_size": 8,
           "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}}  # fmt: skip
    model = build_model("smallcnn", 3, head, 8, width=4)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(scale)
    torch.save({"state_dict": model.state_dict(), "config": cfg, "seed": 0}, path)
    return model.eval()


def test_infer_features_are_the_models_float16_penultimate_features(tmp_path):
    model = save_model(tmp_path / "model.pt", head="l2")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)
    sets = {("d", "train"): (images, np.arange(37) % 3), ("d", "test"): (images[:5], np.zeros(5))}
    out, head = infer_features(tmp_path / "model.pt", sets, engine={"device": "cpu", "infer_batch_size": 8})
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        logits, z = model(x)
    feats = out["d", "train"]["features"]
    assert feats.dtype == np.float16 and feats.shape == tuple(z.shape)
    np.testing.assert_allclose(feats, z.numpy(), rtol=1e-3, atol=1e-4)  # z before normalization, float16
    np.testing.assert_array_equal(out["d", "test"]["labels"], np.zeros(5, dtype=np.int64))
    assert out["d", "test"]["labels"].dtype == np.int64
    assert str(head["head"]) == "l2"
    np.testing.assert_array_equal(head["weight"], model.fc.weight.detach().numpy())
    # the stored head with the stored features gives the model's own logits (L2: normalized input)
    own = Head(head["weight"], head["bias"], head_normalized=True).logits(feats.astype(np.float64))
    np.testing.assert_allclose(own, logits.numpy(), atol=2e-3)


def test_features_beyond_float16_are_refused(tmp_path):
    save_model(tmp_path / "model.pt", head="nol2", scale=40.0)  # 40^depth: far beyond 65504
    images = np.full((2, 8, 8, 3), 255, dtype=np.uint8)
    with pytest.raises(ValueError, match="exceed float16's range"):
        infer_features(tmp_path / "model.pt", {("d", "test"): (images, np.zeros(2))}, engine={"device": "cpu"})


# --- the evaluation on stored features ---------------------------------------------------------------


def write_run(run_dir, head_name, rng, d=6, shift=3.0):
    """A features folder as the features job writes it: 3 classes, ID clustered, OoD shifted and scaled."""
    (run_dir / FEATURES_DIR).mkdir(parents=True)
    means = rng.normal(size=(3, d)) * 3
    w = rng.normal(size=(3, d))

    def ident(n):
        y = np.arange(n) % 3
        return (means[y] + rng.normal(size=(n, d))).astype(np.float16), y

    sets = {("id", "train"): ident(90), ("id", "test"): ident(30),
            ("far", "test"): ((rng.normal(size=(20, d)) * 0.3 + shift).astype(np.float16), np.zeros(20))}  # fmt: skip
    for (ds, split), (z, y) in sets.items():
        np.savez(run_dir / features_file(ds, split), features=z, labels=np.asarray(y, dtype=np.int64))
    np.savez(run_dir / FEATURES_DIR / FEATURES_HEAD, weight=w, bias=np.zeros(3), head=np.array(head_name))
    for ds, split in sets:  # ODIN's grid, as the features job stores it for each test set
        if split == "test":
            n, axes = len(sets[ds, split][1]), {"temperature": TEMPERATURES, "epsilon": EPSILONS}
            variants = ["raw", "normalized"] if head_name == "l2" else ["raw"]
            grids = {v: -rng.random((len(TEMPERATURES), len(EPSILONS), n)) for v in variants}
            np.savez(run_dir / odin_file(ds), **axes, **grids)
    return sets, w


META = {"run": "r", "seed": 0, "model": "m", "recipe": "x", "id": "id", "ood": ["far"]}


@pytest.mark.parametrize("head_name", ["l2", "nol2"])
def test_evaluate_detectors_rows_and_values(tmp_path, head_name):
    rng = np.random.default_rng(1)
    sets, w = write_run(tmp_path, head_name, rng)
    df = evaluate_detectors(tmp_path, {**META, "head": head_name}, params={"knn": {"k": 5}, "nnguide": {"k": 5}})
    raw = df[df.logits == "raw"].set_index("detector")
    assert list(raw.index) == list(DETECTORS)  # every detector, once, on the raw logits W z + b
    # the normalized variant: L2 runs only, and only the detectors that read the head
    normalized = set(df[df.logits == "normalized"].detector)
    assert normalized == ({n for n, c in DETECTORS.items() if c.uses_head} if head_name == "l2" else set())
    # values: the feature norm by hand, from the same float16 features
    id_z, far_z = (sets[k][0].astype(np.float64) for k in (("id", "test"), ("far", "test")))
    norm = np.linalg.norm
    assert raw.loc["feature_norm", "auroc"] == auroc(norm(id_z, axis=1), norm(far_z, axis=1))
    assert raw.loc["feature_norm", "fpr95_ood_positive"] == fpr95_ood_positive(norm(id_z, axis=1), norm(far_z, axis=1))
    # MaxLogit on the raw logits W z (bias 0)
    assert raw.loc["max_logit", "auroc"] == auroc((id_z @ w.T).max(1), (far_z @ w.T).max(1))
    # the accuracy of the model's own head (normalized input for L2: the argmax does not change here, bias 0)
    assert np.isclose(raw.accuracy.iloc[0], np.mean((id_z @ w.T).argmax(1) == sets["id", "test"][1]))
    assert set(df.columns) >= {"run", "seed", "head", "ood", "detector", "logits", "auroc", "fpr95", "accuracy"}


def test_detectors_that_do_not_read_the_head_give_the_same_scores_either_way():
    rng = np.random.default_rng(2)
    z, y, w = rng.normal(size=(60, 5)), np.arange(60) % 3, rng.normal(size=(3, 5))
    for name, cls in DETECTORS.items():
        if cls.uses_head:
            continue
        kw = {"k": 5} if name == "knn" else {}
        a = cls(**kw).fit(Head(w, np.zeros(3), False), z, y).score(z[:10])
        b = cls(**kw).fit(Head(w, np.zeros(3), True), z, y).score(z[:10])
        np.testing.assert_array_equal(a, b)


def test_evaluate_detectors_errors(tmp_path):
    rng = np.random.default_rng(3)
    write_run(tmp_path, "l2", rng)
    with pytest.raises(ValueError, match="stored head is 'l2' but the run's config says 'nol2'"):
        evaluate_detectors(tmp_path, {**META, "head": "nol2"})
    with pytest.raises(KeyError, match=r"unknown detectors \['nonesuch'\]"):
        evaluate_detectors(tmp_path, {**META, "head": "l2"}, names=["nonesuch"])
    with pytest.raises(TypeError, match="detectors.params.knn"):
        evaluate_detectors(tmp_path, {**META, "head": "l2"}, names=["knn"], params={"knn": {"neighbours": 5}})
    with pytest.raises(FileNotFoundError, match=r"features/nowhere.test.npz is missing"):
        evaluate_detectors(tmp_path, {**META, "head": "l2", "ood": ["nowhere"]})


# --- which runs store features, of which sets ----------------------------------------------------------


def test_only_the_runs_detector_tables_name_store_features():
    cfg = base_config()
    assert sorted(C.detector_runs(cfg)) == [
        "cifar10-resnet18-l2-sgd350", "cifar10-resnet18-l2-sgd60", "cifar10-resnet18-nol2-sgd350",
        "demo-smallcnn-l2", "demo-smallcnn-nol2",
    ]  # fmt: skip
    # a run's detectors see its own OoD sets, then the OpenOOD view's
    assert C.detector_ood(cfg, "cifar10-resnet18-l2-sgd60") == [
        "svhn", "cifar100", "tinyimagenet-r32", "gaussian", "scrambled-cifar10", "mnist", "dtd", "places365"]
    assert C.detector_ood(cfg, "demo-smallcnn-l2") == ["digits-near", "digits-noise", "digits-scrambled"]
    # the tables read the detector metrics, the other tables the run's metrics
    spec = C.resolve_table(cfg, cfg["studies"]["paper"]["tables"]["openood"])
    run = "cifar10-resnet18-l2-sgd60"
    assert spec["metrics"][run][0] == f"results/runs/{run}/seed0/detectors.csv"
    assert spec["labels"]["dtd"] == "Textures"
    fig = C.resolve_figure(cfg, cfg["studies"]["demo"]["figures"]["detectors"])
    assert C.figure_files(fig) == [f"results/runs/{r}/seed{s}/detectors.csv"
                                   for r in ("demo-smallcnn-nol2", "demo-smallcnn-l2") for s in range(3)]  # fmt: skip


def test_detector_table_with_a_wrong_set_is_refused():
    cfg = base_config()
    cfg["studies"]["demo"]["tables"]["detectors"]["ood"] = {"near": "digits-near", "svhn": "svhn", "x": "nowhere"}
    with pytest.raises(C.ConfigError) as err:
        C.check(cfg)
    assert "studies.demo.tables.detectors: 'svhn' is 32 px but run demo-smallcnn-nol2 sees 8 px" in str(err.value)
    assert "studies.demo.tables.detectors: unknown data set 'nowhere'" in str(err.value)


# --- the tables and the figure on constructed numbers -----------------------------------------------------

L2_SEEDS, NOL2_SEEDS = [0.90, 0.92, 0.94], [0.80, 0.80, 0.83]


def detector_metrics(tmp_path) -> dict:
    """Per-seed detector metrics files where the answer is known: KNN's L2 AUROC 0.90/0.92/0.94 on near."""
    files = {}
    for run, head, values in (("a", "nol2", NOL2_SEEDS), ("b", "l2", L2_SEEDS)):
        files[run] = []
        for seed, v in enumerate(values):
            rows = [{"run": run, "seed": seed, "head": head, "ood": ood, "detector": det, "logits": logits,
                     "auroc": v - off, "fpr95": 1 - v, "fpr95_ood_positive": 0.5 - off, "accuracy": 0.9}
                    for ood, off in (("near", 0.0), ("far1", 0.1), ("far2", 0.2))
                    for det in ("knn", "msp") for logits in ("raw", "normalized")]  # fmt: skip
            path = tmp_path / f"{run}{seed}.csv"
            pd.DataFrame(rows).to_csv(path, index=False)
            files[run].append(str(path))
    return files


def test_detectors_table_mean_std_and_difference(tmp_path):
    spec = {"kind": "detectors", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}],
            "ood": {"near": "near"}, "metrics": detector_metrics(tmp_path), "std": True,
            "labels": {"near": "Near set"}}  # fmt: skip
    t = tables.render_table(spec)
    knn = next(line for line in t.markdown.splitlines() if line.startswith("| KNN"))
    cells = [c.strip() for c in knn.strip("|").split("|")]
    ci = diff_ci(L2_SEEDS, NOL2_SEEDS)
    assert cells[1] == "distance"  # its family (Detector.family)
    assert cells[2] == "81.0 ± 1.7"  # No L2: mean 81.0, std 1.73
    assert cells[3] == "92.0 ± 2.0"
    assert cells[4] == f"+11.0 [{100 * ci.low:.1f}, {100 * ci.high:.1f}] *" and ci.excludes_zero
    row = t.tidy.query("row == 'KNN' and column == 'near/diff' and metric == 'auroc'").iloc[0]
    assert np.isclose(row.value, 11.0) and row.excludes_zero and np.isclose(row.low, 100 * ci.low)
    assert set(t.tidy.column) == {"near/nol2", "near/l2", "near/diff"}
    # W z + b logits: not the demo table's "MSP" (the head's own W z/||z|| + b), so not its name
    assert any(line.startswith("| MSP (Wz+b) |") for line in t.markdown.splitlines()) and "| MSP |" not in t.markdown
    assert set(t.tidy.query("score == 'msp'").row) == {"MSP (Wz+b)"} and set(t.tidy.logits) == {"raw"}
    assert "Near set No L2" in t.markdown and "*FPR95 (ID positive)*" in t.markdown
    assert r"92.0 $\pm$ 2.0" in t.latex and t.latex.count(r"\begin{tabular}") == 2  # AUROC, FPR95


def test_openood_table_averages_per_seed(tmp_path):
    spec = {"kind": "openood", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}],
            "near": {"near": "near"}, "far": {"f1": "far1", "f2": "far2"}, "metrics": detector_metrics(tmp_path),
            "detectors": ["knn"], "labels": {}}  # fmt: skip
    t = tables.render_table(spec)
    far = t.tidy.query("column == 'far/l2' and metric == 'auroc'").iloc[0]
    assert np.isclose(far.value, 100 * (np.mean(L2_SEEDS) - 0.15))  # each seed's mean of far1, far2, then over seeds
    fpr = t.tidy.query("column == 'near/l2' and metric == 'fpr95_ood_positive'").iloc[0]
    assert np.isclose(fpr.value, 50.0)  # the OoD-positive FPR, not the ID-positive one
    diff = t.tidy.query("column == 'far/diff' and metric == 'auroc'").iloc[0]
    assert np.isclose(diff.value, 100 * (np.mean(L2_SEEDS) - np.mean(NOL2_SEEDS)))
    assert "FPR@95 (OoD positive, as OpenOOD)" in t.markdown
    assert [line.split("|")[1].strip() for line in t.markdown.splitlines() if line.startswith("| KNN")] == [
        "KNN (No L2)", "KNN (L2)", "KNN (No L2)", "KNN (L2)"]


def test_std_is_an_option_of_every_table(tmp_path):
    rows = [{"run": r, "seed": s, "ood": "o", "score": "feature_norm", "auroc": v, "fpr95": 0.1, "accuracy": 0.9}
            for r, vals in (("a", NOL2_SEEDS), ("b", L2_SEEDS)) for s, v in enumerate(vals)]  # fmt: skip
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = {"kind": "l2_vs_nol2", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}], "ood": {"o": "o"},
            "metrics": {"a": [str(path)]}}  # fmt: skip
    assert "92.0 / 10.0" in tables.render_table(spec).markdown  # the paper's layout: means only
    with_std = tables.render_table({**spec, "std": True}).markdown
    assert "92.0 ± 2.0 / 10.0 ± 0.0" in with_std and "Mean ± standard deviation over 3 seeds" in with_std


def test_detector_table_and_figure_read_one_logits_variant_through_one_loader(tmp_path):
    # l2ood.results.load_detector_seeds: an absent variant stops the table and the figure alike, naming
    # the variants the files have (the figure used to draw empty panels)
    from l2ood.figures import render_figure

    spec = {"kind": "detectors", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}],
            "ood": ["near"], "metrics": detector_metrics(tmp_path), "labels": {}, "logits": "head"}  # fmt: skip
    names = r"no detector metrics with logits 'head' .*they have \['normalized', 'raw'\]"
    for render in (tables.render_table, render_figure):
        with pytest.raises(ValueError, match=names):
            render(spec)


def test_detectors_figure(tmp_path):
    from l2ood.figures import HEAD_COLORS, render_figure

    spec = {"kind": "detectors", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}],
            "ood": {"near": "near", "far1": "far1", "far2": "far2"}, "metrics": detector_metrics(tmp_path),
            "labels": {"near": "Near"}}  # fmt: skip
    fig = render_figure(spec)
    grid = np.array(fig.axes).reshape(2, 3)  # a row per family (logits: MSP, distance: KNN), a column per OoD set
    assert [ax.get_title() for ax in grid[0]] == ["Near", "far1", "far2"]
    assert [ax.get_ylabel() for ax in grid[:, 0]] == ["logits", "distance"]
    assert all(ax.get_xlabel() == "AUROC (%)" for ax in grid[1])
    assert [[t.get_text() for t in ax.get_yticklabels()] for ax in grid[:, 0]] == [["MSP (Wz+b)"], ["KNN"]]
    # the KNN means: No L2 gray, L2 blue, at the mean of the seeds
    knn = grid[1, 0]
    l2 = matplotlib_rgb(HEAD_COLORS["l2"])
    blue = [seg[0][0] for c in knn.collections if hasattr(c, "get_segments")
            and tuple(c.get_colors()[0][:3]) == l2 for seg in c.get_segments()]  # fmt: skip
    assert np.isclose(max(blue), 100 * np.mean(L2_SEEDS))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["No L2 (3 seeds)", "L2 (3 seeds)"]
    assert any(t.get_text() == "*" for t in knn.texts)  # KNN's interval excludes 0
    # issue 20: no empty panel, a chance line in each, one range per OoD set across the rows' pairs
    assert len(fig.axes) == 6 and all(any(list(ln.get_xdata()) == [50, 50] for ln in ax.lines) for ax in fig.axes)
    two = render_figure({**spec, "rows": spec["rows"] * 2, "metric": "fpr95"})
    assert len(two.axes) == 12 and all(ax.get_visible() for ax in two.axes)
    grid = np.array(two.axes).reshape(4, 3)
    assert all(grid[0, i].get_xlim() == grid[r, i].get_xlim() for r in range(4) for i in range(3))
    assert [ax.get_title() for ax in grid[:, 0]] == ["M: Near", "", "M: Near", ""]  # a title atop each pair
    assert any(list(ln.get_xdata()) == [95, 95] for ln in grid[0, 0].lines)  # FPR95 of a score blind to its input


def matplotlib_rgb(name):
    from matplotlib.colors import to_rgb

    return to_rgb(name)


def test_l2_vs_nol2_differences_are_an_option(tmp_path):
    rows = [{"run": r, "seed": s, "ood": "o", "score": "feature_norm", "auroc": v, "fpr95": 1 - v, "accuracy": 0.9}
            for r, vals in (("a", NOL2_SEEDS), ("b", L2_SEEDS)) for s, v in enumerate(vals)]  # fmt: skip
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = {"kind": "l2_vs_nol2", "caption": "c", "rows": [{"label": "M", "nol2": "a", "l2": "b"}], "ood": {"o": "o"},
            "metrics": {"a": [str(path)]}}  # fmt: skip
    plain, with_diff = tables.render_table(spec), tables.render_table({**spec, "diff": True})
    assert with_diff.markdown.startswith(plain.markdown)  # the paper's layout first, unchanged
    ci = diff_ci(L2_SEEDS, NOL2_SEEDS)
    ci_fpr = diff_ci([1 - v for v in L2_SEEDS], [1 - v for v in NOL2_SEEDS])
    line = next(x for x in with_diff.markdown.splitlines()[len(plain.markdown.splitlines()):] if x.startswith("| M |"))
    assert line.split("|")[2].strip() == f"{ci.format()} / {ci_fpr.format()}"
    assert line.split("|")[3].strip() == "+0.0"  # accuracy: equal on every seed, no spread: no interval, no star
    diff = with_diff.tidy[with_diff.tidy.stat == "diff"].set_index(["column", "metric"])
    assert np.isclose(diff.loc[("o/diff", "auroc"), "value"], 11.0) and diff.loc[("o/diff", "auroc"), "excludes_zero"]
    assert len(with_diff.tidy) == len(plain.tidy) + 3  # AUROC, FPR95, accuracy
    assert with_diff.html.count("<table") == 2 and with_diff.html.rstrip().endswith("</div>")
