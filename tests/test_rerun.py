"""What makes a job run again (docs/reruns.md), each case of issue 12.

Downloads and training are never redone for a touched script or a reworded label; training is
redone when something that changes the model changes; results that no longer match the config,
typos and broken files are reported before any job runs. The workflow cases share one built copy
of the tiny demo and use dry runs (`-n`) where the plan proves the point.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import training_code
import yaml
from conftest import ROOT
from l2ood import config as C
from l2ood import plan as P
from l2ood.engine import ENGINE_DEFAULTS, TRAINING_CODE_VERSION
from workflow_files import built_copy, copy_workflow, job_stats, snakemake

TINY = ["--configfile", "tests/config/tiny.yaml"]  # more files follow it: a second --configfile replaces the first
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
MODEL = "results/runs/demo-smallcnn-l2/seed0/model.pt"


def plan(cwd, *args) -> dict[str, int]:
    """The jobs a dry run plans, by rule ({} when nothing is to be done)."""
    return job_stats(snakemake(cwd, "-n", *args).text)


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


# --- the library: what is read at parse time, what the params hold ---------------------------


def test_training_code_version_is_kept_honest():
    version, digest = training_code.recorded()
    assert (version, digest) == (training_code.version(), training_code.digest()), (
        "the code TRAINING_CODE_VERSION covers changed: if it changes what training computes, bump "
        "TRAINING_CODE_VERSION in workflow/l2ood/engine.py; either way run `python tests/training_code.py`"
    )


def test_the_training_code_digest_ignores_words_but_not_code(tmp_path, monkeypatch):
    lib = tmp_path / "l2ood"
    shutil.copytree(ROOT / "workflow/l2ood", lib)
    monkeypatch.setattr(training_code, "LIBRARY", lib)
    before = training_code.digest()
    losses = lib / "losses.py"
    text = losses.read_text()
    losses.write_text('"""Reworded."""\n# a comment\n' + text.split('"""', 2)[2])  # docstring and comment only
    assert training_code.digest() == before
    losses.write_text(text + "\nEPSILON = 1e-12\n")
    assert training_code.digest() != before


def test_prose_is_in_no_params_and_what_trains_is(config):
    run = "cifar10-resnet18-l2-sgd60"
    before = (C.resolve_run(config, run), C.prepare_spec(config, "cifar10"), C.engine_numerics(config))
    config["recipes"]["sgd60"]["source"] = "another citation"
    config["datasets"]["cifar10"]["label"] = "CIFAR ten"
    config["engine"].update(log_every=7, checkpoint_minutes=3, infer_batch_size=64)  # speed, not numbers
    assert (C.resolve_run(config, run), C.prepare_spec(config, "cifar10"), C.engine_numerics(config)) == before
    assert "source" not in before[0]["recipe"] and "label" not in before[1]
    for edit in (
        lambda c: c["recipes"]["sgd60"].update(epochs=30),
        lambda c: c["threads"].update(train=4),
        lambda c: c["runs"][run].update(model_kwargs={"width": 32}),
    ):
        changed = yaml.safe_load(yaml.safe_dump(config))
        edit(changed)
        assert C.resolve_run(changed, run) != before[0]
    assert before[0]["threads"] == config["threads"]["train"] and before[0]["training_code_version"] >= 1
    config["engine"].update(amp=True, deterministic=True)
    assert C.engine_numerics(config) != before[2]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(recipe_overrides={"epoch": 3}),
         r"runs\.demo-smallcnn-l2\.recipe_overrides: unknown key\(s\) \['epoch'\]; known keys: .*epochs"),
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(seeds=0), r"runs\.demo-smallcnn-l2\.seeds: 0 is not a count"),
        (lambda c: c.update(only_seeds=[-1]), r"only_seeds\.0: -1 is less than the minimum"),
    ],
)  # fmt: skip
def test_schema_typos_name_the_key_and_the_choices(config, edit, message):
    edit(config)
    errors = C.schema_errors(config, SCHEMA)
    assert any(re.search(message, e) for e in errors), errors


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(model_kwargs={"widht": 16}),
         r"runs\.demo-smallcnn-l2\.model_kwargs: smallcnn takes no \['widht'\]; it takes \['width'\]"),
        (lambda c: c["runs"]["cifar10-resnet18-l2-sgd60"].update(model="resnet999"),
         r"runs\.cifar10-resnet18-l2-sgd60\.model: unknown model 'resnet999'; known: \[.*'resnet18'"),
        (lambda c: c["studies"]["paper"]["tables"]["table3"]["columns"].update(maxlogit="maxlogit"),
         r"studies\.paper\.tables\.table3\.columns: unknown score 'maxlogit'; known: \[.*'max_logit_raw'"),
        (lambda c: c["studies"]["demo"]["tables"]["demo"]["scores"].append("msp_typo"),
         r"studies\.demo\.tables\.demo\.scores: unknown score 'msp_typo'"),
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(ood=["digits-near", "digits-noise"]),
         r"studies\.demo\.tables\.demo\.ood: run demo-smallcnn-l2 is not evaluated on 'digits-scrambled'"),
        (lambda c: c["runs"]["demo-smallcnn-nol2"].update(ood=["digits-near"]),
         r"studies\.demo\.figures\.norm_distributions\.datasets: run demo-smallcnn-nol2 is not evaluated on 'digits-noi"),
        (lambda c: c["runs"]["demo-smallcnn-l2"].update(seeds=[1, 2]),
         r"studies\.demo\.figures\.norm_distributions: panel 'L2' shows seed 0, which run demo-smallcnn-l2 does not have"),
        (lambda c: c.update(only_seeds=[3, 70]), r"only_seeds: 70 is no seed of any run \(their seeds: \[0, 1, 2, 3, 4"),
    ],
)  # fmt: skip
def test_reference_typos_name_the_key_and_the_choices(config, edit, message):
    edit(config)
    with pytest.raises(C.ConfigError, match=message):
        C.check(config)


def test_command_line_text_is_read_as_the_numbers_the_schema_wants(config):
    # what `--config only_seeds=[0,1] 'runs={demo-smallcnn-l2: {seeds: 3}}'` gives the Snakefile
    config.update(only_seeds=["0", "1"])
    config["runs"]["demo-smallcnn-l2"].update(seeds="3", probe_size="20")
    config["runs"]["demo-smallcnn-nol2"].update(seeds=["0", "4"])
    config["engine"].update(deterministic="true")
    config["datasets"]["digits-id"]["label"] = "5"  # a string where the schema wants one stays one
    C.coerce_command_line(config, SCHEMA)
    assert config["only_seeds"] == [0, 1] and config["runs"]["demo-smallcnn-l2"]["seeds"] == 3
    assert config["runs"]["demo-smallcnn-nol2"]["seeds"] == [0, 4] and config["engine"]["deterministic"] is True
    assert config["runs"]["demo-smallcnn-l2"]["probe_size"] == 20 and config["datasets"]["digits-id"]["label"] == "5"
    assert C.schema_errors(config, SCHEMA) == []


def test_seeds_are_a_count_or_a_list_and_only_seeds_picks_a_subset(config):
    assert C.seeds(config, "demo-smallcnn-l2") == [0, 1, 2]
    config["runs"]["demo-smallcnn-l2"]["seeds"] = [3, 7]
    assert C.seeds(config, "demo-smallcnn-l2") == [3, 7]
    config["only_seeds"] = [0, 7]
    assert C.seeds(config, "demo-smallcnn-l2") == [7] and C.seeds(config, "demo-smallcnn-nol2") == [0]
    table = C.resolve_table(config, config["studies"]["demo"]["tables"]["demo"])
    assert table["metrics"]["demo-smallcnn-l2"] == ["results/runs/demo-smallcnn-l2/seed7/metrics.csv"]
    # a list of seeds is counted as its length where the plan prints the jobs (it multiplied the list)
    assert P.summary(config, "demo").set_index("run").loc["demo-smallcnn-l2", "seeds"] == 1
    # seeds the paper's runs have and the demo's do not: the config is fine, a paper target builds
    # seed 3 of every run, and only a target that needs a demo run says it has no such seed
    config["only_seeds"] = [3]
    config["runs"]["demo-smallcnn-l2"]["seeds"] = 3
    C.check(config)
    assert C.study_item(config, "paper", "tables", "table8")["metrics"]["cifar10-resnet18-l2-sgd60"] == [
        "results/runs/cifar10-resnet18-l2-sgd60/seed3/metrics.csv"
    ]
    with pytest.raises(C.ConfigError, match=r"only_seeds: \[3\] leaves run demo-smallcnn-nol2 no seed \(it has \[0, 1, 2\]\)"):
        C.study_item(config, "demo", "tables", "demo")


def test_recorded_differences_name_each_changed_value(config):
    run = "demo-smallcnn-l2"
    engine = {**ENGINE_DEFAULTS, **config["engine"]}
    recorded = {**C.resolve_run(config, run), "seed": 1, "engine": engine}  # as scripts/train.py writes it
    recorded["recipe"]["source"] = "an older citation"  # prose recorded by older versions does not count
    assert C.recorded_differences(recorded, config, run, 1) == []
    config["recipes"]["demo-sgd60"]["epochs"] = 30
    config["engine"]["amp"] = True
    config["threads"]["train"] = 2
    assert C.recorded_differences(recorded, config, run, 1) == [
        "engine.amp: recorded False, now True",
        "recipe.epochs: recorded 60, now 30",
        "threads: recorded 1, now 2",
    ]


# --- the library: the thread count, broken files, the log ----------------------------------------


@pytest.mark.slow
def test_a_model_does_not_depend_on_the_jobs_thread_count(config, tmp_path):
    """Item 6: torch's thread count changes a CPU model's float reductions; training sets it from the
    config, whatever thread count the job started with (Snakemake's --cores)."""
    from l2ood.data import digits_splits
    from l2ood.checkpoint import config_digest
    from l2ood.train import fit

    config["recipes"]["demo-sgd60"].update(epochs=2, milestones=[1])
    config["threads"]["train"] = 2
    cfg = {**C.resolve_run(config, "demo-smallcnn-l2"), "model_kwargs": {"width": 8}, "probe_size": 50}
    x, y = digits_splits([0, 1, 2, 3, 4], 0.35, 0)["train"]
    states, saved = [], torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)  # what _common.setup did with the job's threads
            fit(cfg, x, y, tmp_path / f"t{threads}", seed=0)
            states.append(torch.load(tmp_path / f"t{threads}/model.pt", weights_only=True))
    finally:
        torch.set_num_threads(saved)
    assert all(torch.equal(states[0]["state_dict"][k], states[1]["state_dict"][k]) for k in states[0]["state_dict"])
    assert states[0]["config"]["threads"] == 2  # recorded with the model
    assert config_digest(cfg, 0) != config_digest(
        {**cfg, "threads": 1}, 0
    )  # a checkpoint of another count is not resumed


def test_a_truncated_split_names_its_path_and_the_fix(tmp_path):
    from l2ood.data import load_split, save_split
    from l2ood.sources import CorruptFileError

    path = tmp_path / "prepared/x/test.npz"
    save_split(path, np.zeros((4, 8, 8, 3), np.uint8), np.arange(4))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=rf"{re.escape(str(path))} is not a complete prepared split .*rm "):
        load_split(path)


def test_download_existing_pointing_nowhere_names_the_key(tmp_path):
    from l2ood.download import download
    from l2ood.sources import DownloadError

    with pytest.raises(DownloadError, match=r"download\.existing\.svhn is '.*/nowhere', which is not a folder"):
        download("svhn", tmp_path / "datasets", existing=tmp_path / "nowhere")
    assert not (tmp_path / "datasets/svhn").exists()


def test_a_failing_scripts_log_ends_with_the_exception(tmp_path):
    log = tmp_path / "logs/x.log"
    script = f"""
import sys, types
sys.path.insert(0, {str(ROOT / "workflow/scripts")!r})
from _common import setup
sm = types.SimpleNamespace(scriptdir={str(ROOT / "workflow/scripts")!r}, log=[{str(log)!r}], rule="evaluate",
                           config={{"threads": {{"train": 1, "infer": 1}}}}, threads=1)
setup(sm).info("started")
raise ValueError("the message a user needs")
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = log.read_text().strip().splitlines()
    assert "started" in lines[0] and "failed: ValueError: the message a user needs" in log.read_text()
    assert lines[-1] == "ValueError: the message a user needs"


# --- the workflow: one built tiny demo --------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_built):
    return built_copy(tmp_path_factory, tiny_built, "rerun")  # `snakemake --cores 2` with TINY


def edited(work: Path, name: str, old: str, new: str):
    """Replace ``old`` by ``new`` in ``work/name``; returns a function that puts the file back."""
    path = work / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new))
    return lambda: path.write_text(text)


@pytest.mark.slow
def test_touching_every_script_and_the_library_replans_nothing(built):
    """Items 1 and 3: a `git pull` gives every file a new modification time."""
    later = time.time() + 5
    for path in [built / "Snakefile", built / "config.yaml", *(built / "workflow").rglob("*.*")]:
        os.utime(path, (later, later))
    assert plan(built, *TINY) == {}


@pytest.mark.slow
def test_cosmetic_edits_retrain_nothing(built):
    """Item 2: labels, citations and captions are in no training or preparing job's params."""
    restore = [
        edited(built, "config.yaml", 'label: "Digits 0-4 (ID)"', 'label: "Digits zero to four"'),
        edited(built, "config.yaml", 'source: "sgd60 (paper A.1 schedule;', 'source: "reworded (paper A.1;'),
        edited(built, "config.yaml", "laid out like the paper's", "laid out as the paper's"),
    ]
    try:
        jobs = plan(built, *TINY)
    finally:
        for r in reversed(restore):
            r()
    assert not {"prepare", "train", "infer", "evaluate"} & set(jobs), jobs
    # what prints the edited label or caption redoes it (their params hold the resolved spec's digest):
    # both tables and the three figures that label the ID set
    assert jobs.get("table") == 2 and jobs.get("figure") == 3, jobs
    assert plan(built, *TINY) == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        "recipes: {demo-sgd60: {epochs: 2, milestones: [1]}}",  # a recipe value
        "engine: {deterministic: true}",  # engine options that change numbers
        "engine: {amp: true}",
        "threads: {train: 2, infer: 1}",
    ],
)
def test_what_changes_a_model_retrains_it(built, extra):
    (built / "extra.yaml").write_text(extra)
    jobs = plan(built, *TINY, "extra.yaml")
    assert jobs.get("train") == 4 and jobs.get("infer") == 4, jobs


@pytest.mark.slow
def test_a_training_code_version_bump_retrains_and_a_library_edit_reevaluates(built):
    v = TRAINING_CODE_VERSION
    restore = edited(
        built, "workflow/l2ood/engine.py", f"TRAINING_CODE_VERSION = {v}\n", f"TRAINING_CODE_VERSION = {v + 1}\n"
    )
    try:
        jobs = plan(built, *TINY)
    finally:
        restore()
    assert jobs.get("train") == 4 and jobs.get("infer") == 4, jobs
    restore = edited(built, "workflow/l2ood/metrics.py", "import numpy as np", "import numpy as np  # edited")
    try:
        jobs = plan(built, *TINY)
    finally:
        restore()
    assert jobs.get("evaluate") == 4 and "train" not in jobs and "infer" not in jobs, jobs


@pytest.mark.slow
def test_choosing_odins_pair_reruns_only_the_detectors_jobs_and_odins_code_the_features(built):
    """Issue 23 item 2: the features job stores ODIN's scores for the whole (T, eps) grid; the pair a
    config chooses is the detectors job's param. ODIN's own code is the features job's."""
    (built / "odin.yaml").write_text("detectors: {params: {odin: {temperature: 1, epsilon: 0.0028}}}")
    jobs = plan(built, *TINY, "odin.yaml")
    assert jobs.get("detectors") == 4 and not {"train", "infer", "features", "evaluate"} & set(jobs), jobs
    restore = edited(built, "workflow/l2ood/odin.py", "BATCH = 256", "BATCH = 128")
    try:
        jobs = plan(built, *TINY)
    finally:
        restore()
    assert jobs.get("features") == 4 and jobs.get("detectors") == 4 and not {"train", "infer"} & set(jobs), jobs
    assert plan(built, *TINY) == {}


@pytest.mark.slow
def test_copied_results_are_kept_or_reported_against_their_recorded_config(built, tmp_path):
    """Item 3: a fresh clone has no Snakemake records; each run's config.yaml says what trained it."""
    clone = copy_workflow(tmp_path / "clone")
    for folder in ("resources", "results"):
        shutil.copytree(built / folder, clone / folder, symlinks=True)
    assert not {"prepare", "train", "infer"} & set(plan(clone, *TINY))
    before = (clone / MODEL).stat().st_mtime_ns
    (clone / "fewer.yaml").write_text("recipes: {demo-sgd60: {epochs: 2, milestones: [1]}}")
    proc = snakemake(clone, "-n", *TINY, "fewer.yaml", check=False)
    assert proc.returncode != 0
    assert "holds a model trained with another config" in proc.text, proc.text[-3000:]
    assert "recipe.epochs: recorded 3, now 2" in proc.text and "mv results/runs/demo-smallcnn-" in proc.text
    assert (clone / MODEL).stat().st_mtime_ns == before
    # where Snakemake trained it, its own record replans the run instead
    jobs = plan(built, *TINY, str(clone / "fewer.yaml"))
    assert jobs.get("train") == 4, jobs


@pytest.mark.slow
def test_a_subset_of_seeds_from_the_command_line(built):
    """Item 9: `--config` gives the list's items as text."""
    jobs = plan(built, *TINY, "--config", "only_seeds=[1]")
    assert not {"train", "infer", "evaluate"} & set(jobs), jobs  # built already; the table reads seed 1 only
    jobs = plan(built, *TINY, "--config", "runs={demo-smallcnn-l2: {seeds: [0, 1, 5]}}")
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 1, jobs


def dry_run_with_half_of(path, work):
    """``snakemake -n`` in ``work`` while ``path`` holds only its first half (a copy cut short); restored after."""
    data = path.read_bytes()
    try:
        path.write_bytes(data[: len(data) // 2])
        return snakemake(work, "-n", *TINY, check=False)
    finally:
        path.write_bytes(data)


@pytest.mark.slow
def test_a_truncated_prepared_split_is_reported_before_any_job(built):
    proc = dry_run_with_half_of(built / "resources/prepared/digits-near/test.npz", built)
    assert proc.returncode != 0
    assert "resources/prepared/digits-near/test.npz is not a complete prepared split" in proc.text, proc.text[-3000:]
    assert "rm resources/prepared/digits-near/test.npz" in proc.text


def header_examples() -> list[str]:
    """The `snakemake ...` command lines of config.yaml's header comment."""
    header = []
    for line in (ROOT / "config.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return [m.group(1) for line in header if (m := re.match(r"#\s+(snakemake .+?)(\s{2,}.*)?$", line))]


@pytest.mark.slow
def test_the_config_headers_examples_work(built):
    examples = header_examples()
    assert len(examples) >= 4, examples
    for example in examples:
        proc = snakemake(built, "-n", *TINY, *shlex.split(example)[1:])
        assert "This was a dry-run" in proc.text or "Nothing to be done" in proc.text, (example, proc.text[-2000:])


# --- downloads and the data a study reads: fake archives --------------------------------------


@pytest.mark.slow
def test_downloads_survive_touched_scripts_and_a_bad_existing_path(tmp_path):
    """Items 1 and 7: a verified archive is never planned again; a wrong `download.existing` is named."""
    from fakes.raw_datasets import make

    work = copy_workflow(tmp_path / "work")
    md5, _ = make("cifar10", work / "resources/datasets/cifar10")  # as a finished download left it
    (work / "fake.yaml").write_text(yaml.safe_dump({"download": {"md5": md5}}))
    target = "resources/prepared/cifar10/test.npz"
    snakemake(work, target, "--cores", "1", "--configfile", "fake.yaml")
    archive = work / "resources/datasets/cifar10/cifar-10-python.tar.gz"
    before = archive.stat().st_mtime_ns
    later = time.time() + 5
    for path in (work / "workflow").rglob("*.py"):
        os.utime(path, (later, later))
    assert plan(work, target, "--configfile", "fake.yaml") == {}
    assert plan(work, target, "--forcerun", "prepare", "--configfile", "fake.yaml") == {"prepare": 1}
    assert archive.stat().st_mtime_ns == before
    # a kind whose copy is not there: the job stops naming the key, and its log ends with why
    svhn = [
        "resources/prepared/svhn/test.npz",
        "--cores",
        "1",
        "--config",
        "download={existing: {svhn: /no/such/folder}}",
    ]
    proc = snakemake(work, *svhn, check=False)
    assert proc.returncode != 0 and (work / "logs/download/svhn.log").exists(), proc.text[-3000:]
    log = (work / "logs/download/svhn.log").read_text().strip()
    assert "download.existing.svhn is '/no/such/folder', which is not a folder here" in log.splitlines()[-1], log


@pytest.mark.slow
def test_a_studys_data_target_prepares_what_it_reads(tmp_path):
    """Item 8: `snakemake paper --until prepare` stops with Snakemake's "BUG: Out of jobs ready" (prepare
    jobs that read other prepare jobs' outputs); `snakemake paper_data` builds the same files."""
    from paper_mini import write

    mini = write(tmp_path / "mini")
    work = copy_workflow(tmp_path / "work")
    proc = snakemake(work, "paper_data", "--cores", "2", "--configfile", str(mini))
    assert "BUG" not in proc.text
    # every split a job of the whole study reads (issue 19, item 13: the detectors' MNIST, DTD and
    # Places365 were missing): the prepare jobs a dry run of the study plans
    planned = snakemake(work, "-n", "paper", "--forcerun", "prepare", "--configfile", str(mini)).text
    wanted = set(re.findall(r"rule prepare:\n(?:    .*\n)*?    output: resources/prepared/(\S+?\.npz)", planned))
    assert {"mnist/test.npz", "dtd/test.npz", "places365/test.npz"} <= wanted, wanted
    folder = work / "resources/prepared"
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*.npz")} == wanted
    assert not (work / "results").exists()


# --- real training runs ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_failed_trainings_log_ends_with_the_exception(tmp_path):
    work = copy_workflow(tmp_path / "work")
    (work / "nan.yaml").write_text("recipes: {demo-sgd60: {lr: 1.0e+30}}")
    proc = snakemake(work, MODEL, "--cores", "1", *TINY, "nan.yaml", check=False)
    assert proc.returncode != 0
    last = (work / "logs/train/demo-smallcnn-l2/seed0.log").read_text().strip().splitlines()[-1]
    assert re.search(r"NonFiniteLossError: loss became NaN or infinite at epoch 1", last), last


@pytest.mark.slow
def test_models_do_not_depend_on_cores(tmp_path):
    """Item 6 through Snakemake: threads.train 2 under --cores 1 and --cores 2 gives one model."""
    work = copy_workflow(tmp_path / "work")
    (work / "two.yaml").write_text("threads: {train: 2, infer: 1}")
    models = []
    for cores in ("1", "2"):
        snakemake(work, MODEL, "--cores", cores, "--forcerun", "train", *TINY, "two.yaml")
        models.append(torch.load(work / MODEL, weights_only=True))
    assert models[0]["config"]["threads"] == 2
    sd = [m["state_dict"] for m in models]
    assert all(torch.equal(sd[0][k], sd[1][k]) for k in sd[0])


@pytest.mark.slow
def test_a_job_finished_after_the_head_died_is_kept(tmp_path):
    """Item 4: SIGKILL the Snakemake process mid-training; the orphaned training finishes; the next run
    (after --unlock) keeps its model instead of training it again ("Forced execution")."""
    work = copy_workflow(tmp_path / "work")
    (work / "long.yaml").write_text("recipes: {demo-sgd60: {epochs: 25, milestones: [20]}}")
    args = [MODEL, "--cores", "1", *TINY, "long.yaml"]
    head = subprocess.Popen(["snakemake", *args], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    log, model = work / "logs/train/demo-smallcnn-l2/seed0.log", work / MODEL
    try:
        deadline = time.time() + 300
        while not (log.exists() and "epoch 2/25" in log.read_text()) and time.time() < deadline:
            time.sleep(0.2)
        assert not model.exists(), "training finished before the head was killed"
        os.kill(head.pid, signal.SIGKILL)  # the head only: its training job runs on
        head.wait()
        while not model.exists() and time.time() < deadline:
            time.sleep(0.5)
        assert model.exists(), "the orphaned training did not finish"
        time.sleep(2)  # the orphan's last steps after the model
    finally:
        if _group_alive(head.pid):  # a failed test leaves no training behind
            os.killpg(head.pid, signal.SIGKILL)
    before = model.stat().st_mtime_ns
    snakemake(work, "--unlock", *args)
    proc = snakemake(work, "-n", *args)
    assert "train" not in job_stats(proc.text), proc.text[-3000:]
    assert "kept results/runs/demo-smallcnn-l2/seed0/" in proc.text
    snakemake(work, *args)
    assert model.stat().st_mtime_ns == before


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


# --- issue 19: what is on disk is checked against everything that made it ------------------------


def clone_of(built: Path, dest: Path, records: bool = False) -> Path:
    """A fresh clone with the built results copied in (``records``: and Snakemake's .snakemake/)."""
    clone = copy_workflow(dest)
    for folder in ("resources", "results") + ((".snakemake",) if records else ()):
        shutil.copytree(built / folder, clone / folder, symlinks=True)
    return clone


def advice(text: str) -> list[str]:
    """The commands of the fix line that ends the report of what is on disk."""
    m = re.search(r"which Snakemake would keep as it is\): (.+)", text)
    return [c.strip() for c in m.group(1).split(";")] if m else []


@pytest.mark.slow
def test_the_advice_for_a_stale_run_takes_its_tables_too(built, tmp_path):
    """Item 5: following the `mv` of a run the config no longer matches leaves the tables built from
    it, and Snakemake keeps them ("Nothing to be done"): the advice moves the study's results too."""
    clone = clone_of(built, tmp_path / "clone")
    (clone / "fewer.yaml").write_text("recipes: {demo-sgd60: {epochs: 2, milestones: [1]}}")
    proc = snakemake(clone, "-n", *TINY, "fewer.yaml", check=False)
    assert proc.returncode != 0 and "recipe.epochs: recorded 3, now 2" in proc.text, proc.text[-3000:]
    commands = advice(proc.text)
    assert "mv results/demo results/demo.old" in commands, commands
    for command in dict.fromkeys(commands):
        subprocess.run(shlex.split(command), cwd=clone, check=True)
    jobs = plan(clone, *TINY, "fewer.yaml")
    figures = len(yaml.safe_load((ROOT / "config.yaml").read_text())["studies"]["demo"]["figures"])
    assert jobs.get("train") == 4 and jobs.get("table") == 2 and jobs.get("figure") == figures, jobs


@pytest.mark.slow
def test_results_built_from_a_moved_run_are_reported(built, tmp_path):
    """Item 5, where Snakemake has its records: a run folder moved away (to train it again) leaves
    the tables built from it, which Snakemake keeps; a seed added to a run is replanned by it."""
    clone = clone_of(built, tmp_path / "clone", records=True)
    run = "results/runs/demo-smallcnn-l2/seed1"
    shutil.move(clone / run, clone / f"{run}.old")
    proc = snakemake(clone, "-n", *TINY, check=False)
    assert proc.returncode != 0, proc.text[-3000:]
    assert f"{run}/model.pt is not on disk, but results that read it are (" in proc.text, proc.text[-3000:]
    assert "results/demo/tables/demo.html" in proc.text and "mv results/demo results/demo.old" in proc.text
    shutil.move(clone / f"{run}.old", clone / run)
    jobs = plan(clone, *TINY, "--config", "runs={demo-smallcnn-l2: {seeds: 3}}")
    assert jobs.get("train") == 1 and jobs.get("table") == 2, jobs


@pytest.mark.parametrize(
    "extra, file, difference",
    [
        ("datasets: {digits-id: {seed: 1}}", "resources/prepared/digits-id/train.npz", "spec.seed: recorded 0, now 1"),
        ("datasets: {digits-id: {test_fraction: 0.5}}", "resources/prepared/digits-id/test.npz",
         "spec.test_fraction: recorded 0.35, now 0.5"),
        ("detectors: {params: {knn: {k: 5}}}", "results/runs/demo-smallcnn-l2/seed0/detectors.csv",
         "meta.params.knn: recorded None, now {'k': 5}"),
        ("runs: {demo-smallcnn-l2: {tune_scale_on: [digits-near]}}", "results/runs/demo-smallcnn-l2/seed0/metrics.csv",
         "meta.tune_scale_on: recorded ['digits-near', 'digits-noise', 'digits-scrambled'], now ['digits-near']"),
        ("studies: {demo: {tables: {demo: {std: false}}}}", "results/demo/tables/demo.html",
         "resolved.std: recorded True, now False"),
    ],
)  # fmt: skip
@pytest.mark.slow
def test_copied_results_are_checked_against_every_value_that_made_them(built, tmp_path, extra, file, difference):
    """Item 6: a fresh clone has no records; each job's params record says what made its file."""
    clone = tmp_path / "clone"
    if not clone.exists():
        clone_of(built, clone)
    (clone / "extra.yaml").write_text(extra)
    proc = snakemake(clone, "-n", *TINY, "extra.yaml", check=False)
    assert proc.returncode != 0, proc.text[-3000:]
    assert f"{file} was made with other settings than this config gives" in proc.text, proc.text[-3000:]
    assert difference in proc.text, proc.text[-3000:]
    assert "mv results/demo results/demo.old" in advice(proc.text), proc.text[-3000:]


@pytest.mark.slow
def test_touch_after_a_change_that_retrains_is_refused(built, tmp_path):
    """Item 8: `--touch` marks every output current without running anything, so Snakemake's records
    cannot stand in for the check of each run's recorded config."""
    clone = clone_of(built, tmp_path / "clone", records=True)
    (clone / "lr.yaml").write_text("recipes: {demo-sgd60: {lr: 0.05}}")
    before = (clone / MODEL).stat().st_mtime_ns
    proc = snakemake(clone, "--touch", "--cores", "1", *TINY, "lr.yaml", check=False)
    assert proc.returncode != 0, proc.text[-3000:]
    assert "recipe.lr: recorded 0.1, now 0.05" in proc.text and "holds a model trained with another" in proc.text
    assert (clone / MODEL).stat().st_mtime_ns == before
    assert plan(clone, *TINY, "lr.yaml").get("train") == 4  # the records still replan it
    assert "train" not in plan(clone, "-t", *TINY)  # nothing changed: --touch is fine


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model.pt", "outputs/digits-noise.npz", "features/digits-id.train.npz", "probes.npz"])
def test_a_truncated_run_file_is_reported_before_any_job(built, name):
    """Item 12: a run's zip files (a torch.save file is one) cut short are found before any job."""
    proc = dry_run_with_half_of(built / "results/runs/demo-smallcnn-nol2/seed1" / name, built)
    assert proc.returncode != 0
    assert f"results/runs/demo-smallcnn-nol2/seed1/{name} (" in proc.text, proc.text[-3000:]
    assert "not a complete file" in proc.text and "mv results/demo results/demo.old" in proc.text
    if name.endswith(("model.pt", "probes.npz")):
        assert "mv results/runs/demo-smallcnn-nol2/seed1 results/runs/demo-smallcnn-nol2/seed1.old" in proc.text
    else:
        assert re.search(rf"rm -r [^;\n]*results/runs/demo-smallcnn-nol2/seed1/{name.split('/')[0]}\b", proc.text)


@pytest.mark.slow
def test_a_damaged_metrics_file_stops_the_table_naming_it(built, tmp_path, monkeypatch):
    """Item 7: a per-seed metrics.csv cut mid-row parsed, and its table showed cells of fewer seeds."""
    from l2ood.results import DamagedResultError
    from l2ood.tables import render_table

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    for run, values in tiny["runs"].items():
        config["runs"][run].update(values)
    shutil.copytree(built / "results/runs", tmp_path / "results/runs")
    monkeypatch.chdir(tmp_path)
    spec = C.study_item(config, "demo", "tables", "demo")
    before = render_table(spec).markdown
    path = Path("results/runs/demo-smallcnn-l2/seed1/metrics.csv")
    text = path.read_text()
    header, last = text.index("\n") + 1, text.rindex("\n", 0, len(text) - 1) + 1
    rows = header, last, text.rindex("\n", 0, text.index("digits-noise")) + 1
    for cut in (len(text) - 40, *rows):  # mid-row; without its rows, the last row, the last two OoD sets
        path.write_text(text[:cut])
        with pytest.raises(DamagedResultError, match=rf"{path}: .*rm {path}"):
            render_table(spec)
    path.write_text(text)
    assert render_table(spec).markdown == before
