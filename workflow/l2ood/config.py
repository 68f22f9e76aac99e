"""The workflow's config, after schema validation: cross-reference checks and resolution.

The JSON schema checks each key and type (each table and figure kind's keys, detector names and
hyperparameters); ``check`` checks what a schema cannot: that every run names a known data set and
recipe, that every study, table and figure names known runs, that OoD sets have the resolution of
the run's model, that a data set's ``num_classes`` is the number of classes its labels have.
``run_spec`` and ``run_recipe`` give a run with its defaults and its recipe with the run's
overrides: every reader goes through them.
``resolve_run`` gives the one dict the training step needs (saved next to the model); what
reruns a job is said in the README, "What makes a job run again".
"""

import hashlib
import json
import re

from .code import model_signatures
from .engine import ENGINE_DEFAULTS, NUMERIC_ENGINE_OPTIONS, TRAINING_CODE_VERSION
from .layout import DETECTOR_METRICS, METRICS, OUTPUTS_DIR, TRAIN_OUTPUTS, outputs_file, run_file

#: What a run gets for a key it leaves out: the only copy of these defaults (the schema checks
#: types only, and every reader goes through ``run_spec``).
RUN_DEFAULTS = {
    "seeds": 1,  # a count n (seeds 0 .. n-1) or a list of seeds
    "gpus": 1,  # GPUs a training job holds; 0 for CPU-sized runs (the demo)
    "probe_size": 1000,  # fixed training images whose features are recorded every epoch (paper: 1,000)
    "model_kwargs": {},  # passed to the model's constructor (e.g. a width)
    "recipe_overrides": {},  # recipe keys this run changes (e.g. the batch size ResNet50 fits)
    "normalize": None,  # the run's input normalization; None: its data set's
    "tune_scale_on": None,  # OoD sets the scaled softmax's scale is tuned on (Table 2); None: all of `ood`
}


#: Prose: where values come from, names to print. Never part of what a job computes, so editing
#: them reruns nothing (``run_recipe`` and ``prepare_spec`` leave them out).
RECIPE_PROSE = ("source",)
#: a data set's keys that preparing it does not read: its label, and what training reads
NOT_PREPARE = ("label", "num_classes", "normalize")
#: the score a table may name besides ``l2ood.scores.SCORES``: evaluate adds it
EXTRA_SCORES = ("scaled_msp",)


class ConfigError(ValueError):
    """The config refers to something it does not define, or combines things that do not fit."""


def engine_numerics(config: dict) -> dict:
    """The engine options that change what training computes (``NUMERIC_ENGINE_OPTIONS``), defaults
    filled in from ``ENGINE_DEFAULTS``: the train rule's params, so changing one retrains."""
    engine = {**ENGINE_DEFAULTS, **config["engine"]}
    return {k: engine[k] for k in NUMERIC_ENGINE_OPTIONS}


def _load_schema(schema_path) -> dict:
    import yaml

    with open(schema_path) as f:
        return yaml.safe_load(f)


def _text_errors(err):
    """``err`` and the errors under it (a ``oneOf``'s alternatives): the type and enum mismatches of
    a text value, which ``_typed`` may read as what the schema asks for."""
    if err.validator in ("type", "enum") and isinstance(err.instance, str):
        yield err
    for sub in err.context or []:
        yield from _text_errors(sub)


#: a decimal number as people write it (YAML 1.1 reads ``1e-2``, without a dot, as text)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _readings(text: str) -> list:
    """What ``text`` may mean: its YAML value, then, for a number, the integer and the float it writes."""
    import yaml

    out = []
    try:
        out.append(yaml.safe_load(text))
    except yaml.YAMLError:
        pass
    if _NUMBER.fullmatch(text.strip()):
        x = float(text)
        out += [int(x)] if x.is_integer() else []
        out.append(x)
    return out


def _same(a, b) -> bool:
    """``a == b`` and of one type: ``True`` is not 1, ``1`` not 1.0 (as JSON schema sees them)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool) and isinstance(a, int) == isinstance(b, int)


def _typed(err):
    """The value of the text ``err.instance`` that the failed check (``type`` or ``enum``) accepts, or
    ``None``: ``'1e-2'`` where a number is wanted is 0.01, ``'true'`` where a boolean is wanted True."""
    for value in _readings(err.instance):
        if err.validator == "type" and _fits(value, err.validator_value):
            return value
        if err.validator == "enum" and not isinstance(value, str) and any(_same(value, v) for v in err.validator_value):
            return value
    return None


def _fits(value, types) -> bool:
    kinds = {"integer": int, "number": (int, float), "boolean": bool}
    types = [types] if isinstance(types, str) else types
    return any(isinstance(value, kinds[t]) and (t == "boolean") == isinstance(value, bool) for t in types if t in kinds)


def coerce_command_line(config: dict, schema_path) -> None:
    """Read text values as the number or boolean the schema asks for, in place. Snakemake's
    ``--config`` gives every item of a list or mapping as text (``--config only_seeds=[0,1]`` arrives
    as ``['0', '1']``, ``'engine={amp: true}'`` as ``{'amp': 'true'}``), and YAML 1.1 reads a
    config file's ``lr: 1e-2`` as text (it wants ``1.0e-2``): each is read back as what the user wrote.
    A text the schema asks for stays text (a ``label: "5"``)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_load_schema(schema_path))
    for _ in range(8):  # each pass fixes what the schema can see; a value inside a fixed one needs another
        fixed = 0
        for err in validator.iter_errors(config):
            for e in _text_errors(err):
                value = _typed(e)
                if value is not None and e.absolute_path:
                    *parents, last = e.absolute_path
                    node = config
                    for key in parents:
                        node = node[key]
                    node[last], fixed = value, fixed + 1
        if not fixed:
            return


def schema_errors(config: dict, schema_path) -> list[str]:
    """Every schema violation of ``config``, each naming the key path, e.g.
    ``runs.demo-l2: unknown key 'epoch'`` or ``recipes.sgd60.epochs: 'sixty' is not of type 'integer'``."""
    import jsonschema

    out = []
    schema = _load_schema(schema_path)
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        if err.validator == "additionalProperties":
            known = err.schema.get("properties", {})
            extra = sorted(set(err.instance) - set(known))
            # a table or figure kind's schema has a title ("table of kind l2_vs_nol2"): say whose keys these are
            takes = f"a {err.schema['title']} takes" if "title" in err.schema else "known keys"
            out.append(f"{where}: unknown key(s) {extra}; {takes}: {', '.join(sorted(known)) or 'none'}")
        elif err.validator == "oneOf" and err.schema.get("description"):
            out.append(f"{where}: {err.instance!r} is not {err.schema['description']}")
        else:
            out.append(f"{where}: {err.message}")
    return out


def run_spec(config: dict, run: str) -> dict:
    """``runs.<run>`` with ``RUN_DEFAULTS`` filled in (a new dict; the config is not changed)."""
    return {**RUN_DEFAULTS, **config["runs"][run]}


def run_recipe(config: dict, run: str) -> dict:
    """The recipe ``run`` trains with: its named recipe updated by its ``recipe_overrides``, without
    its prose (``RECIPE_PROSE``: a citation does not change a model)."""
    spec = run_spec(config, run)
    recipe = {**config["recipes"][spec["recipe"]], **spec["recipe_overrides"]}
    return {k: v for k, v in recipe.items() if k not in RECIPE_PROSE}


def run_seeds(config: dict, run: str) -> list[int]:
    """The run's seeds as configured: ``seeds: n`` is 0 .. n-1, a list is those seeds."""
    n = run_spec(config, run)["seeds"]
    return list(range(n)) if isinstance(n, int) else list(n)


def seeds(config: dict, run: str) -> list[int]:
    """The seeds built for ``run``: its own (``run_seeds``), restricted to the top-level ``only_seeds``
    when that is set (``--config only_seeds=[3]`` rebuilds a subset); an error if that leaves none."""
    only = config.get("only_seeds")
    kept = [s for s in run_seeds(config, run) if only is None or s in only]
    if not kept:  # raised where a target needs the run: other runs may well have those seeds
        raise ConfigError(
            f"only_seeds: {only} leaves run {run} no seed (it has {run_seeds(config, run)}): ask for targets "
            f"that do not need it, or add one of its seeds to only_seeds"
        )
    return kept


def prepare_spec(config: dict, name: str) -> dict:
    """What preparing data set ``name`` reads (its spec without ``NOT_PREPARE``): the prepare rule's params."""
    return {k: v for k, v in config["datasets"][name].items() if k not in NOT_PREPARE}


def spec_runs(spec: dict) -> list[str]:
    """Every run a table or figure spec names (``run``, rows' nol2/l2/run, panels' run), in order."""
    runs = [spec["run"]] if "run" in spec else []
    for row in spec.get("rows", []):
        runs += [row[k] for k in ("nol2", "l2", "run") if k in row]
    runs += [p["run"] for p in spec.get("panels", [])]
    return list(dict.fromkeys(runs))


def study_runs(config: dict, study: str) -> list[str]:
    """The runs a study trains: its optional ``runs:`` list, then every run its tables and figures name."""
    spec = config["studies"][study]
    runs = list(spec.get("runs", []))
    for group in ("tables", "figures"):
        for item in spec.get(group, {}).values():
            runs += spec_runs(item)
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
        for key in ("num_classes", "normalize"):
            if key not in idspec:
                errors.append(f"datasets.{run['dataset']}: used for training by run {name}, so it needs {key!r}")
        if run["recipe"] not in recipes:
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
    scores = spec.get("scores", [])
    named = list(scores.values() if isinstance(scores, dict) else scores)
    named += [r["score"] for r in spec.get("rows", []) if "score" in r]
    known = score_names()
    errors += [f"{where}.scores: unknown score {s!r}; known: {known}" for s in dict.fromkeys(named) if s not in known]
    ood = spec.get("ood", [])
    for d in ood.values() if isinstance(ood, dict) else ood:
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


def resolve_run(config: dict, run: str) -> dict:
    """Everything training needs for ``run``, as one plain dict (saved beside the model).

    Besides the run itself: ``threads``, the CPU threads training uses (``threads.train``; the float
    reductions depend on it), and ``training_code_version``, ``TRAINING_CODE_VERSION`` of
    ``l2ood.engine``. Both are in the train rule's params and the checkpoint's digest.
    """
    spec = run_spec(config, run)
    idspec = config["datasets"][spec["dataset"]]
    return {
        "run": run,
        "dataset": spec["dataset"],
        "model": spec["model"],
        "model_kwargs": dict(spec["model_kwargs"]),
        "head": spec["head"],
        "num_classes": idspec["num_classes"],
        "image_size": idspec["image_size"],
        "normalize": spec["normalize"] or idspec["normalize"],
        "probe_size": spec["probe_size"],
        "recipe_name": spec["recipe"],
        "recipe": run_recipe(config, run),
        "threads": config["threads"]["train"],
        "training_code_version": TRAINING_CODE_VERSION,
    }


def recorded_differences(recorded: dict, config: dict, run: str, seed: int) -> list[str]:
    """How a run's recorded ``config.yaml`` (written by the train job) differs from what the config
    asks for now: ``["recipe.epochs: recorded 60, now 30", ...]``; empty if the result is current."""
    now = {**resolve_run(config, run), "seed": seed, "engine": engine_numerics(config)}
    # only the numeric engine options count; the job records all of them
    rec = {**recorded, "engine": {k: recorded.get("engine", {}).get(k) for k in NUMERIC_ENGINE_OPTIONS}}
    return _differences(rec, now, "")


def params_differences(recorded: dict, now: dict) -> list[str]:
    """How the params a job recorded beside its output (l2ood.ondisk.write_params) differ from those
    its rule gets now: ``["meta.tune_scale_on: recorded [...], now [...]", ...]``. A table's or figure's
    spec digest is left out where its resolved spec, recorded beside it, says what changed."""
    diffs = _differences(recorded, now, "")
    named = any(d.startswith("resolved") for d in diffs)
    return [d for d in diffs if not (named and d.startswith("spec: "))]


def _differences(old, new, where: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            if k == "recipe" and where == "":  # the recorded recipe may still carry its prose
                out += _differences({a: b for a, b in old.get(k, {}).items() if a not in RECIPE_PROSE}, new.get(k), k)
            else:
                out += _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old and isinstance(old[0], dict):
        # a figure's panels, a table's rows: the item and key that changed
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: recorded {old!r}, now {new!r}"]


# --- tables and figures: which files each needs ----------------------------------------------

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
    ood = spec.get("ood", [])
    names = set(ood.values() if isinstance(ood, dict) else ood)
    for r in runs:
        names |= {config["runs"][r]["dataset"], *config["runs"][r]["ood"]}
    return {**spec, "metrics": files, "labels": {d: dataset_label(config, d) for d in sorted(names)}}


def table_files(resolved: dict) -> list[str]:
    files = [f for fs in resolved["metrics"].values() for f in fs]
    return files + ([resolved["reported"]] if "reported" in resolved else [])


# --- post-hoc detectors: which runs store features, of which sets ------------------------------

#: the table and figure kinds that read the detectors' metrics: the runs they name store features
DETECTOR_KINDS = {"tables": ("detectors", "openood"), "figures": ("detectors",)}


def reads_detectors(group: str, spec: dict) -> bool:
    return spec.get("kind") in DETECTOR_KINDS[group]


def spec_datasets(spec: dict) -> list[str]:
    """The data sets a detector table or figure shows: its ``ood`` (list or key -> set mapping) and,
    for the OpenOOD view, its ``near`` and ``far`` mappings."""
    names = []
    for key in ("ood", "near", "far"):
        v = spec.get(key, [])
        names += list(v.values()) if isinstance(v, dict) else list(v)
    return list(dict.fromkeys(names))


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


def resolve_detector_spec(config: dict, spec: dict) -> dict:
    """A detector table or figure with the per-seed detector metrics of its runs and display labels."""
    runs = spec_runs(spec)
    files = {r: [run_file(r, s, DETECTOR_METRICS) for s in seeds(config, r)] for r in runs}
    names = set(spec_datasets(spec)) | {config["runs"][r]["dataset"] for r in runs}
    return {**spec, "metrics": files, "labels": {d: dataset_label(config, d) for d in sorted(names)}}


# --- a study's table or figure, as its job gets it ----------------------------------------------

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
