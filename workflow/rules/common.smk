# Config -> targets: schema validation, wildcard constraints and every input function.
# The logic lives in l2ood.config (unit-tested); these are the Snakemake-facing adapters.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from l2ood import code
from l2ood import config as cfglib
from l2ood import own_data, plan, sources  # none imports torch: this runs at parse time on every node
from l2ood.engine import TRAINING_CODE_VERSION
from l2ood.layout import DETECTOR_METRICS, FEATURES_DIR, METRICS, OUTPUTS_DIR, RUN_DIR, TRAIN_OUTPUTS, run_file
from l2ood.layout import COMPARISON, COMPARISON_FORMATS, FIGURE_FORMATS, figure_file, prepared_file, prepared_record
from l2ood.layout import RELEASE, study_file, table_file

_schema = workflow.source_path("../schemas/config.schema.yaml")
cfglib.coerce_command_line(config, _schema)  # --config gives text inside lists and mappings
_errors = cfglib.schema_errors(config, _schema)
if _errors:
    _hint = "(nested values are easiest in a file merged over config.yaml: --configfile my.yaml)"
    raise WorkflowError(
        "config does not match workflow/schemas/config.schema.yaml:\n  {}\n{}".format("\n  ".join(_errors), _hint)
    )
try:
    cfglib.check(config)
except cfglib.ConfigError as err:
    raise WorkflowError(str(err)) from None


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed=r"\d+",
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    split=r"train|test",
    study=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    table=r"(?!paper_vs_reproduced\b)[A-Za-z0-9][A-Za-z0-9_.-]*",  # that name is the comparison's
    figure=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


prepared = prepared_file  # resources/prepared/{dataset}/{split}.npz (l2ood.layout)


def read_prepared(dataset, split):
    """What a job reading a prepared split declares: the split ancient() (a touch or a copy's new
    modification time reruns nothing; its content is pinned by the prepare job's params and its
    record's MD5), and its record as is, so that a prepare job that runs again (a changed data set)
    reruns what reads it. A split deleted by hand is made again before the plan (rules/ondisk.smk)."""
    return [ancient(prepared(dataset, split)), prepared_record(dataset, split)]


def dataset_spec(name):
    if name not in config["datasets"]:
        raise WorkflowError(f"unknown data set {name!r}; define it under 'datasets:' in config.yaml")
    return config["datasets"][name]


def run_spec(name):
    """The run with its defaults (l2ood.config.RUN_DEFAULTS)."""
    if name not in config["runs"]:
        raise WorkflowError(f"unknown run {name!r}; define it under 'runs:' in config.yaml")
    return cfglib.run_spec(config, name)


def from_config(function, *args):
    """An l2ood.config function on this config; its ConfigError as a WorkflowError (the message, no traceback)."""
    try:
        return function(config, *args)
    except cfglib.ConfigError as err:
        raise WorkflowError(str(err)) from None


def study_spec(name):
    return from_config(cfglib.study_spec, name)


# --- data ------------------------------------------------------------------------------------


def prepare_source(dataset, split):
    """The prepared split a derived data set is made from, as (dataset, split); None for the others."""
    spec = dataset_spec(dataset)
    key = cfglib.SOURCE_KEY.get(spec["kind"])
    if key is None:
        return None
    return spec[key], split if spec["kind"] == "resize" else "test"  # the synthetic sets have a test split only


def prepare_inputs(wildcards):
    kind = dataset_spec(wildcards.dataset)["kind"]
    if kind in sources.RAW_KINDS:
        # the download's record, not the archives (prepare reads them from sources.raw_files): ancient,
        # as a forced download that checked them again has changed nothing the MD5s in params pin
        return {"verified": ancient(sources.verified_file(kind, config["download"]["root"]))}
    if kind in own_data.KINDS:
        return {"own": own_data_files(wildcards.dataset, wildcards.split)}
    source = prepare_source(wildcards.dataset, wildcards.split)
    return dict(zip(("split", "record"), read_prepared(*source))) if source else {}


def own_data_files(dataset, split):
    """The files an image_folder or npz data set's split is read from (docs/own.md): each image of a
    folder, so that an image added, replaced or removed prepares the split again."""
    spec = dataset_spec(dataset)
    if split not in spec:
        raise WorkflowError(f"datasets.{dataset}: a {spec['kind']} set with no `{split}:` path has no {split} split")
    path = Path(spec[split])
    if spec["kind"] == "npz" or not path.is_dir():
        return [str(path)]  # a missing folder: the prepare job names it
    return sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def prepare_params(wildcards):
    dataset_spec(wildcards.dataset)  # a clear error for an unknown data set
    return cfglib.prepare_spec(config, wildcards.dataset)


def prepare_md5(wildcards):
    return raw_md5(wildcards.dataset)


def raw_md5(dataset):
    """The replaced checksums of this data set's raw files only: another kind's do not re-prepare it."""
    kind = dataset_spec(dataset)["kind"]
    if kind not in sources.RAW_KINDS:
        return {}
    names = sources.files(kind, config["download"]["md5"])
    return {n: m for n, m in config["download"]["md5"].items() if n in names}


# --- training and inference ------------------------------------------------------------------


def train_input(wildcards):
    return read_prepared(run_spec(wildcards.run)["dataset"], "train")  # the split first: scripts/train.py


def runs_pattern(external):
    """A regex of the runs that are (external=False) or are not (True) trained: the train and the
    import_weights rule each make the model of their own runs only."""
    names = [r for r in config["runs"] if cfglib.is_external(config, r) == external]
    return "|".join(re.escape(r) for r in names) or "(?!)"  # (?!): no run


def weights_input(wildcards):
    """The external checkpoint of this run and seed (`weights:` with {seed} filled in)."""
    return cfglib.weights_file(config, wildcards.run, int(wildcards.seed))


def release_inputs(wildcards):
    seeds = release_seeds(wildcards)
    return {
        "models": [run_file(wildcards.run, s, TRAIN_OUTPUTS["model"]) for s in seeds],
        "configs": [run_file(wildcards.run, s, TRAIN_OUTPUTS["config"]) for s in seeds],
        "metrics": [run_file(wildcards.run, s, METRICS) for s in seeds],
    }


def release_seeds(wildcards):
    run_spec(wildcards.run)  # a clear error for an unknown run
    return cfglib.seeds(config, wildcards.run)


def train_params(wildcards):
    return cfglib.resolve_run(config, wildcards.run)


def train_engine(wildcards):
    """The engine options that change the numbers (l2ood.engine.NUMERIC_ENGINE_OPTIONS)."""
    return cfglib.engine_numerics(config)


def run_gpus(wildcards):
    """The run's GPU request (`gpus:`), for its training and its inference job."""
    return run_spec(wildcards.run)["gpus"]


def train_runtime(wildcards):
    """Minutes to request on a cluster (l2ood.plan: an estimate with a 3x margin)."""
    return plan.runtime_request(config, wildcards.run)


def infer_datasets(wildcards):
    """The run's test sets: its ID data set first, then its OoD sets."""
    spec = run_spec(wildcards.run)
    return [spec["dataset"], *spec["ood"]]


def infer_inputs(wildcards):
    return {
        "model": f"{RUN_DIR}/{TRAIN_OUTPUTS['model']}",
        "images": [read_prepared(d, "test")[0] for d in infer_datasets(wildcards)],
        "records": [read_prepared(d, "test")[1] for d in infer_datasets(wildcards)],
    }


def evaluate_inputs(wildcards):
    return {"outputs": f"{RUN_DIR}/{OUTPUTS_DIR}"}


def evaluate_params(wildcards):
    spec = run_spec(wildcards.run)
    return {
        "run": wildcards.run,
        "seed": int(wildcards.seed),
        "model": spec["model"],
        "head": spec["head"],
        "recipe": spec.get("recipe"),  # none for a run with `weights:`
        "id": spec["dataset"],
        "ood": spec["ood"],
        "tune_scale_on": spec["tune_scale_on"] or spec["ood"],
    }


def script_code(name):
    """The content digest of scripts/<name>.py and the library modules it imports (l2ood.code): a
    cheap rule's params, so an edit of its code reruns it and a `touch` does not (the profiles turn
    Snakemake's own code trigger, which compares modification times, off)."""
    return code.code_digest(Path(code.LIBRARY).parent / "scripts" / f"{name}.py")


def infer_code(wildcards):
    """Inference runs the training engine's forward pass: it reruns with TRAINING_CODE_VERSION."""
    return TRAINING_CODE_VERSION


def features_code(wildcards):
    """The features job: inference's code, and ODIN's (whose scores it stores) with its grid."""
    return {"infer": infer_code(wildcards), "odin": code.odin_code()}


# --- studies: metrics, tables, figures -------------------------------------------------------


def run_seed_files(runs, name):
    return [run_file(r, s, name) for r in runs for s in cfglib.seeds(config, r)]


def study_metrics_inputs(wildcards):
    study_spec(wildcards.study)  # a clear error for an unknown study
    return run_seed_files(cfglib.study_runs(config, wildcards.study), METRICS)


def study_item(wildcards, group, name):
    return from_config(cfglib.study_item, wildcards.study, group, name)


def table_inputs(wildcards):
    return cfglib.table_files(study_item(wildcards, "tables", wildcards.table))


def table_digest(wildcards):
    """The resolved table's digest, not the table itself: the script resolves it again from the
    config (l2ood.config.study_item), and the report's "Job parameters" stay one line."""
    return cfglib.spec_digest(study_item(wildcards, "tables", wildcards.table))


def figure_inputs(wildcards):
    return cfglib.figure_files(study_item(wildcards, "figures", wildcards.figure))


def figure_digest(wildcards):
    """As table_digest, for a figure."""
    return cfglib.spec_digest(study_item(wildcards, "figures", wildcards.figure))


def study_data(study):
    """Every prepared split a job of the study reads: `snakemake <study>_data` fetches and prepares
    them (on a cluster's login node, where the internet is) and nothing else. Training and inference
    read each run's own sets; the features job of a run a detector table or figure of the study
    names also reads the sets its detectors see (features_sets: the OpenOOD view's MNIST, ...)."""
    detector_runs = {
        run
        for group in ("tables", "figures")
        for item in study_spec(study).get(group, {}).values()
        if cfglib.reads_detectors(group, item)
        for run in cfglib.spec_runs(item)
    }
    files = []
    for run in cfglib.study_runs(config, study):
        spec = run_spec(run)
        sets = [spec["dataset"], *spec["ood"], *(cfglib.detector_ood(config, run) if run in detector_runs else [])]
        files += [prepared(spec["dataset"], "train")] + [prepared(d, "test") for d in sets]
    return list(dict.fromkeys(files))


def study_targets(study):
    spec = study_spec(study)
    targets = [study_file(study, METRICS)]
    targets += [table_file(study, t, ext) for t in spec.get("tables", {}) for ext in ("csv", "md", "tex")]
    targets += [figure_file(study, f, ext) for f in spec.get("figures", {}) for ext in FIGURE_FORMATS]
    if "paper_numbers" in spec:
        targets += [table_file(study, COMPARISON, ext) for ext in COMPARISON_FORMATS]
    return targets


def compare_inputs(wildcards):
    spec = study_spec(wildcards.study)
    if "paper_numbers" not in spec:
        raise WorkflowError(f"study {wildcards.study!r} has no 'paper_numbers' to compare with")
    # the paper's tables only: the detector tables go beyond the paper, there is nothing to compare them with
    names = [t for t, table in spec.get("tables", {}).items() if not cfglib.reads_detectors("tables", table)]
    tables = [table_file(wildcards.study, t, "csv") for t in names]
    return {"numbers": spec["paper_numbers"], "tables": tables}


# --- post-hoc detectors (rules/detectors.smk) ------------------------------------------------
# Features are stored only for the runs a detector table or figure names (l2ood.config.detector_runs):
# a study's other runs never request these rules.


def features_sets(wildcards):
    """[dataset, split] pairs the features job passes through the model: the run's ID training split
    (the fitted detectors' statistics), its ID test split, then every OoD set its detectors see."""
    spec = run_spec(wildcards.run)
    ood = cfglib.detector_ood(config, wildcards.run)
    return [[spec["dataset"], "train"], [spec["dataset"], "test"], *([d, "test"] for d in ood)]


def features_inputs(wildcards):
    return {
        "model": f"{RUN_DIR}/{TRAIN_OUTPUTS['model']}",
        "images": [read_prepared(d, s)[0] for d, s in features_sets(wildcards)],
        "records": [read_prepared(d, s)[1] for d, s in features_sets(wildcards)],
    }


def detectors_inputs(wildcards):
    return {"features": f"{RUN_DIR}/{FEATURES_DIR}"}


def detectors_params(wildcards):
    spec = run_spec(wildcards.run)
    settings = config["detectors"]
    return {
        "run": wildcards.run,
        "seed": int(wildcards.seed),
        "model": spec["model"],
        "head": spec["head"],
        "recipe": spec.get("recipe"),  # none for a run with `weights:`
        "id": spec["dataset"],
        "ood": cfglib.detector_ood(config, wildcards.run),
        "names": settings["names"],
        "params": settings.get("params", {}),
    }


# --- each job's params, by rule: the one definition ------------------------------------------
#: the rules declare their params from here (`params: **JOB_PARAMS["infer"]`), and rules/ondisk.smk
#: compares the params record a job wrote beside its output with them (job_params): the two cannot drift
JOB_PARAMS = {
    "prepare": {"spec": prepare_params, "md5": prepare_md5},
    "train": {"cfg": train_params, "engine": train_engine},
    "import_weights": {"cfg": train_params},
    "release": {"seeds": release_seeds, "code": script_code("release")},
    "infer": {"datasets": infer_datasets, "code": infer_code},
    "features": {"sets": features_sets, "code": features_code},
    "evaluate": {"meta": evaluate_params, "code": script_code("evaluate")},
    "detectors": {"meta": detectors_params, "code": script_code("detectors")},
    "study_metrics": {"code": script_code("study_metrics")},
    "table": {"spec": table_digest, "code": script_code("table")},
    "figure": {"spec": figure_digest, "code": script_code("figure")},
    "paper_vs_reproduced": {"code": script_code("paper_vs_reproduced")},
}
