# What is on disk already, before Snakemake plans: made again, kept, or reported with its fix.
# Why this exists: Snakemake trusts the files it finds and plans from modification times and its own
# records in .snakemake/. A split deleted by hand would rerun every finished training that read it
# (restore_deleted_splits); a training that finished while the head process was dead keeps an
# "incomplete" mark (l2ood.ondisk.keep_finished_training); copied results, a moved run's tables and
# a truncated model would be used as they are (l2ood.ondisk.problems, which says why in full).
# At parse time, in the process the user started only: a cluster job re-parses this file on its
# node while its own outputs are being replaced. (An input function's error would not do: Snakemake
# drops a job whose input function fails and takes its outputs, present, as they are.)

import sys
from pathlib import Path
from types import SimpleNamespace

from l2ood import invocation, ondisk


def restore_deleted_splits(dry_run=False):
    """Make again, before the plan, each prepared split deleted by hand (the fix the truncated-split
    check gives) whose record is still there with the current values. Planned as a prepare job, it
    would rerun every job reading it, finished trainings included: Snakemake exempts an ancient()
    input from its producer's rerun only if the file exists when it plans (snakemake/dag.py). The
    same bytes as recorded: nothing reading it reruns. Other bytes: the record goes, and Snakemake
    makes the split again and reruns what read it (l2ood.data.restore). A dry run only says which
    splits a run makes again: it writes no file."""
    from l2ood.data import restore

    seen = set()

    def one(dataset, split):
        path, source = Path(prepared(dataset, split)), prepare_source(dataset, split)
        if (dataset, split) in seen or path.exists() or not Path(prepared_record(dataset, split)).exists():
            return
        seen.add((dataset, split))
        kind = dataset_spec(dataset)["kind"]
        if source:
            one(*source)  # deleted too: made again first
        if dry_run:  # writes nothing, so the plan it prints rebuilds the split and what read it
            print(
                f"{path} was deleted: a run makes it again from its record before it plans (a dry run"
                " writes nothing, so the plan below makes it anew and reruns what read it)"
            )
            return
        inputs = sources.raw_files(kind, config["download"]["root"]) if kind in sources.RAW_KINDS else []
        inputs = [prepared(*source)] if source else inputs
        try:
            same = restore(path, cfglib.prepare_spec(config, dataset), split, inputs, raw_md5(dataset))
        except (OSError, ValueError) as err:  # its inputs are gone too: planned as any missing split
            print(f"{path} was deleted and cannot be made again before the plan ({err})")
            return
        if same:
            print(f"made {path} again (deleted; the bytes its record names): what was built from it is kept")
        elif same is False:
            print(f"made {path} again, with other bytes than its record names: it and what read it are redone")

    for dataset in config["datasets"]:
        for split in ("train", "test"):
            one(dataset, split)


def job_params(kind, wildcards):
    """The params a job of kind (its rule's name) gets from this config (JOB_PARAMS, as its rule
    declares them); compared with the params record the job wrote beside its output
    (l2ood.ondisk.stale_params). A table's and figure's record holds the resolved spec too, so that
    a difference names the key."""
    w = SimpleNamespace(**wildcards)
    params = {name: value(w) if callable(value) else value for name, value in JOB_PARAMS[kind].items()}
    if kind in ("table", "figure"):
        params["resolved"] = study_item(w, f"{kind}s", getattr(w, kind))
    return params


if workflow.is_main_process and not invocation.MAINTENANCE & set(sys.argv):
    restore_deleted_splits(dry_run=invocation.dry_running(sys.argv))
    for _line in ondisk.keep_finished_training(config):
        print(_line)
    _problems = ondisk.problems(
        config,
        job_params,
        touch=invocation.touching(sys.argv),
        prepare_inputs=lambda dataset, split: [
            str(f)
            for v in prepare_inputs(SimpleNamespace(dataset=dataset, split=split)).values()
            for f in (v if isinstance(v, list) else [v])  # an image folder's files: a list
        ],
    )
    if _problems:
        raise WorkflowError("before any job runs:\n  {}".format("\n  ".join(_problems)))
