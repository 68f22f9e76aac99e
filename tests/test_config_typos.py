"""Typos in the config stop the run at parse time, before any job (issue 19, items 10 and 11).

Each table and figure kind takes its own keys (the schema's per-kind entries), detector names and
hyperparameters are the detectors module's, ``engine.device`` is one torch knows, a data set's
``num_classes`` is the number of classes its labels have. Text that means a number or a boolean
(YAML 1.1's ``1e-2``, Snakemake's ``--config`` items) is read as the schema asks.
"""

import copy
import inspect
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from workflow_files import dry_run

from l2ood import config as C

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def base():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def config(base):
    return copy.deepcopy(base)


def config_errors(cfg: dict) -> list[str]:
    """What the workflow says at parse time (workflow/rules/common.smk): the schema's errors after
    reading text as numbers, else ``check``'s."""
    C.coerce_command_line(cfg, SCHEMA)
    errors = C.schema_errors(cfg, SCHEMA)
    if errors:
        return errors
    try:
        C.check(cfg)
    except C.ConfigError as err:
        return str(err).splitlines()[1:]
    return []


# The seven typos of issue 19, item 10, each as a file merged over config.yaml (--configfile) would
# give it: (name, the file's content, the message at parse time).
TYPOS = [
    ("table kind", {"studies": {"demo": {"tables": {"demo": {"kind": "l2_vs_nol"}}}}},
     r"studies\.demo\.tables\.demo\.kind: 'l2_vs_nol' is not one of \['l2_vs_nol2', 'norm_vs_scaled_softmax', "
     r"'seed_range', 'table1', 'detectors', 'openood'\]"),
    ("table key", {"studies": {"demo": {"tables": {"demo": {"scroes": ["msp"]}}}}},
     r"studies\.demo\.tables\.demo: unknown key\(s\) \['scroes'\]; a table of kind l2_vs_nol2 takes: "
     r"caption, diff, kind, ood, rows, scores, std, title"),
    ("figure key", {"studies": {"demo": {"figures": {"accuracy_vs_norm": {"bnis": 10}}}}},
     r"studies\.demo\.figures\.accuracy_vs_norm: unknown key\(s\) \['bnis'\]; a figure of kind accuracy_vs_norm "
     r"takes: binning, bins, caption, kind, panels, pooled"),
    ("detector name", {"detectors": {"names": ["msp", "knnn"]}},
     r"detectors\.names\.1: 'knnn' is not one of \['msp', 'max_logit', .*'knn', .*\]"),
    ("detector hyperparameter", {"detectors": {"params": {"knn": {"kk": 5}}}},
     r"detectors\.params\.knn: unknown key\(s\) \['kk'\]; known keys: k"),
    ("engine device", {"engine": {"device": "gpu"}},
     r"engine\.device: 'gpu' is not auto, cpu, cuda or cuda:<index>"),
    ("num_classes", {"datasets": {"digits-id": {"num_classes": 3}}},
     r"datasets\.digits-id\.num_classes: 3, but its labels have 5 classes \(classes \[0, 1, 2, 3, 4\]\); "
     r"set num_classes: 5"),
]  # fmt: skip


def merged(base: dict, update: dict) -> dict:
    """``update`` merged into a copy of ``base`` as Snakemake merges a --configfile (mappings key by key)."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("name, update, message", TYPOS, ids=[t[0] for t in TYPOS])
def test_each_typo_is_reported_with_its_key_and_the_choices(base, name, update, message):
    errors = config_errors(merged(base, update))
    assert any(re.fullmatch(message, e.strip()) for e in errors), errors


@pytest.mark.slow
@pytest.mark.parametrize("name, update, message", TYPOS, ids=[t[0] for t in TYPOS])
def test_each_typo_stops_a_dry_run_before_any_job(tmp_path, name, update, message):
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(update))
    proc = dry_run("--configfile", str(typo), timeout=120)
    assert proc.returncode != 0 and not proc.jobs, proc.text[-3000:]
    assert re.search(message, proc.text), proc.text[-3000:]


@pytest.mark.parametrize(
    "edit, message",
    [
        # a key another kind takes: a panel's `scale` is softmax_vs_norm's, a table's `std` not table1's
        (lambda c: c["studies"]["demo"]["figures"]["norm_distributions"]["panels"][0].update(scale=2),
         r"studies\.demo\.figures\.norm_distributions\.panels\.0: unknown key\(s\) \['scale'\]; known keys: run, seed, title"),
        (lambda c: c["studies"]["paper"]["tables"]["table1"].update(std=True),
         r"studies\.paper\.tables\.table1: unknown key\(s\) \['std'\]; a table of kind table1 takes: caption, kind, "
         r"ood, order, reported, rows, title"),
        (lambda c: c["studies"]["paper"]["tables"]["table4"]["rows"][0].update(nl2="x"),
         r"studies\.paper\.tables\.table4\.rows\.0: unknown key\(s\) \['nl2'\]; known keys: l2, label, nol2"),
        (lambda c: c["studies"]["paper"]["tables"]["openood"].pop("far"),
         r"studies\.paper\.tables\.openood: 'far' is a required property"),
        (lambda c: c["studies"]["demo"]["tables"]["detectors"].update(detectors=["msp", "engery"]),
         r"studies\.demo\.tables\.detectors\.detectors\.1: 'engery' is not one of \['msp', .*'energy', .*\]"),
        (lambda c: c["studies"]["demo"]["figures"]["detectors"].update(metric="aurc"),
         r"studies\.demo\.figures\.detectors\.metric: 'aurc' is not one of \['auroc', 'fpr95', 'fpr95_ood_positive'\]"),
        (lambda c: c["detectors"]["params"].update(mahalanobis={"eps": 1}),
         r"detectors\.params: unknown key\(s\) \['mahalanobis'\]; known keys: ash_b, ash_p, ash_s, dice, gen, knn, nnguide, odin, openmax, react, scale, vim"),
        (lambda c: c["detectors"]["params"].update(knn={"k": 0}), r"detectors\.params\.knn\.k: 0 is less than the minimum of 1"),
        (lambda c: c["engine"].update(device="cuda:x"), r"engine\.device: 'cuda:x' is not auto, cpu, cuda or cuda:<index>"),
        (lambda c: c["datasets"]["digits-id"].update(classes=[0, 1, 12]), r"datasets\.digits-id\.classes\.2: 12 is greater than the maximum of 9"),
        (lambda c: c["datasets"]["cifar10"].update(num_classes=100),
         r"datasets\.cifar10\.num_classes: 100, but its labels have 10 classes \(kind cifar10\); set num_classes: 10"),
        (lambda c: c["datasets"]["tinyimagenet-r32"].update(num_classes=10),
         r"datasets\.tinyimagenet-r32\.num_classes: 10, but its labels have 200 classes \(copied from tinyimagenet\); set num_classes: 200"),
        (lambda c: c["datasets"]["digits-noise"].update(num_classes=5, normalize=c["datasets"]["digits-id"]["normalize"]),
         r"datasets\.digits-noise\.num_classes: a gaussian set has no labels \(they are -1\); train on a labelled set"),
        (lambda c: c["datasets"]["digits-id"].pop("classes"), r"datasets\.digits-id: kind 'digits' needs 'classes'.*"),
    ],
)  # fmt: skip
def test_what_a_kind_does_not_take_and_counts_that_cannot_be_are_reported(config, edit, message):
    edit(config)
    errors = config_errors(config)
    assert any(re.fullmatch(message, e.strip()) for e in errors), errors


def test_every_kind_of_the_config_passes_and_engine_devices_torch_takes_do(config):
    assert config_errors(config) == []
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        config["engine"]["device"] = device
        assert config_errors(config) == []


# --- one place for each fact: the schema's names are the library's ----------------------------


def schema_defs() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["$defs"]


def kind_schemas(group: str) -> dict[str, dict]:
    """kind -> the schema of a table ("table") or figure ("figure") of that kind."""
    defs = schema_defs()
    out = {}
    for rule in defs[group]["allOf"]:
        kind = rule["if"]["properties"]["kind"]["const"]
        out[kind] = defs[rule["then"]["$ref"].split("/")[-1]]
    return out


def test_the_schemas_kinds_are_the_renderers_kinds():
    from l2ood.figures import FIGURE_KINDS
    from l2ood.tables import TABLE_KINDS

    defs = schema_defs()
    assert defs["table"]["properties"]["kind"]["enum"] == list(TABLE_KINDS) == list(kind_schemas("table"))
    assert defs["figure"]["properties"]["kind"]["enum"] == list(FIGURE_KINDS) == list(kind_schemas("figure"))
    assert set(FIGURE_KINDS) == set(C.FIGURE_READS)


def keys_read(source: str, name: str) -> set[str]:
    """The keys ``source`` reads from the mapping ``name`` (``name["key"]``, ``name.get("key"...)``)."""
    return {a or b for a, b in re.findall(rf'\b{name}(?:\["(\w+)"\]|\.get\("(\w+)")', source)}


def test_every_key_a_renderer_reads_is_one_the_schema_takes():
    """A key the renderers read that no kind's schema takes could never be set: the schema would
    reject it. (``metrics``, ``labels`` and the panels' files are added by l2ood.config's resolvers.)"""
    from l2ood import figures, specs, tables

    resolved = {"metrics", "labels"}
    table_keys = {k for s in kind_schemas("table").values() for k in s["properties"]}
    assert keys_read(inspect.getsource(tables), "spec") - resolved <= table_keys
    figure_keys = {k for s in kind_schemas("figure").values() for k in s["properties"]}
    assert keys_read(inspect.getsource(figures), "spec") - resolved <= figure_keys
    assert keys_read(inspect.getsource(specs), "spec") <= table_keys | figure_keys  # the one spec reader
    panel_keys = set()
    for s in kind_schemas("figure").values():
        items = s["properties"].get("panels", {}).get("items", {})
        items = schema_defs()[items["$ref"].split("/")[-1]] if "$ref" in items else items
        panel_keys |= set(items.get("properties", {}))
    panel_resolved = {"outputs", "outputs_dir", "outputs_dirs", "id_outputs", "head", "id", "metrics", "collapse",
                      "lr_drops", "probes"}  # fmt: skip
    assert keys_read(inspect.getsource(figures), "p") - panel_resolved <= panel_keys


def test_the_schemas_detectors_and_hyperparameters_are_the_detectors_modules():
    """The workflow checks names and hyperparameters at parse time without importing the detectors;
    this keeps the schema's lists those of l2ood.detectors.DETECTORS and its classes' arguments."""
    import jsonschema

    from l2ood.detectors import DETECTORS

    defs = schema_defs()
    params = yaml.safe_load(SCHEMA.read_text())["properties"]["detectors"]["properties"]["params"]["properties"]
    assert defs["detector"]["enum"] == list(DETECTORS)
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    takes = {n: inspect.signature(cls).parameters.values() for n, cls in DETECTORS.items()}
    takes = {n: {p.name: p.default for p in ps if p.kind in keyword} for n, ps in takes.items()}
    assert {n: list(s["properties"]) for n, s in params.items()} == {n: list(a) for n, a in takes.items() if a}
    for name, defaults in takes.items():  # the cited defaults pass the schema (ViM's None means "derived")
        given = {k: v for k, v in defaults.items() if v is not None}
        if given:
            jsonschema.validate(given, params[name])


def test_checking_the_config_imports_no_torch():
    """The config is checked at parse time on every node: without torch (seconds per job)."""
    code = (
        "import sys, yaml\n"
        "from l2ood import config as C\n"
        f"cfg = yaml.safe_load(open({str(ROOT / 'config.yaml')!r}))\n"
        f"C.coerce_command_line(cfg, {str(SCHEMA)!r}); assert not C.schema_errors(cfg, {str(SCHEMA)!r})\n"
        "C.check(cfg)\n"
        "for s in cfg['studies']:\n"
        "    for g in ('tables', 'figures'):\n"
        "        for n in cfg['studies'][s].get(g, {}): C.study_item(cfg, s, g, n)\n"
        "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "workflow", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# --- item 11: what a user writes is read as the schema asks ------------------------------------


def test_a_config_files_1e_2_and_true_are_read_as_the_number_and_boolean(config):
    # YAML 1.1 (PyYAML, Snakemake) reads 1e-2 without a dot as text: the file says what users write
    text = "lr: 1e-2\nwarmup_lr: 5E-4\nepochs: 1e2\nnesterov: 'true'\n"
    written = yaml.safe_load(text)
    assert written["lr"] == "1e-2" and written["epochs"] == "1e2"
    config["recipes"]["demo-sgd60"].update(written)
    config["engine"].update(amp="true", tf32="auto", compile="False", checkpoint_minutes="2.5")
    config["detectors"]["params"] = {"knn": {"k": "7"}}
    config["datasets"]["digits-id"]["label"] = "1e-2"  # text where the schema asks for text stays text
    assert config_errors(config) == []
    recipe = config["recipes"]["demo-sgd60"]
    assert (recipe["lr"], recipe["warmup_lr"], recipe["epochs"], recipe["nesterov"]) == (0.01, 0.0005, 100, True)
    assert type(recipe["epochs"]) is int and type(recipe["lr"]) is float
    assert config["engine"] == {"amp": True, "tf32": "auto", "compile": False, "checkpoint_minutes": 2.5}
    assert config["detectors"]["params"] == {"knn": {"k": 7}} and config["datasets"]["digits-id"]["label"] == "1e-2"
    assert C.resolve_run(config, "demo-smallcnn-l2")["recipe"]["lr"] == 0.01


def test_text_that_is_no_such_value_is_still_an_error(config):
    config["recipes"]["demo-sgd60"].update(lr="1e-2x", epochs="2.5")
    config["engine"].update(amp="maybe")
    errors = config_errors(config)
    assert "recipes.demo-sgd60.lr: '1e-2x' is not of type 'number'" in errors
    assert "recipes.demo-sgd60.epochs: '2.5' is not of type 'integer'" in errors
    assert "engine.amp: 'maybe' is not one of ['auto', True, False]" in errors


@pytest.mark.slow
def test_a_dry_run_accepts_1e_2_in_a_file_and_a_boolean_in_a_config_mapping(tmp_path):
    changes = tmp_path / "changes.yaml"
    changes.write_text("recipes:\n  demo-sgd60:\n    lr: 1e-2\n")
    proc = dry_run("--configfile", str(changes), "--config", "engine={amp: true}", "detectors={params: {knn: {k: 7}}}",
                   timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.jobs.get("train") == 6, proc.text[-3000:]
