"""``check``: what the schema cannot check in a config, every broken reference as one line: runs
naming known data sets, recipes and models; studies, tables and figures naming known runs, scores
and sets each run is evaluated on; OoD sets at the resolution of the run's model; a data set's
``num_classes`` the number of classes its labels have.
"""

from .code import model_signatures
from .config_runs import SOURCE_KEY, ConfigError, run_seeds
from .config_studies import FIGURE_READS, detector_specs
from .specs import named_scores, ood_columns, spec_datasets, spec_runs


#: the score a table may name besides ``l2ood.scores.SCORES``: evaluate adds it
EXTRA_SCORES = ("scaled_msp",)


def check(config: dict) -> None:
    """Raise ``ConfigError`` listing every broken reference in ``config``."""
    errors = []
    ds, recipes, runs, studies = config["datasets"], config["recipes"], config["runs"], config["studies"]
    for name, spec in ds.items():
        for key in ("like", "of"):
            if key in spec and spec[key] not in ds:
                errors.append(f"datasets.{name}.{key}: unknown data set {spec[key]!r}")
        source = SOURCE_KEY.get(spec["kind"])
        for key in sorted({"like", "of"} & set(spec) - {source}):  # the prepare rule reads only `source`
            errors.append(f"datasets.{name}.{key}: kind {spec['kind']!r} takes no {key!r}; write {source!r} instead"
                          if source else f"datasets.{name}.{key}: kind {spec['kind']!r} is made from no other set; remove {key!r}")  # fmt: skip
        if source and source not in spec and not ({"like", "of"} & set(spec)):
            errors.append(f"datasets.{name}: kind {spec['kind']!r} needs {source!r} (the data set it is made from)")
        if spec["kind"] in ("image_folder", "npz") and "test" not in spec:
            errors.append(f"datasets.{name}: kind {spec['kind']!r} needs 'test' (its test split's folder or file; docs/own.md)")
        if spec["kind"] == "digits" and "classes" not in spec:
            errors.append(f"datasets.{name}: kind 'digits' needs 'classes' (the digits it holds, e.g. [0, 1, 2, 3, 4])")
    errors += class_count_errors(config)
    known = {s for r in runs for s in run_seeds(config, r)}
    for s in config.get("only_seeds") or []:  # a run left without a seed fails where a target needs it
        if s not in known:
            errors.append(f"only_seeds: {s} is no seed of any run (their seeds: {sorted(known)})")
    for name, run in runs.items():
        if run["dataset"] not in ds:
            errors.append(f"runs.{name}.dataset: unknown data set {run['dataset']!r}")
            continue
        idspec = ds[run["dataset"]]
        if idspec["kind"] in ("image_folder", "npz") and "train" not in idspec and "weights" not in run:
            errors.append(f"datasets.{run['dataset']}: run {name} trains on it, so it needs 'train' (a folder or file)")
        for key in ("num_classes", "normalize"):
            if key not in idspec:
                errors.append(f"datasets.{run['dataset']}: used for training by run {name}, so it needs {key!r}")
        errors += external_errors(config, name, run)
        if "recipe" in run and run["recipe"] not in recipes:
            errors.append(f"runs.{name}.recipe: unknown recipe {run['recipe']!r}; known: {sorted(recipes)}")
        errors += model_errors(name, run)
        for o in run.get("tune_scale_on", []):
            if o not in run["ood"]:
                errors.append(f"runs.{name}.tune_scale_on: {o!r} is not one of the run's OoD sets {run['ood']}")
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
        for r in study.get("runs", []):
            if r not in runs:
                errors.append(f"studies.{sname}.runs: unknown run {r!r}")
        for group in ("tables", "figures"):
            for tname, spec in study.get(group, {}).items():
                where = f"studies.{sname}.{group}.{tname}"
                unknown = [r for r in spec_runs(spec) if r not in runs]
                errors += [f"{where}: unknown run {r!r}" for r in unknown]
                if not unknown and group == "tables":
                    errors += table_errors(config, where, spec)
                elif not unknown:
                    errors += figure_errors(config, where, spec)
    errors += detector_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def dataset_classes(config: dict, name: str) -> int | None:
    """How many classes data set ``name``'s labels have (labels 0 .. n-1): a digits set's ``classes``
    (re-indexed in the order given), a downloaded kind's (``l2ood.sources.NUM_CLASSES``), a resized or
    scrambled copy's source's; ``None`` for Gaussian noise (no labels) or a broken reference."""
    from .sources import NUM_CLASSES  # the standard library only

    seen = set()
    while name in config["datasets"] and name not in seen:
        seen.add(name)
        spec = config["datasets"][name]
        if spec["kind"] == "digits":
            return len(spec["classes"]) if "classes" in spec else None
        if spec["kind"] in NUM_CLASSES:
            return NUM_CLASSES[spec["kind"]]
        if spec["kind"] not in ("resize", "scrambled") or "of" not in spec:
            return None
        name = spec["of"]
    return None


def class_count_errors(config: dict) -> list[str]:
    """A data set whose ``num_classes`` is not the number of classes its labels have: training would
    stop at its first step ("Target 3 is out of bounds") or train outputs no image has."""
    errors = []
    for name, spec in config["datasets"].items():
        if "num_classes" not in spec:
            continue
        n = dataset_classes(config, name)
        if n is None and spec["kind"] == "gaussian":
            errors.append(f"datasets.{name}.num_classes: a gaussian set has no labels (they are -1); train on a labelled set")
        elif n is not None and n != spec["num_classes"]:
            kind = spec["kind"]
            origin = f"classes {spec['classes']}" if kind == "digits" else f"copied from {spec['of']}" if "of" in spec else f"kind {kind}"
            errors.append(f"datasets.{name}.num_classes: {spec['num_classes']}, but its labels have {n} classes "
                          f"({origin}); set num_classes: {n}")  # fmt: skip
    return errors


def model_errors(name: str, run: dict) -> list[str]:
    """An unknown model, or a ``model_kwargs`` key its builder does not take (``model_signatures``)."""
    models = model_signatures()
    if run["model"] not in models:
        return [f"runs.{name}.model: unknown model {run['model']!r}; known: {sorted(models)}"]
    bad = sorted(set(run.get("model_kwargs", {})) - set(models[run["model"]]))
    if bad:
        return [f"runs.{name}.model_kwargs: {run['model']} takes no {bad}; it takes {list(models[run['model']])}"]
    return []


def score_names() -> list[str]:
    """Every score a table may name: those evaluate computes."""
    from .scores import SCORES  # numpy only

    return [*SCORES, *EXTRA_SCORES]


def table_errors(config: dict, where: str, spec: dict) -> list[str]:
    """Score names that do not exist, and OoD sets a run of the table is not evaluated on: each would
    leave an empty (n/a) cell."""
    errors = []
    known = score_names()
    key = "columns" if "columns" in spec else "scores"
    errors += [f"{where}.{key}: unknown score {s!r}; known: {known}" for s in named_scores(spec) if s not in known]
    for _, d in ood_columns(spec):
        for r in spec_runs(spec):
            if d not in config["runs"][r]["ood"]:
                errors.append(
                    f"{where}.ood: run {r} is not evaluated on {d!r} (its ood: {config['runs'][r]['ood']}); "
                    f"add it to runs.{r}.ood or leave it out of the table"
                )
    return errors


def figure_errors(config: dict, where: str, spec: dict) -> list[str]:
    """Data sets a figure shows that a panel's run is not evaluated on, and panel seeds it does not have."""
    errors = []
    for p in spec.get("panels", []):
        run = config["runs"][p["run"]]
        tested = [run["dataset"], *run["ood"]]
        errors += [f"{where}.datasets: run {p['run']} is not evaluated on {d!r} (its test sets: {tested})"
                   for d in spec.get("datasets", []) if d not in tested]  # fmt: skip
        seed = p.get("seed", spec.get("seed", 0))
        if FIGURE_READS.get(spec["kind"]) != "collapse" and seed not in run_seeds(config, p["run"]):
            errors.append(f"{where}: panel {p['title']!r} shows seed {seed}, which run {p['run']} does not have "
                          f"(its seeds: {run_seeds(config, p['run'])})")  # fmt: skip
    return errors


def detector_errors(config: dict) -> list[str]:
    """Broken references in the detector tables and figures: unknown sets, sets at the wrong size."""
    errors, ds = [], config["datasets"]
    for sname, group, name, spec in detector_specs(config):
        where = f"studies.{sname}.{group}.{name}"
        for row in spec.get("rows", []):
            if not {"nol2", "l2"} <= set(row):
                errors.append(f"{where}.rows: each row names its two runs, {{label, nol2: <run>, l2: <run>}}")
        for d in spec_datasets(spec):
            if d not in ds:
                errors.append(f"{where}: unknown data set {d!r}")
                continue
            for r in spec_runs(spec):
                if r in config["runs"] and config["runs"][r]["dataset"] in ds:
                    size = ds[config["runs"][r]["dataset"]]["image_size"]
                    if ds[d]["image_size"] != size:
                        errors.append(f"{where}: {d!r} is {ds[d]['image_size']} px but run {r} sees {size} px")
    return errors


#: figure kinds that read what training records epoch by epoch: an external run (``weights:``) has none
TRAINING_RECORDS = ("norm_variability", "collapse", "feature_change")


def external_errors(config: dict, name: str, run: dict) -> list[str]:
    """A run is trained (``recipe``) or names its checkpoints (``weights``), one of the two; a pattern
    for several seeds says where each seed's file is (``{seed}``)."""
    where = f"runs.{name}"
    if "weights" not in run:
        return [] if "recipe" in run else [f"{where}: needs a `recipe` to train with (or `weights:`, checkpoints to evaluate)"]
    errors = [f"{where}.{k}: a run with `weights:` is not trained; remove `{k}`"
              for k in ("recipe", "recipe_overrides", "probe_size") if k in run]
    if "{seed}" not in run["weights"] and len(run_seeds(config, name)) > 1:
        errors.append(f"{where}.weights: {run['weights']!r} names one file for {len(run_seeds(config, name))} seeds; "
                      f"put {{seed}} where each seed's file differs (e.g. ckpt/s{{seed}}/best.ckpt)")
    for sname, study in config["studies"].items():
        for fname, spec in study.get("figures", {}).items():
            if spec.get("kind") in TRAINING_RECORDS and name in spec_runs(spec):
                errors.append(f"studies.{sname}.figures.{fname}: kind {spec['kind']} reads training records, "
                              f"which run {name} (weights:, not trained) does not have")
    return errors
