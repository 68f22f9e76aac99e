"""A study's tables and figures, resolved: the runs a study trains, the files each table and figure
reads (paths relative to the workflow root), the runs whose features the detectors read and on which
sets. What a spec shows is read through ``l2ood.specs``; the rule and the script resolve it through
``study_item``, the same resolution.
"""

import hashlib
import json

from .config_runs import ConfigError, run_recipe, run_spec, seeds
from .layout import DETECTOR_METRICS, METRICS, OUTPUTS_DIR, TRAIN_OUTPUTS, outputs_file, run_file
from .specs import ood_columns, spec_datasets, spec_runs


def study_runs(config: dict, study: str) -> list[str]:
    """The runs a study trains: its optional ``runs:`` list, then every run its tables and figures name."""
    spec = config["studies"][study]
    runs = list(spec.get("runs", []))
    for group in ("tables", "figures"):
        for item in spec.get(group, {}).values():
            runs += spec_runs(item)
    return list(dict.fromkeys(runs))


#: figure kind -> what each panel reads: per-image outputs of one seed ("outputs"), the
#: collapse/probe history of every seed ("collapse"), or one seed's probes ("probes").
FIGURE_READS = {
    "norm_distributions": "outputs",
    "accuracy_vs_norm": "outputs",
    "softmax_vs_norm": "outputs",
    "norm_variability": "collapse",
    "collapse": "collapse",
    "feature_change": "probes",
    "detectors": "detectors",  # every seed's detector metrics of its rows' runs (resolve_detector_spec)
}


def dataset_label(config: dict, name: str) -> str:
    return config["datasets"][name].get("label", name)


def resolve_figure(config: dict, spec: dict) -> dict:
    """``spec`` with every panel's input files filled in (paths relative to the workflow root)."""
    kind = spec["kind"]
    if kind not in FIGURE_READS:
        raise ConfigError(f"unknown figure kind {kind!r}; known: {sorted(FIGURE_READS)}")
    if reads_detectors("figures", spec):
        return resolve_detector_spec(config, spec)
    panels = []
    for p in spec["panels"]:
        run = config["runs"][p["run"]]
        seed = p.get("seed", spec.get("seed", 0))
        q = {**p, "seed": seed, "head": run["head"], "id": run["dataset"]}
        reads = FIGURE_READS[kind]
        if reads == "outputs":
            names = spec.get("datasets") or [run["dataset"], *run["ood"]]
            if kind == "softmax_vs_norm":
                names = names[:2]
                if p.get("scale") == "tuned":  # the scale evaluate chose, stored in the metrics
                    q["metrics"] = run_file(p["run"], seed, METRICS)
            q["outputs"] = {d: run_file(p["run"], seed, outputs_file(d)) for d in names}
            q["outputs_dir"] = run_file(p["run"], seed, OUTPUTS_DIR)
            if kind == "accuracy_vs_norm" and spec.get("pooled"):  # every seed's ID test images
                # (figures.ACCURACY_BINS: the default, the paper's one model, reads the panel's seed only)
                q["id_outputs"] = [run_file(p["run"], s, outputs_file(run["dataset"])) for s in seeds(config, p["run"])]
                q["outputs_dirs"] = [run_file(p["run"], s, OUTPUTS_DIR) for s in seeds(config, p["run"])]
        elif reads == "collapse":
            q["collapse"] = [run_file(p["run"], s, TRAIN_OUTPUTS["collapse"]) for s in seeds(config, p["run"])]
            recipe = run_recipe(config, p["run"])  # the learning-rate drops, marked on the curves
            q["lr_drops"] = list(recipe.get("milestones", [])) if recipe["schedule"] == "multistep" else []
        else:
            q["probes"] = run_file(p["run"], seed, TRAIN_OUTPUTS["probes"])
        panels.append(q)
    used = sorted({d for q in panels for d in q.get("outputs", {})})  # sorted: params must not depend on hash order
    return {**spec, "panels": panels, "labels": {d: dataset_label(config, d) for d in used}}


def figure_files(resolved: dict) -> list[str]:
    if reads_detectors("figures", resolved):
        return table_files(resolved)
    files = []
    for p in resolved["panels"]:
        files += p.get("collapse", []) + [p[k] for k in ("outputs_dir", "probes", "metrics") if k in p]
        files += p.get("outputs_dirs", [])
    return list(dict.fromkeys(files))


def resolve_table(config: dict, spec: dict) -> dict:
    """``spec`` plus the per-seed metrics files of every run it names and display labels."""
    if reads_detectors("tables", spec):
        return resolve_detector_spec(config, spec)
    runs = spec_runs(spec)
    files = {r: [run_file(r, s, METRICS) for s in seeds(config, r)] for r in runs}
    names = {d for _, d in ood_columns(spec)}
    for r in runs:
        names |= {config["runs"][r]["dataset"], *config["runs"][r]["ood"]}
    return {**spec, "metrics": files, "labels": {d: dataset_label(config, d) for d in sorted(names)}}


def table_files(resolved: dict) -> list[str]:
    files = [f for fs in resolved["metrics"].values() for f in fs]
    return files + ([resolved["reported"]] if "reported" in resolved else [])


#: the table and figure kinds that read the detectors' metrics: the runs they name store features
DETECTOR_KINDS = {"tables": ("detectors", "openood"), "figures": ("detectors",)}


def reads_detectors(group: str, spec: dict) -> bool:
    return spec.get("kind") in DETECTOR_KINDS[group]


def detector_specs(config: dict):
    """(study, group, name, spec) of every table and figure that reads the detectors' metrics."""
    for sname, study in config["studies"].items():
        for group in ("tables", "figures"):
            for name, spec in study.get(group, {}).items():
                if reads_detectors(group, spec):
                    yield sname, group, name, spec


def detector_runs(config: dict) -> list[str]:
    """The runs whose features are stored: those a detector table or figure of any study names."""
    return list(dict.fromkeys(r for *_, spec in detector_specs(config) for r in spec_runs(spec)))


def detector_ood(config: dict, run: str) -> list[str]:
    """The OoD sets ``run``'s detectors are evaluated on: its own ``ood``, then every set a detector
    table or figure naming it shows (e.g. the OpenOOD view's MNIST, Textures, Places365)."""
    names = list(run_spec(config, run)["ood"])
    for *_, spec in detector_specs(config):
        if run in spec_runs(spec):
            names += spec_datasets(spec)
    idset = config["runs"][run]["dataset"]
    return [d for d in dict.fromkeys(names) if d != idset]


def resolve_detector_spec(config: dict, spec: dict) -> dict:
    """A detector table or figure with the per-seed detector metrics of its runs and display labels."""
    runs = spec_runs(spec)
    files = {r: [run_file(r, s, DETECTOR_METRICS) for s in seeds(config, r)] for r in runs}
    names = set(spec_datasets(spec)) | {config["runs"][r]["dataset"] for r in runs}
    return {**spec, "metrics": files, "labels": {d: dataset_label(config, d) for d in sorted(names)}}


#: how each group's specs are resolved into what its script renders
RESOLVERS = {"tables": resolve_table, "figures": resolve_figure}


def study_spec(config: dict, study: str) -> dict:
    """``studies.<study>`` as written, or an error listing the studies."""
    if study not in config["studies"]:
        raise ConfigError(f"unknown study {study!r}; known: {sorted(config['studies'])}")
    return config["studies"][study]


def study_item(config: dict, study: str, group: str, name: str) -> dict:
    """Study ``study``'s table or figure ``name`` (``group`` "tables" or "figures"), resolved: the one
    resolution both the rule (its input files, its params digest) and the script (what it renders) use."""
    items = study_spec(config, study).get(group, {})
    if name not in items:
        raise ConfigError(f"study {study!r} has no {group[:-1]} {name!r}; it has {sorted(items)}")
    return RESOLVERS[group](config, items[name])


def spec_digest(resolved: dict) -> str:
    """A short digest of a resolved table or figure: the rule's params hold it instead of the spec,
    so the report's "Job parameters" stay one line and any change of the spec still reruns the job."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
