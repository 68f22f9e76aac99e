"""A run of the config, as every reader gets it: ``run_spec`` (the run with ``RUN_DEFAULTS``),
``run_recipe`` (its recipe with the run's overrides), its seeds, and ``resolve_run``, the one dict
the training step needs (saved next to the model); what a run recorded against what the config
asks for now. What reruns a job: the README, "What makes a job run again".
"""

from .engine import ENGINE_DEFAULTS, NUMERIC_ENGINE_OPTIONS, TRAINING_CODE_VERSION


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
    "weights": None,  # an external checkpoint per seed ({seed} in the path): the run is not trained (docs/own.md)
}


#: Prose: where values come from, names to print. Never part of what a job computes, so editing
#: them reruns nothing (``run_recipe`` and ``prepare_spec`` leave them out).
RECIPE_PROSE = ("source",)


#: a data set's keys that preparing it does not read: its label, and what training reads
NOT_PREPARE = ("label", "num_classes", "normalize")

#: the key naming the prepared set a derived data set is made from (Gaussian noise: only its count and size)
SOURCE_KEY = {"gaussian": "like", "scrambled": "of", "resize": "of"}




class ConfigError(ValueError):
    """The config refers to something it does not define, or combines things that do not fit."""


def engine_numerics(config: dict) -> dict:
    """The engine options that change what training computes (``NUMERIC_ENGINE_OPTIONS``), defaults
    filled in from ``ENGINE_DEFAULTS``: the train rule's params, so changing one retrains."""
    engine = {**ENGINE_DEFAULTS, **config["engine"]}
    return {k: engine[k] for k in NUMERIC_ENGINE_OPTIONS}


def run_spec(config: dict, run: str) -> dict:
    """``runs.<run>`` with ``RUN_DEFAULTS`` filled in (a new dict; the config is not changed)."""
    return {**RUN_DEFAULTS, **config["runs"][run]}


def is_external(config: dict, run: str) -> bool:
    """Whether ``run`` evaluates checkpoints named by ``weights:`` instead of training (docs/own.md)."""
    return run_spec(config, run)["weights"] is not None


def weights_file(config: dict, run: str, seed: int) -> str:
    """The external checkpoint of ``run``'s ``seed``: its ``weights`` pattern with ``{seed}`` filled in."""
    return run_spec(config, run)["weights"].replace("{seed}", str(seed))


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


def resolve_run(config: dict, run: str) -> dict:
    """Everything training needs for ``run``, as one plain dict (saved beside the model).

    Besides the run itself: ``threads``, the CPU threads training uses (``threads.train``; the float
    reductions depend on it), and ``training_code_version``, ``TRAINING_CODE_VERSION`` of
    ``l2ood.engine``. Both are in the train rule's params and the checkpoint's digest.
    """
    spec = run_spec(config, run)
    idspec = config["datasets"][spec["dataset"]]
    model = {
        "run": run,
        "dataset": spec["dataset"],
        "model": spec["model"],
        "model_kwargs": dict(spec["model_kwargs"]),
        "head": spec["head"],
        "num_classes": idspec["num_classes"],
        "image_size": idspec["image_size"],
        "normalize": spec["normalize"] or idspec["normalize"],
    }
    if spec["weights"] is not None:  # not trained: no recipe, threads or training code count
        return {**model, "weights": spec["weights"]}
    return {
        **model,
        "probe_size": spec["probe_size"],
        "recipe_name": spec["recipe"],
        "recipe": run_recipe(config, run),
        "threads": config["threads"]["train"],
        "training_code_version": TRAINING_CODE_VERSION,
    }


def recorded_differences(recorded: dict, config: dict, run: str, seed: int) -> list[str]:
    """How a run's recorded ``config.yaml`` (written by the train job) differs from what the config
    asks for now: ``["recipe.epochs: recorded 60, now 30", ...]``; empty if the result is current."""
    now = {**resolve_run(config, run), "seed": seed}
    if is_external(config, run):  # what was imported (its SHA-256) is the rule's input, not a config value
        return _differences({k: v for k, v in recorded.items() if k != "weights_file"}, now, "")
    now["engine"] = engine_numerics(config)
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
