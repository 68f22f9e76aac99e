"""The workflow's config, after schema validation: cross-reference checks and resolution.

The JSON schema checks each key and type; ``check`` checks what a schema cannot: that every
run names a known data set and recipe, that every study, table and figure names known runs,
that OoD sets have the resolution of the run's model. ``resolve_run`` gives the one dict the
training step needs (saved next to the model).
"""

from typing import Iterable

RAW_KINDS = ("cifar10", "cifar100", "svhn", "gtsrb", "tinyimagenet")


class ConfigError(ValueError):
    """The config refers to something it does not define, or combines things that do not fit."""


def schema_errors(config: dict, schema_path) -> list[str]:
    """Every schema violation of ``config``, each naming the key path, e.g.
    ``runs.demo-l2: unknown key 'epoch'`` or ``recipes.sgd60.epochs: 'sixty' is not of type 'integer'``."""
    import jsonschema
    import yaml

    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    out = []
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            known = ", ".join(sorted(err.schema.get("properties", {})))
            out.append(f"{where}: unknown key(s) {extra}; known keys: {known}")
        else:
            out.append(f"{where}: {err.message}")
    return out


def _runs_of_spec(spec: dict) -> list[str]:
    """Every run a table or figure spec names (rows' plain/l2/runs, panels' run)."""
    runs = [spec["run"]] if "run" in spec else []
    for row in spec.get("rows", []):
        runs += [row[k] for k in ("plain", "l2", "run") if k in row]
    runs += [p["run"] for p in spec.get("panels", [])]
    runs += list(spec.get("runs", []))
    return list(dict.fromkeys(runs))


def check(config: dict) -> None:
    """Raise ``ConfigError`` listing every broken reference in ``config``."""
    errors = []
    ds, recipes, runs, studies = config["datasets"], config["recipes"], config["runs"], config["studies"]
    for name, spec in ds.items():
        for key in ("like", "of"):
            if key in spec and spec[key] not in ds:
                errors.append(f"datasets.{name}.{key}: unknown data set {spec[key]!r}")
        if spec["kind"] in ("gaussian", "scrambled", "resize") and not ({"like", "of"} & set(spec)):
            errors.append(f"datasets.{name}: kind {spec['kind']!r} needs 'of' (or 'like' for gaussian)")
    for name, run in runs.items():
        if run["dataset"] not in ds:
            errors.append(f"runs.{name}.dataset: unknown data set {run['dataset']!r}")
            continue
        idspec = ds[run["dataset"]]
        for key in ("num_classes", "normalize"):
            if key not in idspec:
                errors.append(f"datasets.{run['dataset']}: used for training by run {name}, so it needs {key!r}")
        if run["recipe"] not in recipes:
            errors.append(f"runs.{name}.recipe: unknown recipe {run['recipe']!r}; known: {sorted(recipes)}")
        for o in run["ood"]:
            if o not in ds:
                errors.append(f"runs.{name}.ood: unknown data set {o!r}")
            elif ds[o]["image_size"] != idspec["image_size"]:
                errors.append(
                    f"runs.{name}.ood: {o!r} is {ds[o]['image_size']} px but the model sees "
                    f"{idspec['image_size']} px; add a resized copy (kind: resize, of: {o}, image_size: "
                    f"{idspec['image_size']}) named {o}-r{idspec['image_size']}"
                )
    if config["default_study"] not in studies:
        errors.append(f"default_study: unknown study {config['default_study']!r}; known: {sorted(studies)}")
    for sname, study in studies.items():
        for r in study["runs"]:
            if r not in runs:
                errors.append(f"studies.{sname}.runs: unknown run {r!r}")
        for group in ("tables", "figures"):
            for tname, spec in study.get(group, {}).items():
                for r in _runs_of_spec(spec):
                    if r not in runs:
                        errors.append(f"studies.{sname}.{group}.{tname}: unknown run {r!r}")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def resolve_run(config: dict, run: str) -> dict:
    """Everything training needs for ``run``, as one plain dict (saved beside the model)."""
    spec = config["runs"][run]
    idspec = config["datasets"][spec["dataset"]]
    return {
        "run": run,
        "dataset": spec["dataset"],
        "model": spec["model"],
        "model_kwargs": dict(spec.get("model_kwargs", {})),
        "head": spec["head"],
        "num_classes": idspec["num_classes"],
        "image_size": idspec["image_size"],
        "normalize": idspec["normalize"],
        "probe_size": spec.get("probe_size", 1000),
        "recipe_name": spec["recipe"],
        "recipe": {**config["recipes"][spec["recipe"]], **spec.get("recipe_overrides", {})},
    }


def seeds(config: dict, run: str) -> list[int]:
    return list(range(config["runs"][run].get("seeds", 1)))


def spec_runs(spec: dict) -> list[str]:
    return _runs_of_spec(spec)


def dataset_chain(config: dict, name: str) -> Iterable[str]:
    """The data sets ``name`` is derived from (through 'of' / 'like'), nearest first."""
    spec = config["datasets"][name]
    for key in ("of", "like"):
        if key in spec:
            yield spec[key]
            yield from dataset_chain(config, spec[key])


# --- tables and figures: which files each needs ----------------------------------------------

RUN_DIR = "results/runs/{run}/seed{seed}"

#: figure kind -> what each panel reads: per-image outputs of one seed ("outputs"), the
#: collapse/probe history of every seed ("collapse"), or one seed's probes ("probes").
FIGURE_READS = {
    "norm_distributions": "outputs",
    "accuracy_vs_norm": "outputs",
    "softmax_vs_norm": "outputs",
    "norm_variability": "collapse",
    "collapse": "collapse",
    "feature_change": "probes",
}


def run_file(run: str, seed: int, name: str) -> str:
    return f"{RUN_DIR.format(run=run, seed=seed)}/{name}"


def dataset_label(config: dict, name: str) -> str:
    return config["datasets"][name].get("label", name)


def resolve_figure(config: dict, spec: dict) -> dict:
    """``spec`` with every panel's input files filled in (paths relative to the workflow root)."""
    kind = spec["kind"]
    if kind not in FIGURE_READS:
        raise ConfigError(f"unknown figure kind {kind!r}; known: {sorted(FIGURE_READS)}")
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
                    q["metrics"] = run_file(p["run"], seed, "metrics.csv")
            q["outputs"] = {d: run_file(p["run"], seed, f"outputs/{d}.npz") for d in names}
            q["outputs_dir"] = run_file(p["run"], seed, "outputs")
        elif reads == "collapse":
            q["collapse"] = [run_file(p["run"], s, "collapse.csv") for s in seeds(config, p["run"])]
        else:
            q["probes"] = run_file(p["run"], seed, "probes.npz")
        panels.append(q)
    used = sorted({d for q in panels for d in q.get("outputs", {})})  # sorted: params must not depend on hash order
    return {**spec, "panels": panels, "labels": {d: dataset_label(config, d) for d in used}}


def figure_files(resolved: dict) -> list[str]:
    files = []
    for p in resolved["panels"]:
        files += p.get("collapse", []) + [p[k] for k in ("outputs_dir", "probes", "metrics") if k in p]
    return list(dict.fromkeys(files))


def resolve_table(config: dict, spec: dict) -> dict:
    """``spec`` plus the per-seed metrics files of every run it names and display labels."""
    runs = spec_runs(spec)
    files = {r: [run_file(r, s, "metrics.csv") for s in seeds(config, r)] for r in runs}
    ood = spec.get("ood", [])
    names = set(ood.values() if isinstance(ood, dict) else ood)
    for r in runs:
        names |= {config["runs"][r]["dataset"], *config["runs"][r]["ood"]}
    return {**spec, "metrics": files, "labels": {d: dataset_label(config, d) for d in sorted(names)}}


def table_files(resolved: dict) -> list[str]:
    files = [f for fs in resolved["metrics"].values() for f in fs]
    return files + ([resolved["reported"]] if "reported" in resolved else [])
