"""What is on disk already, checked before any job runs: kept, or reported with the fix.

Why this exists: Snakemake trusts the files it finds. Without its records in ``.snakemake/`` (results
copied into a fresh clone, a job that finished after its head process died) it cannot tell what
made a file, and it never rebuilds a missing intermediate file whose results are present: a run
moved away keeps the tables built from it ("Nothing to be done"), a truncated model is used until
something reads it. ``problems`` finds each such case from the config, the files and the records;
``rules/common.smk`` calls it once, at parse time, in the process the user started (a cluster job
re-parses the Snakefile on its node while its own outputs are being replaced).

Every job but training writes the params it ran with beside its first output (``write_params``,
``params_record``); training records its resolved config in ``config.yaml``. Standard library,
PyYAML and ``l2ood.config`` only: no Snakemake, no torch (this runs at every start).
"""

import json
import zipfile
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import config as cfglib
from .fileio import atomic_path
from .layout import COMPARISON, COMPARISON_FORMATS, DETECTOR_METRICS, FEATURES_DIR, FIGURE_FORMATS, METRICS, OUTPUTS_DIR
from .layout import STUDY_DIR, TABLE_FORMATS, TRAIN_OUTPUTS, figure_file, prepared_file, prepared_record, record_of
from .layout import run_file, study_file, table_file

# --- Snakemake's records (its default file persistence, snakemake/persistence.py) ---------------


def snakemake_record(kind: str, path) -> Path:
    """Snakemake's record of kind "metadata" or "incomplete" for an output path."""
    b64 = urlsafe_b64encode(str(path).encode()).decode()
    parts = [b64[i : i + 254] for i in range(0, len(b64), 254)]
    return Path(".snakemake", kind, *[f"@{x}" for x in parts[:-1]], parts[-1])


def recorded_inputs(path) -> list[str] | None:
    """The input files Snakemake recorded for the job that made ``path``; None without a record."""
    record = snakemake_record("metadata", path)
    try:
        return list(json.loads(record.read_text()).get("input", []))
    except (OSError, ValueError):
        return None


# --- the params record each job writes beside its first output ---------------------------------


def params_record(output) -> Path:
    """``results/runs/r/seed0/.metrics.csv.params.json`` for ``results/runs/r/seed0/metrics.csv``: a
    sibling (a directory output's too), replaced each time the job finishes."""
    output = Path(output)
    return output.parent / f".{output.name}.params.json"


def plain(value):
    """``value`` as JSON gives it back (tuples as lists, keys as text): what a record compares."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def write_params(output, params: dict) -> None:
    """Record the params a job ran with (called last, when its outputs are written)."""
    with atomic_path(params_record(output)) as tmp:
        tmp.write_text(json.dumps(plain(params), sort_keys=True, indent=1) + "\n")


# --- what is built from what: one node per job, from the config --------------------------------


@dataclass(eq=False)
class Node:
    """One job's outputs: ``path`` its first output (the one Snakemake's record and the params record
    are read for), ``files`` all it writes, ``inputs`` the files its rule reads, ``kind`` its rule."""

    kind: str
    path: str
    files: list[str]
    inputs: list[str]
    wildcards: dict = field(default_factory=dict)
    users: list["Node"] = field(default_factory=list)

    def on_disk(self) -> bool:
        return Path(self.path).exists()


prepared = prepared_file


def read_prepared(dataset: str, split: str) -> list[str]:
    """What a job reading a prepared split declares: the split and its record (rules/common.smk)."""
    return [prepared_file(dataset, split), prepared_record(dataset, split)]


def _study_items(config: dict, study: str):
    """(group, name, resolved spec) of a study's tables and figures; one the config cannot resolve
    now (``only_seeds`` leaving a run none) is skipped: no target can build it either."""
    for group in ("tables", "figures"):
        for name in config["studies"][study].get(group, {}):
            try:
                yield group, name, cfglib.study_item(config, study, group, name)
            except cfglib.ConfigError:
                continue


def graph(config: dict, prepare_inputs=lambda dataset, split: []) -> dict[str, Node]:
    """Every job the config can ask for, by its first output (as the rules declare it), each with the
    nodes that read it. ``prepare_inputs(dataset, split)``: the files a prepare job reads (the prepared
    split a resized, scrambled or Gaussian set is made from)."""
    nodes: dict[str, Node] = {}

    def add(kind, files, inputs, **wildcards):
        nodes[files[0]] = Node(kind, files[0], files, inputs, wildcards)
        if kind == "prepare":  # and the prepared splits it is made from
            for f in inputs:
                if f.startswith("resources/prepared/") and f.endswith(".npz") and f not in nodes:
                    add(
                        "prepare",
                        [f],
                        prepare_inputs(Path(f).parent.name, Path(f).stem),
                        dataset=Path(f).parent.name,
                        split=Path(f).stem,
                    )

    detector_runs = set(cfglib.detector_runs(config))
    for run in config["runs"]:
        spec = cfglib.run_spec(config, run)
        tests, external = [spec["dataset"], *spec["ood"]], cfglib.is_external(config, run)
        for split, names in (("train", [] if external else [spec["dataset"]]), ("test", tests)):
            for d in names:
                add("prepare", [prepared(d, split)], prepare_inputs(d, split), dataset=d, split=split)
        for seed in cfglib.run_seeds(config, run):
            w = {"run": run, "seed": str(seed)}
            model = run_file(run, seed, TRAIN_OUTPUTS["model"])
            if external:  # imported, not trained (rules/external.smk): checked as a training's outputs
                add("train", [model, run_file(run, seed, TRAIN_OUTPUTS["config"])], [cfglib.weights_file(config, run, seed)], **w)
            else:
                add("train", [run_file(run, seed, n) for n in TRAIN_OUTPUTS.values()], read_prepared(spec["dataset"], "train"), **w)
            tested = [f for d in tests for f in read_prepared(d, "test")]
            add("infer", [run_file(run, seed, OUTPUTS_DIR)], [model, *tested], **w)
            add("evaluate", [run_file(run, seed, METRICS)], [run_file(run, seed, OUTPUTS_DIR)], **w)
            if run in detector_runs:
                ood = cfglib.detector_ood(config, run)
                sets = [prepared(spec["dataset"], "train"), prepared(spec["dataset"], "test")]
                sets += [prepared(d, "test") for d in ood]
                for p in sets[2:]:
                    add(
                        "prepare",
                        [p],
                        prepare_inputs(Path(p).parent.name, "test"),
                        dataset=Path(p).parent.name,
                        split="test",
                    )
                read = [f for p in sets for f in read_prepared(Path(p).parent.name, Path(p).stem)]
                add("features", [run_file(run, seed, FEATURES_DIR)], [model, *read], **w)
                add("detectors", [run_file(run, seed, DETECTOR_METRICS)], [run_file(run, seed, FEATURES_DIR)], **w)
    for study in config["studies"]:
        try:
            files = [run_file(r, s, METRICS) for r in cfglib.study_runs(config, study) for s in cfglib.seeds(config, r)]
            add("study_metrics", [study_file(study, METRICS)], files, study=study)
        except cfglib.ConfigError:
            pass
        compared = []
        for group, name, resolved in _study_items(config, study):
            if group == "tables":
                files = [table_file(study, name, ext) for ext in TABLE_FORMATS]
                add("table", files, cfglib.table_files(resolved), study=study, table=name)
                if not cfglib.reads_detectors("tables", resolved):
                    compared.append(table_file(study, name, "csv"))
            else:
                files = [figure_file(study, name, ext) for ext in FIGURE_FORMATS]
                add("figure", files, cfglib.figure_files(resolved), study=study, figure=name)
        if "paper_numbers" in config["studies"][study]:
            files = [table_file(study, COMPARISON, ext) for ext in COMPARISON_FORMATS]
            add("paper_vs_reproduced", files, compared, study=study)
    by_file = {f: n for n in nodes.values() for f in n.files}
    for node in nodes.values():
        for source in {by_file[f] for f in node.inputs if f in by_file}:
            source.users.append(node)
    return nodes


def built_from(nodes: list[Node]) -> list[Node]:
    """The nodes on disk that were built, directly or not, from ``nodes``."""
    seen, todo, out = set(), list(nodes), []
    while todo:
        for user in todo.pop().users:
            if user.path not in seen:
                seen.add(user.path)
                todo.append(user)
                if user.on_disk():
                    out.append(user)
    return out


def aside(folder: str) -> str:
    """``<folder>.old``, or ``.old2``, ... where that is taken (``mv`` would move into it)."""
    names = (f"{folder}.old{i if i > 1 else ''}" for i in range(1, 1000))
    return next(n for n in names if not Path(n).exists())


def fix(nodes: list[Node]) -> str:
    """The commands that take ``nodes`` (on disk) out of the way so that they are built again: a run
    and seed's folder is moved aside when its model goes (the rest of it was built from that model),
    a study's results folder when any of its results go; a prepared split or an evaluation is removed
    (made again from the downloads or the outputs in seconds to minutes)."""
    runs = {n.path.rsplit("/", 1)[0] for n in nodes if n.kind == "train"}
    studies = {STUDY_DIR.format(study=n.wildcards["study"]) for n in nodes if "study" in n.wildcards}
    removed = []
    for n in nodes:
        if n.kind in ("train", "table", "figure", "study_metrics", "paper_vs_reproduced"):
            continue
        if n.kind != "prepare" and n.path.rsplit("/", 1)[0] in runs:
            continue  # moved with its run folder
        removed.append(n.path)
    commands = [f"mv {d} {aside(d)}" for d in sorted(runs | studies) if Path(d).exists()]
    if removed:
        commands.append("rm -r " + " ".join(sorted(set(removed))))
    return "; ".join(commands)


#: a finding: what is wrong, and the nodes on disk to take away (with what was built from them) to fix it
Finding = tuple[str, list[Node]]


def keep_finished_training(config: dict) -> list[str]:
    """Clear Snakemake's "incomplete" mark of training jobs that finished while the head process was
    dead (killed, crashed): Snakemake clears it when it sees a job finish, so a kept mark would make
    the next run (rerun-incomplete) train it again from scratch. model.pt is written last and
    atomically, after Snakemake deleted the old outputs: its presence means the job finished.
    Returns a line for each run kept."""
    kept = []
    for run in config["runs"]:
        for seed in cfglib.run_seeds(config, run):
            marks = [snakemake_record("incomplete", run_file(run, seed, name)) for name in TRAIN_OUTPUTS.values()]
            if Path(run_file(run, seed, TRAIN_OUTPUTS["model"])).exists() and any(m.exists() for m in marks):
                for m in marks:
                    m.unlink(missing_ok=True)
                kept.append(f"kept {run_file(run, seed, '')}: it finished after the last Snakemake process stopped")
    return kept


def zip_error(path) -> str | None:
    """Why ``path`` is not a complete zip file (an npz, a torch.save file), or None: reads only its
    central directory, cheap enough for every start."""
    try:
        zipfile.ZipFile(path).close()
        return None
    except (zipfile.BadZipFile, OSError) as err:
        return str(err) or type(err).__name__


def broken_prepared() -> list[str]:
    """Prepared splits that are not complete npz files (a copy cut short): each would fail every job
    reading it with a BadZipFile error naming no file."""
    problems = []
    for path in sorted(Path("resources/prepared").glob("*/*.npz")):
        err = zip_error(path)
        if err:
            problems.append(
                f"{path} is not a complete prepared split ({err}): it was cut short or is corrupt. "
                f"Delete it (rm {path}) and run again; it is prepared again from the downloads."
            )
    return problems


def damaged_results(nodes: dict[str, Node]) -> list[Finding]:
    """Models, probes and per-image outputs or features that are not complete files (a copy cut
    short, a full disk): Snakemake would take them as they are ("Nothing to be done") and a job
    reading one would fail without its path."""
    problems = []
    for node in nodes.values():
        if node.kind == "train":
            files = [f for f in node.files if f.endswith((".pt", ".npz"))]
        elif node.kind in ("infer", "features"):
            files = sorted(str(p) for p in Path(node.path).glob("*.npz"))
        else:
            continue
        damaged = [f"{f} ({err})" for f in files if Path(f).exists() and (err := zip_error(f))]
        if damaged:
            problems.append((f"{', '.join(damaged)}: not a complete file (cut short or corrupt)", [node]))
    return problems


def _replanned(node: Node) -> bool:
    """Whether Snakemake replans ``node`` by itself: its record lists other inputs than it has now."""
    recorded = recorded_inputs(node.path)
    return recorded is not None and set(recorded) != set(node.inputs)


def orphaned_results(nodes: dict[str, Node]) -> list[Finding]:
    """Results on disk built from a model no longer there (its run folder moved or deleted):
    Snakemake keeps a result whose inputs are missing, so the model would not be trained again and
    the tables would go on showing the old one. A result whose recorded inputs differ from its
    inputs now (a seed added to a run) is replanned by Snakemake itself."""
    problems = []
    for node in nodes.values():
        if node.kind != "train" or Path(node.path).exists():
            continue
        kept = [n for n in built_from([node]) if _replanned(n) is False]
        if kept:
            listed = ", ".join(n.path for n in kept)
            what = f"{node.path} is not on disk, but results that read it are ({listed}): Snakemake would keep"
            problems.append((f"{what} them as they are and not train it (put the model back, or take them away)", kept))
    return problems


def stale_training(nodes: dict[str, Node], config: dict, trust_records: bool = True) -> list[Finding]:
    """Models on disk trained with another config than the one given now, which Snakemake has no
    record to replan by (copied from elsewhere, or trained by a head process that died; any under
    ``--touch``): the config.yaml each train job records beside its model is compared with the config."""
    problems = []
    for node in nodes.values():
        model = Path(node.path)
        if node.kind != "train" or not model.exists():
            continue
        if trust_records and snakemake_record("metadata", model).exists():
            continue
        run, seed = node.wildcards["run"], int(node.wildcards["seed"])
        recorded = Path(run_file(run, seed, TRAIN_OUTPUTS["config"]))
        try:
            diffs = cfglib.recorded_differences(yaml.safe_load(recorded.read_text()), config, run, seed)
        except (OSError, yaml.YAMLError, AttributeError, TypeError) as err:
            diffs = [f"{recorded} cannot be read ({err})"]
        if diffs:
            listed = "\n    ".join(diffs)
            what = f"{model.parent} holds a model trained with another config than this one, and Snakemake"
            problems.append(
                (f"{what} has no record of training it here (it would be used as it is):\n    {listed}", [node])
            )
    return problems


def stale_params(nodes: dict[str, Node], expected, trust_records: bool = True) -> list[Finding]:
    """Files on disk built with other params than the config gives now, which Snakemake has no record
    to replan by (or any, under ``--touch``: then the code digests of scripts are not compared): each
    job's params record (``write_params``) against ``expected(kind, wildcards)``, the params its rule
    would be given now."""
    problems = []
    for node in nodes.values():
        if node.kind == "train" or not node.on_disk():
            continue
        if trust_records and snakemake_record("metadata", node.path).exists():
            continue
        # a prepared split's params are in its record, {split}.json (l2ood.data.write_record)
        record = Path(record_of(node.path)) if node.kind == "prepare" else params_record(node.path)
        try:
            recorded = json.loads(record.read_text())
            if node.kind == "prepare":
                recorded = {"spec": recorded["prepare"], "md5": recorded["raw_md5"]}
        except FileNotFoundError:
            if node.kind == "prepare" or snakemake_record("metadata", node.path).exists():
                continue  # the record is the prepare job's output: it runs again; or Snakemake's record covers it
            diffs = [f"no record of the settings it was made with ({record} is missing)"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            diffs = [f"{record} cannot be read ({err})"]
        else:
            now = plain(expected(node.kind, node.wildcards))
            if not trust_records and node.kind not in ("infer", "features"):
                # --touch after an edit of a script or library module is what it is for; their
                # code param is TRAINING_CODE_VERSION, bumped only when the numbers change
                recorded.pop("code", None), now.pop("code", None)
            diffs = cfglib.params_differences(recorded, now)
        if diffs:
            listed = "\n    ".join(diffs)
            what = f"{node.path} was made with other settings than this config gives, and Snakemake has no"
            problems.append((f"{what} record of making it here (it would be used as it is):\n    {listed}", [node]))
    return problems


def problems(config: dict, expected, touch: bool = False, prepare_inputs=lambda dataset, split: []) -> list[str]:
    """Everything on disk that no job may use as it is, then one line with the commands that fix all
    of it (``expected``: see ``stale_params``). ``touch``: Snakemake's records are not trusted
    (``--touch`` runs nothing); ``prepare_inputs``: see ``graph``. Empty when all is well."""
    nodes = graph(config, prepare_inputs)
    found = (
        damaged_results(nodes)
        + stale_training(nodes, config, trust_records=not touch)
        + stale_params(nodes, expected, trust_records=not touch)
        + orphaned_results(nodes)
    )
    out = broken_prepared() + [message for message, _ in found]
    if found:
        taken = [n for _, ns in found for n in ns]
        gone = list({n.path: n for n in taken + built_from(taken) if n.on_disk()}.values())
        out.append(
            "Where a value above changed, restoring it in the config keeps the results. Otherwise, to build "
            f"them again (and everything built from them, which Snakemake would keep as it is): {fix(gone)}"
        )
    return out
