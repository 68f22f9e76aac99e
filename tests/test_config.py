"""The config's cross-checks, run resolution, the paper study's plan and its dry runs."""

import copy
import re
import time
import pytest
import yaml
from conftest import ROOT
from workflow_files import dry_run as planned_jobs

from l2ood import config as C
from l2ood import plan



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


def test_run_spec_fills_the_run_defaults_once(config):
    spec = C.run_spec(config, "cifar10-resnet18-l2-sgd60")  # states seeds, nothing else of RUN_DEFAULTS
    assert spec["seeds"] == 15 and spec["gpus"] == 1 and spec["probe_size"] == 1000
    assert spec["model_kwargs"] == {} and spec["recipe_overrides"] == {}
    assert "gpus" not in config["runs"]["cifar10-resnet18-l2-sgd60"]  # the config itself is not changed
    demo = C.resolve_run(config, "demo-smallcnn-l2")
    assert demo["probe_size"] == 200 and demo["model_kwargs"] == {"width": 16} and C.seeds(config, "demo-smallcnn-l2") == [0, 1, 2]
    assert C.run_spec(config, "demo-smallcnn-l2")["gpus"] == 0


def test_run_recipe_is_the_one_recipe_every_reader_sees(config):
    # plan's epochs and batch sizes come from the same merge training gets
    sgd60 = {k: v for k, v in config["recipes"]["sgd60"].items() if k != "source"}  # prose is not trained with
    assert C.run_recipe(config, "tinyimagenet-resnet50-l2-sgd60") == {**sgd60, "batch_size": 512}
    assert C.run_recipe(config, "cifar100-resnet50-l2-sgd150") == C.resolve_run(config, "cifar100-resnet50-l2-sgd150")["recipe"]
    df = plan.summary(config, "paper").set_index("run")
    assert df.loc["cifar10-resnet50-l2-sgd100", "epochs"] == 100 and df.loc["cifar10-cct-l2-cct300", "epochs"] == 310


def test_a_tables_digest_follows_its_resolved_spec_and_unknown_names_list_the_choices(config):
    """The table and figure rules' params hold this digest instead of the spec (the report's "Job
    parameters"): what the spec resolves to (a caption, a run's seeds, a data set's label) changes it."""
    digest = C.spec_digest(C.study_item(config, "demo", "tables", "demo"))
    assert re.fullmatch(r"[0-9a-f]{16}", digest) and digest == C.spec_digest(C.study_item(config, "demo", "tables", "demo"))
    for edit in (
        lambda c: c["studies"]["demo"]["tables"]["demo"].update(caption="reworded"),
        lambda c: c["runs"]["demo-smallcnn-l2"].update(seeds=2),  # fewer metrics files
        lambda c: c["datasets"]["digits-near"].update(label="Digits 5-9, renamed"),  # a printed label
    ):
        cfg = copy.deepcopy(config)
        edit(cfg)
        assert C.spec_digest(C.study_item(cfg, "demo", "tables", "demo")) != digest
    fig = C.study_item(config, "demo", "figures", "norm_variability")
    assert fig["panels"][0]["collapse"] == [f"results/runs/demo-smallcnn-nol2/seed{s}/collapse.csv" for s in range(3)]
    with pytest.raises(C.ConfigError, match=r"study 'demo' has no table 'tabel4'; it has \['demo', 'detectors'\]"):
        C.study_item(config, "demo", "tables", "tabel4")
    with pytest.raises(C.ConfigError, match=r"unknown study 'papr'; known: \['demo', 'paper'\]"):
        C.study_item(config, "papr", "figures", "fig5")


def test_study_runs_are_derived_from_its_tables_and_figures(config):
    assert C.study_runs(config, "demo") == ["demo-smallcnn-nol2", "demo-smallcnn-l2"]
    paper = C.study_runs(config, "paper")
    table_runs = {r for t in config["studies"]["paper"]["tables"].values() for r in C.spec_runs(t)}
    figure_runs = {r for f in config["studies"]["paper"]["figures"].values() for r in C.spec_runs(f)}
    assert len(paper) == len(set(paper)) == 22 and table_runs == set(paper) and figure_runs < table_runs
    assert "cifar10-resnet18-logitnorm-logitnorm200" in table_runs  # named by a Table 1 row's `run`
    # a run named only by a figure panel is trained too; an explicit `runs:` list adds extra runs first
    cfg = copy.deepcopy(config)
    cfg["studies"]["demo"]["figures"]["norm_variability"]["panels"].append({"title": "x", "run": "gtsrb-resnet18-l2-sgd60"})
    cfg["studies"]["demo"]["runs"] = ["cifar10-vgg16-l2-sgd60", "demo-smallcnn-l2"]
    assert C.study_runs(cfg, "demo") == [
        "cifar10-vgg16-l2-sgd60", "demo-smallcnn-l2", "demo-smallcnn-nol2", "gtsrb-resnet18-l2-sgd60"
    ]  # fmt: skip


def walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


def test_schema_holds_no_defaults_and_requires_the_optimizer_values(config):
    schema_path = ROOT / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    assert not [n for n in walk(schema) if isinstance(n, dict) and "default" in n]
    assert C.schema_errors(config, schema_path) == []
    cfg = copy.deepcopy(config)
    for name, key in [("sgd60", "momentum"), ("sgd100", "nesterov"), ("cct300", "betas"), ("convnext100", "weight_decay"),
                      ("sgd350", "milestones"), ("logitnorm200", "source")]:  # fmt: skip
        del cfg["recipes"][name][key]
    errors = C.schema_errors(cfg, schema_path)
    assert errors == [
        "recipes.cct300: 'betas' is a required property",
        "recipes.convnext100: 'weight_decay' is a required property",
        "recipes.logitnorm200: 'source' is a required property",
        "recipes.sgd100: 'nesterov' is a required property",
        "recipes.sgd350: 'milestones' is a required property",
        "recipes.sgd60: 'momentum' is a required property",
    ], errors


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(dataset="nope"), "runs.demo-smallcnn-l2.dataset: unknown data set 'nope'"),
        (lambda c: c["runs"]["cifar10-resnet18-l2-sgd60"]["ood"].append("svhn-r64"), "add a resized copy"),
        (lambda c: c["studies"]["paper"]["tables"]["table4"]["rows"][0].update(l2="missing-run"), "unknown run 'missing-run'"),
        (lambda c: c["datasets"]["tinyimagenet-r32"].update(of="imagenet"), "datasets.tinyimagenet-r32.of: unknown data set"),
        # read by no rule: prepare_inputs gave no input and prepare failed with an IndexError
        (lambda c: c["datasets"]["gaussian"].update(of=c["datasets"]["gaussian"].pop("like")),
         "datasets.gaussian.of: kind 'gaussian' takes no 'of'; write 'like' instead"),  # fmt: skip
        (lambda c: c["datasets"]["scrambled-cifar10"].update(like="cifar10"), "datasets.scrambled-cifar10.like: kind 'scrambled' takes no 'like'; write 'of'"),
        (lambda c: c["datasets"]["digits-near"].update(of="digits-id"), "datasets.digits-near.of: kind 'digits' is made from no other set; remove 'of'"),
        (lambda c: c["datasets"]["tinyimagenet-r32"].pop("of"), "datasets.tinyimagenet-r32: kind 'resize' needs 'of'"),
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
    proc = planned_jobs(*targets)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = set(re.findall(r"results/runs/([^/]+)/seed\d+/model\.pt", proc.stdout))
    return proc.jobs, runs


@pytest.mark.slow
def test_one_table_plans_only_its_runs(config):
    jobs, runs = dry_run("results/paper/tables/table4.md")
    rows = config["studies"]["paper"]["tables"]["table4"]["rows"]
    expected = {r[k] for r in rows for k in ("nol2", "l2")}
    assert runs == expected and len(expected) == 12
    assert jobs["train"] == sum(config["runs"][r]["seeds"] for r in expected) == 8 * 15 + 4 * 5
    assert "download_gtsrb" not in jobs and "paper_vs_reproduced" not in jobs


@pytest.mark.slow
def test_table6_needs_only_tinyimagenet_svhn_and_cifar100(config):
    jobs, runs = dry_run("results/paper/tables/table6.md")
    assert runs == {r for r in config["runs"] if r.startswith("tinyimagenet-")}
    assert set(j for j in jobs if j.startswith("download")) == {"download_tinyimagenet", "download_svhn", "download_cifar100"}


@pytest.mark.slow
def test_whole_paper_plans_quickly():
    start = time.perf_counter()
    jobs, runs = dry_run("paper")
    seconds = time.perf_counter() - start
    assert jobs["train"] == 210 and jobs["infer"] == 210 and jobs["evaluate"] == 210
    assert jobs["table"] == 10 and jobs["figure"] == 8 and jobs["paper_vs_reproduced"] == 1
    assert jobs["features"] == jobs["detectors"] == 45  # Table 4's three CIFAR-10 ResNet18 runs x 15 seeds only
    assert seconds < 60  # the bar is 30 s on this machine; generous here for a loaded CI


def test_config_names_each_function_of_its_rooms():
    """l2ood.config is the one name rules, scripts and tests call: every public name of the four
    config_* modules is there, the same object (a name added to a room and not to config fails)."""
    from l2ood import config_checks, config_runs, config_schema, config_studies

    for room in (config_checks, config_runs, config_schema, config_studies):
        public = [n for n, v in vars(room).items() if not n.startswith("_") and getattr(v, "__module__", None) == room.__name__]
        missing = [n for n in public if getattr(C, n, None) is not getattr(room, n)]
        assert not missing, f"{room.__name__}: {missing} not named by l2ood.config"
