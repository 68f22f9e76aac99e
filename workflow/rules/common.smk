# Config -> targets: schema validation, wildcard constraints and every input function.
# The logic lives in l2ood.config (unit-tested); these are the Snakemake-facing adapters.

from snakemake.exceptions import WorkflowError

from l2ood import config as cfglib
from l2ood import plan, sources  # neither imports torch: this runs at parse time on every node
from l2ood.layout import DETECTOR_METRICS, FEATURES_DIR, METRICS, OUTPUTS_DIR, RUN_DIR, TRAIN_OUTPUTS, run_file

_errors = cfglib.schema_errors(config, workflow.source_path("../schemas/config.schema.yaml"))
if _errors:
    raise WorkflowError("config does not match workflow/schemas/config.schema.yaml:\n  " + "\n  ".join(_errors))
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


def prepared(dataset, split):
    return f"resources/prepared/{dataset}/{split}.npz"


def dataset_spec(name):
    if name not in config["datasets"]:
        raise WorkflowError(f"unknown data set {name!r}; define it under 'datasets:' in config.yaml")
    return config["datasets"][name]


def run_spec(name):
    """The run with its defaults (l2ood.config.RUN_DEFAULTS)."""
    if name not in config["runs"]:
        raise WorkflowError(f"unknown run {name!r}; define it under 'runs:' in config.yaml")
    return cfglib.run_spec(config, name)


def study_spec(name):
    if name not in config["studies"]:
        raise WorkflowError(f"unknown study {name!r}; known: {sorted(config['studies'])}")
    return config["studies"][name]


# --- data ------------------------------------------------------------------------------------


def prepare_inputs(wildcards):
    spec = dataset_spec(wildcards.dataset)
    kind = spec["kind"]
    if kind in sources.RAW_KINDS:
        return sources.raw_files(kind, config["download"]["root"])
    if kind == "gaussian":
        return [prepared(spec["like"], "test")] if "like" in spec else []
    if kind == "scrambled":
        return [prepared(spec["of"], "test")]
    if kind == "resize":
        return [prepared(spec["of"], wildcards.split)]
    return []


def prepare_params(wildcards):
    return dataset_spec(wildcards.dataset)


# --- training and inference ------------------------------------------------------------------


def train_input(wildcards):
    return prepared(run_spec(wildcards.run)["dataset"], "train")


def train_params(wildcards):
    return cfglib.resolve_run(config, wildcards.run)


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
        "images": [prepared(d, "test") for d in infer_datasets(wildcards)],
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
        "recipe": spec["recipe"],
        "id": spec["dataset"],
        "ood": spec["ood"],
        "tune_scale_on": spec["tune_scale_on"] or spec["ood"],
    }


# --- studies: metrics, tables, figures -------------------------------------------------------


def run_seed_files(runs, name):
    return [run_file(r, s, name) for r in runs for s in cfglib.seeds(config, r)]


def study_metrics_inputs(wildcards):
    study_spec(wildcards.study)  # a clear error for an unknown study
    return run_seed_files(cfglib.study_runs(config, wildcards.study), METRICS)


def table_spec(wildcards):
    tables = study_spec(wildcards.study).get("tables", {})
    if wildcards.table not in tables:
        raise WorkflowError(f"study {wildcards.study!r} has no table {wildcards.table!r}; it has {sorted(tables)}")
    return cfglib.resolve_table(config, tables[wildcards.table])


def table_inputs(wildcards):
    return cfglib.table_files(table_spec(wildcards))


def figure_spec(wildcards):
    figures = study_spec(wildcards.study).get("figures", {})
    if wildcards.figure not in figures:
        raise WorkflowError(f"study {wildcards.study!r} has no figure {wildcards.figure!r}; it has {sorted(figures)}")
    return cfglib.resolve_figure(config, figures[wildcards.figure])


def figure_inputs(wildcards):
    return cfglib.figure_files(figure_spec(wildcards))


def study_targets(study):
    spec = study_spec(study)
    root = f"results/{study}"
    targets = [f"{root}/metrics.csv"]
    targets += [f"{root}/tables/{t}.{ext}" for t in spec.get("tables", {}) for ext in ("csv", "md", "tex")]
    targets += [f"{root}/figures/{f}.{ext}" for f in spec.get("figures", {}) for ext in ("png", "pdf")]
    if "paper_numbers" in spec:
        targets += [f"{root}/tables/paper_vs_reproduced.{ext}" for ext in ("csv", "md")]
    return targets


def compare_inputs(wildcards):
    spec = study_spec(wildcards.study)
    if "paper_numbers" not in spec:
        raise WorkflowError(f"study {wildcards.study!r} has no 'paper_numbers' to compare with")
    # the paper's tables only: the detector tables go beyond the paper, there is nothing to compare them with
    names = [t for t, table in spec.get("tables", {}).items() if not cfglib.reads_detectors("tables", table)]
    tables = [f"results/{wildcards.study}/tables/{t}.csv" for t in names]
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
        "images": [prepared(d, s) for d, s in features_sets(wildcards)],
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
        "recipe": spec["recipe"],
        "id": spec["dataset"],
        "ood": cfglib.detector_ood(config, wildcards.run),
        "names": settings["names"],
        "params": settings.get("params", {}),
    }
