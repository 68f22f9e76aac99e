"""l2ood.ondisk and l2ood.results without a workflow: the graph of what is built from what, the fix
it prints, the params records, and the checked readers of what tables and figures read."""

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from l2ood import config as C
from l2ood import invocation, ondisk, results


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_touch_and_dry_run_are_recognised_among_other_flags():
    assert invocation.touching(["snakemake", "--touch"]) and invocation.touching(["snakemake", "-nt", "--cores", "1"])
    assert not invocation.touching(["snakemake", "-n", "--cores", "1", "--config", "threads={train: 1}"])
    assert invocation.dry_running(["snakemake", "-pn"]) and invocation.dry_running(["snakemake", "--dry-run"])
    assert not invocation.dry_running(["snakemake", "--cores", "1", "--configfile", "n.yaml", "--touch"])


def test_the_graph_knows_what_each_result_is_built_from(config):
    nodes = ondisk.graph(config)
    model = nodes["results/runs/demo-smallcnn-l2/seed0/model.pt"]
    users = {n.path for n in model.users}
    assert users == {
        "results/runs/demo-smallcnn-l2/seed0/outputs",
        "results/runs/demo-smallcnn-l2/seed0/features",
        "results/demo/figures/norm_variability.png",
    }  # fmt: skip (its collapse.csv)
    table = nodes["results/paper/tables/table4.html"]
    assert "results/runs/cifar10-vgg16-l2-sgd60/seed14/metrics.csv" in table.inputs
    compare = nodes["results/paper/tables/paper_vs_reproduced.csv"]
    assert "results/paper/tables/table4.csv" in compare.inputs
    assert "results/paper/tables/detectors.csv" not in compare.inputs  # the detector tables go beyond the paper


def test_the_fix_moves_runs_and_studies_and_removes_cheap_files(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nodes = ondisk.graph(config)
    run = "results/runs/demo-smallcnn-l2/seed0"
    for name in ("model.pt", "metrics.csv", "outputs/digits-near.npz"):
        (tmp_path / run / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / run / name).write_text("x")
    (tmp_path / "results/demo/tables").mkdir(parents=True)
    (tmp_path / "results/demo/tables/demo.html").write_text("x")
    evaluation = nodes[f"{run}/metrics.csv"]
    gone = [evaluation, *ondisk.built_from([evaluation])]
    assert ondisk.fix(gone) == f"mv results/demo results/demo.old; rm -r {run}/metrics.csv"
    model = nodes[f"{run}/model.pt"]
    gone = [model, *ondisk.built_from([model])]
    assert ondisk.fix(gone) == f"mv results/demo results/demo.old; mv {run} {run}.old"


def test_params_records_compare_as_json_and_name_each_value(tmp_path):
    out = tmp_path / "metrics.csv"
    ondisk.write_params(out, {"meta": {"ood": ("a", "b"), "params": {}}, "code": "abc"})
    assert ondisk.params_record(out).name == ".metrics.csv.params.json"
    recorded = ondisk.json.loads(ondisk.params_record(out).read_text())
    assert (
        C.params_differences(recorded, ondisk.plain({"meta": {"ood": ["a", "b"], "params": {}}, "code": "abc"})) == []
    )
    now = {"meta": {"ood": ["a"], "params": {"knn": {"k": 5}}}, "code": "abc"}
    assert C.params_differences(recorded, ondisk.plain(now)) == [
        "meta.ood: recorded ['a', 'b'], now ['a']",
        "meta.params.knn: recorded None, now {'k': 5}",
    ]
    # a figure's panels: the panel and key that changed, and no digest line beside them
    old = {"spec": "1", "resolved": {"panels": [{"run": "a", "lr_drops": [2]}]}}
    new = {"spec": "2", "resolved": {"panels": [{"run": "a", "lr_drops": [1]}]}}
    assert C.params_differences(old, new) == ["resolved.panels[0].lr_drops: recorded [2], now [1]"]


def _metrics(path, run="r", seed=0, oods=("a", "b"), scores=("s", "t")):
    rows = [{"run": run, "seed": seed, "ood": o, "score": s, "auroc": 0.9, "fpr95": 0.2, "accuracy": 0.8}
            for o in oods for s in scores]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_metrics_file_cut_short_or_from_elsewhere_is_refused(tmp_path):
    files = {"r": [str(_metrics(tmp_path / f"results/runs/r/seed{s}/metrics.csv", seed=s)) for s in (0, 1)]}
    assert len(results.load_seeds(files)) == 8
    path = tmp_path / "results/runs/r/seed1/metrics.csv"
    text = path.read_text()
    last = text.rindex("\n", 0, len(text) - 1) + 1  # where the last row starts
    block = text.rindex("\n", 0, text.index(",b,")) + 1  # where OoD set b's rows start
    for content, what in [
        (text[:-10], "ends in the middle of a row"),
        (text[: last + 5] + "\n", r"has no number in \['auroc', 'fpr95', 'accuracy'\] on line\(s\) \[5\]"),
        (text[:last], r"lacks rows for OoD set\(s\) \['b'\]"),
        (text[:block], r"has fewer rows than .*seed0/metrics.csv of the same run"),
        ("", "cannot be read"),
    ]:
        path.write_text(content)
        with pytest.raises(results.DamagedResultError, match=rf"{path}: {what}.*rm {path}"):
            results.load_seeds(files)
    _metrics(path, seed=0)  # another seed's file copied over this one
    with pytest.raises(results.DamagedResultError, match=r"holds run r seed 0, not run r seed 1"):
        results.load_seeds(files)
    # the OoD sets its job was given (its params record) must all be there: no other seed to compare with
    _metrics(path, seed=1, oods=("a",))
    ondisk.write_params(path, {"meta": {"ood": ["a", "b"]}})
    with pytest.raises(results.DamagedResultError, match=r"has OoD sets \['a'\]; its job was given \['a', 'b'\]"):
        results.load_seeds({"r": [str(path)]})


def test_per_epoch_curves_and_study_tables_are_checked(tmp_path):
    a, b = tmp_path / "seed0/collapse.csv", tmp_path / "seed1/collapse.csv"
    for p in (a, b):
        p.parent.mkdir()
        pd.DataFrame({"epoch": [0, 1, 2], "norm_cv": [0.1, 0.2, np.nan if p == b else 0.3]}).to_csv(p, index=False)
    with pytest.raises(
        results.DamagedResultError, match=rf"{b}: has no number in \['norm_cv'\] on line\(s\) \[4\].*mv "
    ):
        results.load_curves([str(a), str(b)], "norm_cv")
    table = tmp_path / "table4.csv"
    table.write_text("row,column,metric,value\n")
    with pytest.raises(results.DamagedResultError, match=r"table4.csv: has no column \['std', 'n_seeds'\]"):
        results.load_study_tables([str(table)])


def test_the_check_of_the_whole_paper_is_quick(config, tmp_path, monkeypatch):
    """It runs at every start: the paper's ~800 jobs, none on disk here (each file is one stat)."""
    import time

    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert ondisk.problems(config, lambda kind, wildcards: {}) == []
    assert time.perf_counter() - start < 3.0


def test_a_prepared_splits_params_are_read_from_its_one_record(config, tmp_path, monkeypatch):
    """Issue 21: a split had two records of the same values ({split}.json and .{split}.npz.params.json);
    the check of copied files now reads {split}.json's."""
    from l2ood.data import write_record

    monkeypatch.chdir(tmp_path)
    split = ondisk.prepared_file("digits-id", "train")
    ondisk.Path(split).parent.mkdir(parents=True)
    ondisk.Path(split).write_bytes(b"images")
    write_record(split, {**C.prepare_spec(config, "digits-id"), "seed": 3}, {})
    nodes = ondisk.graph(config)

    def expected(kind, wildcards):
        return {"spec": C.prepare_spec(config, wildcards["dataset"]), "md5": {}}

    found = [text for text, _ in ondisk.stale_params(nodes, expected)]
    assert len(found) == 1 and f"{split} was made with other settings" in found[0], found
    assert "spec.seed: recorded 3, now 0" in found[0] and not ondisk.params_record(split).exists()
    ondisk.Path(ondisk.record_of(split)).unlink()  # a declared output of prepare: Snakemake makes the split again
    assert ondisk.stale_params(nodes, expected) == []
