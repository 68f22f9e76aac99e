"""The config's cross-checks, run resolution, the paper study's plan and its dry runs."""

import copy
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from l2ood import config as C
from l2ood import plan
from workflow_files import job_stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    C.check(cfg)
    return cfg


def test_resolve_run_merges_recipe_overrides(config):
    r = C.resolve_run(config, "cifar10-resnet50-l2-sgd100")
    assert r["recipe"]["batch_size"] == 768 and r["recipe"]["milestones"] == [75, 90]
    assert r["num_classes"] == 10 and r["image_size"] == 32 and r["head"] == "l2"
    assert config["recipes"]["sgd100"]["batch_size"] == 1024  # the shared recipe is untouched


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(dataset="nope"), "runs.demo-smallcnn-l2.dataset: unknown data set 'nope'"),
        (lambda c: c["runs"]["cifar10-resnet18-l2-sgd60"]["ood"].append("svhn-r64"), "add a resized copy"),
        (lambda c: c["studies"]["paper"]["tables"]["table4"]["rows"][0].update(l2="missing-run"), "unknown run 'missing-run'"),
        (lambda c: c["datasets"]["tinyimagenet-r32"].update(of="imagenet"), "datasets.tinyimagenet-r32.of: unknown data set"),
    ],
)
def test_check_names_the_broken_reference(config, edit, message):
    cfg = copy.deepcopy(config)
    edit(cfg)
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.check(cfg)


def test_paper_plan_counts(config):
    df = plan.summary(config, "paper")
    # 10 CIFAR-10 runs with 15 seeds, 4 with 5 (CCT, ConvNeXt), 8 more runs with 5 seeds
    assert len(df) == 22 and df.seeds.sum() == 10 * 15 + 12 * 5 == 210
    assert 10 < df.gpu_hours.sum() < 100
    assert plan.runtime_request(config, "cifar10-resnet18-l2-sgd60") < plan.runtime_request(
        config, "cifar10-resnet18-l2-sgd350"
    )


def dry_run(*targets):
    proc = subprocess.run(["snakemake", "-n", *targets], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_stats(proc.stdout)
    runs = set(re.findall(r"results/runs/([^/]+)/seed\d+/model\.pt", proc.stdout))
    return jobs, runs


def test_one_table_plans_only_its_runs(config):
    jobs, runs = dry_run("results/paper/tables/table4.md")
    rows = config["studies"]["paper"]["tables"]["table4"]["rows"]
    expected = {r[k] for r in rows for k in ("plain", "l2")}
    assert runs == expected and len(expected) == 12
    assert jobs["train"] == sum(config["runs"][r]["seeds"] for r in expected) == 8 * 15 + 4 * 5
    assert "download_gtsrb" not in jobs and "paper_vs_reproduced" not in jobs


def test_table6_needs_only_tinyimagenet_svhn_and_cifar100(config):
    jobs, runs = dry_run("results/paper/tables/table6.md")
    assert runs == {r for r in config["runs"] if r.startswith("tinyimagenet-")}
    assert set(j for j in jobs if j.startswith("download")) == {"download_tinyimagenet", "download_svhn", "download_cifar100"}


def test_whole_paper_plans_quickly():
    start = time.perf_counter()
    jobs, runs = dry_run("paper")
    seconds = time.perf_counter() - start
    assert jobs["train"] == 210 and jobs["infer"] == 210 and jobs["evaluate"] == 210
    assert jobs["table"] == 8 and jobs["figure"] == 7 and jobs["paper_vs_reproduced"] == 1
    assert seconds < 60  # the bar is 30 s on this machine; generous here for a loaded CI
