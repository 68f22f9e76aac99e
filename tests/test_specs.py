"""One reader of a table's or figure's spec (l2ood.specs, issue 21 items 2 and 5): each key has one
type, the schema rejects the other form naming the one it takes, and every config object stops the
run at an unknown key."""

import re

import pytest
from conftest import ROOT

from l2ood import specs
from test_config_typos import base, config, config_errors  # noqa: F401 (base, config: its fixtures)

LIBRARY = ROOT / "workflow/l2ood"


def errors_of(cfg: dict) -> list[str]:
    """What the workflow says at parse time (common.smk): the schema's errors, else ``check``'s."""
    return [e.strip() for e in config_errors(cfg)]


DEMO = ["studies", "demo"]
PAPER = ["studies", "paper"]


@pytest.mark.parametrize(
    "path, key, value, message",
    [
        # the other form of a one-type key, with the form it takes
        ([*DEMO, "tables", "demo"], "ood", ["digits-near"],
         r"studies\.demo\.tables\.demo\.ood: \['digits-near'\] is not a \{column key: data set\} mapping, e\.g\. .*"),
        ([*DEMO, "figures", "detectors"], "ood", ["digits-near"],
         r"studies\.demo\.figures\.detectors\.ood: \['digits-near'\] is not a \{column key: data set\} mapping.*"),
        ([*PAPER, "tables", "openood"], "near", ["cifar100"],
         r"studies\.paper\.tables\.openood\.near: \['cifar100'\] is not a \{column key: data set\} mapping.*"),
        ([*DEMO, "tables", "demo"], "scores", {"a": "msp"},
         r"studies\.demo\.tables\.demo\.scores: \{'a': 'msp'\} is not a list of scores, one row each.*"),
        ([*PAPER, "tables", "table3"], "columns", ["feature_norm"],
         r"studies\.paper\.tables\.table3\.columns: \['feature_norm'\] is not a \{column key: score\} mapping.*"),
        # seed_range's score columns are `columns`: `scores` there is a key it does not take
        ([*PAPER, "tables", "table3"], "scores", ["msp"],
         r"studies\.paper\.tables\.table3: unknown key\(s\) \['scores'\]; a table of kind seed_range takes: "
         r"caption, columns, headers, kind, ood, run, std, title"),
        # item 5: an unknown key stops the run at every level the config has
        ([*DEMO, "tables", "detectors"], "od", {},
         r"studies\.demo\.tables\.detectors: unknown key\(s\) \['od'\]; a table of kind detectors takes: .*"),
        ([*DEMO, "figures", "norm_variability"], "varibility", "cv",
         r"studies\.demo\.figures\.norm_variability: unknown key\(s\) \['varibility'\]; a figure of kind "
         r"norm_variability takes: caption, kind, panels, variability"),
        (["runs", "demo-smallcnn-l2"], "seed", 1, r"runs\.demo-smallcnn-l2: unknown key\(s\) \['seed'\]; known keys: .*"),
        (["recipes", "demo-sgd60"], "epoch", 3, r"recipes\.demo-sgd60: unknown key\(s\) \['epoch'\]; known keys: .*"),
        (["runs", "cifar10-resnet50-l2-sgd100", "recipe_overrides"], "epoch", 3,
         r"runs\.cifar10-resnet50-l2-sgd100\.recipe_overrides: unknown key\(s\) \['epoch'\]; known keys: .*"),
        (["datasets", "digits-id"], "test_frac", 0.3, r"datasets\.digits-id: unknown key\(s\) \['test_frac'\]; known keys: .*"),
        (["detectors"], "name", ["msp"], r"detectors: unknown key\(s\) \['name'\]; known keys: names, params"),
        (["detectors", "params"], "knnn", {"k": 5}, r"detectors\.params: unknown key\(s\) \['knnn'\]; known keys: .*"),
        (DEMO, "table", {}, r"studies\.demo: unknown key\(s\) \['table'\]; known keys: figures, paper_numbers, runs, tables"),
        ([], "studys", {}, r"\(top level\): unknown key\(s\) \['studys'\]; known keys: .*"),
    ],
)  # fmt: skip
def test_a_key_in_another_form_or_unknown_stops_the_run_naming_what_it_takes(config, path, key, value, message):
    node = config
    for k in path:
        node = node[k]
    node[key] = value
    errors = errors_of(config)
    assert any(re.fullmatch(message, e) for e in errors), errors


def test_the_reader_gives_columns_in_order_and_refuses_the_other_form():
    spec = {"ood": {"svhn": "svhn-r64", "cifar100": "cifar100-r64"}, "near": {"tin": "tinyimagenet-r32"},
            "far": {"svhn": "svhn-r64"}, "columns": {"norm_feature": "feature_norm"}, "scores": ["msp", "energy"],
            "rows": [{"label": "a", "nol2": "x", "l2": "y"}, {"label": "b", "run": "z", "score": "max_logit"}]}  # fmt: skip
    assert specs.ood_columns(spec) == [("svhn", "svhn-r64"), ("cifar100", "cifar100-r64")]
    assert specs.ood_columns(spec, "near") == [("tin", "tinyimagenet-r32")]
    assert specs.spec_datasets(spec) == ["svhn-r64", "cifar100-r64", "tinyimagenet-r32"]
    assert specs.score_columns(spec) == [("norm_feature", "feature_norm")]
    assert specs.named_scores(spec) == ["msp", "energy", "feature_norm", "max_logit"]
    assert specs.spec_runs(spec) == ["x", "y", "z"]
    assert specs.scores({}) == [specs.DEFAULT_SCORE] and specs.ood_columns({}) == []
    with pytest.raises(specs.SpecError, match=r"ood: \['svhn'\] is a list; it takes a \{column key: \.\.\.\} mapping"):
        specs.ood_columns({"ood": ["svhn"]})
    with pytest.raises(specs.SpecError, match=r"scores: .* is not a list of score names"):
        specs.scores({"scores": {"a": "msp"}})


#: the keys whose form l2ood.specs decides
ONE_TYPE_KEYS = ("ood", "near", "far", "scores", "columns")


@pytest.mark.parametrize("module", sorted(p.name for p in LIBRARY.glob("*.py") if p.name != "specs.py"))
def test_no_other_module_reads_a_one_type_key_of_a_spec(module):
    """A table's or figure's ``ood``, ``near``, ``far``, ``scores`` and ``columns`` are read through
    l2ood.specs only: no second place decides what form they have."""
    source = (LIBRARY / module).read_text()
    if module == "ondisk.py":  # its ``spec`` is a run's (run_spec), whose ``ood`` is a list of data sets
        source = source.replace('*spec["ood"]', "")
    keys = "|".join(ONE_TYPE_KEYS)
    found = re.findall(rf'\bspec(?:\[\s*"(?:{keys})"\s*\]|\.get\(\s*"(?:{keys})")', source)
    assert not found, f"{module} reads {found} itself; read it through l2ood.specs"


def test_the_demo_and_paper_specs_pass_with_one_type_per_key(config):
    assert errors_of(config) == []
    for study in config["studies"].values():
        for group in ("tables", "figures"):
            for spec in study.get(group, {}).values():
                for key in ("ood", "near", "far", "columns"):
                    assert isinstance(spec.get(key, {}), dict), (spec, key)
                assert isinstance(spec.get("scores", []), list), spec
