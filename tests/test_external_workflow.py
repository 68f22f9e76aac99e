"""Issue 22 end to end: a run exported as a release zip and read back through `weights:` is not
trained and gives the trained run's metrics exactly; an image_folder OoD set of a few PNGs goes
through prepare, infer, evaluate and a table."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from workflow_files import built_copy, job_stats, snakemake

pytestmark = pytest.mark.slow

TINY = ["--configfile", "tests/config/tiny.yaml"]
RUN = "demo-smallcnn-l2"
OOD = ["digits-near", "digits-noise", "digits-scrambled"]


def _external_config(work):
    rng = np.random.default_rng(0)
    for i in range(12):  # 8x8 PNGs, two class folders (labels unused for an OoD set)
        path = work / "my_pngs" / f"c{i % 2}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    tiny = yaml.safe_load((work / "tests/config/tiny.yaml").read_text())
    cfg = {
        **tiny,
        "datasets": {"my-pngs": {"kind": "image_folder", "test": "my_pngs", "image_size": 8, "label": "My PNGs"}},
        "runs": {
            **tiny["runs"],
            "ext-l2": {"dataset": "digits-id", "model": "smallcnn", "model_kwargs": {"width": 8}, "head": "l2",
                       "weights": f"ext/{RUN}/seed{{seed}}/model.pt", "seeds": 2, "gpus": 0,
                       "ood": [*OOD, "my-pngs"], "tune_scale_on": OOD},
        },
        "studies": {"ext": {"tables": {"ext": {
            "kind": "l2_vs_nol2", "title": "External", "caption": "The exported demo model, read back.",
            "rows": [{"label": "SmallCNN", "nol2": "ext-l2", "l2": "ext-l2"}],
            "scores": ["feature_norm", "msp"], "ood": {"near": "digits-near", "mine": "my-pngs"}}}}},
    }
    (work / "ext.yaml").write_text(yaml.safe_dump(cfg))
    return ["--configfile", "ext.yaml"]


def test_a_release_read_back_through_weights_is_not_trained_and_gives_the_same_metrics(tmp_path_factory, tiny_built):
    work = built_copy(tmp_path_factory, tiny_built, "external")  # the tiny demo, trained
    snakemake(work, f"results/release/{RUN}.zip", "--cores", "2", *TINY)  # targets first: --configfile takes several
    with zipfile.ZipFile(work / f"results/release/{RUN}.zip") as zf:
        zf.extractall(work / "ext")
    card = (work / "ext" / RUN / "MODEL_CARD.md").read_text()
    assert "ID test accuracy" in card and "| digits-near | feature_norm |" in card

    ext = _external_config(work)
    plan = snakemake(work, "results/ext/tables/ext.md", "-n", "--cores", "2", *ext)
    jobs = job_stats(plan.stdout)
    assert "train" not in jobs and jobs.get("import_weights") == 2, jobs

    snakemake(work, "results/ext/tables/ext.md", "--cores", "2", *ext)
    for seed in (0, 1):
        config = yaml.safe_load((work / f"results/runs/ext-l2/seed{seed}/config.yaml").read_text())
        assert config["weights_file"]["path"] == f"ext/{RUN}/seed{seed}/model.pt"
        assert len(config["weights_file"]["sha256"]) == 64 and config["weights_file"]["layout"] == "l2ood"
        trained = pd.read_csv(work / f"results/runs/{RUN}/seed{seed}/metrics.csv")
        imported = pd.read_csv(work / f"results/runs/ext-l2/seed{seed}/metrics.csv")
        assert set(imported.ood) == {*OOD, "my-pngs"}
        values = ["ood", "score", "auroc", "fpr95", "fpr95_ood_positive", "aupr_in", "aupr_out", "accuracy", "scale"]
        pd.testing.assert_frame_equal(
            imported[imported.ood.isin(OOD)][values].reset_index(drop=True), trained[values].reset_index(drop=True)
        )
    table = (work / "results/ext/tables/ext.md").read_text()
    assert "My PNGs" in table and "SmallCNN" in table
