"""Issue 19, "Trust the disk", items 1-3: what a rerun does to the data on disk. A verified archive
survives every forced or other rerun of the jobs above it; a prepared split deleted by hand is made
again without retraining the models that read it; a `touch` of data retrains nothing, while a
changed data set still does. Fake archives in the real layout (tests/fakes) and the tiny demo."""

import os
import shutil
import time

import pytest
import yaml
from fakes.raw_datasets import make
from test_rerun import TINY, plan, snakemake
from workflow_files import built_copy, copy_workflow, job_stats

MNIST = "resources/prepared/mnist/test.npz"


def fake_archives(work, kind):
    """``kind``'s fake archives where a finished download left them; the config naming their MD5s."""
    md5, _ = make(kind, work / "resources/datasets" / kind)
    (work / "fake.yaml").write_text(yaml.safe_dump({"download": {"md5": md5}}))
    return sorted((work / "resources/datasets" / kind).glob("t10k-*"))


@pytest.mark.slow
def test_forced_reruns_keep_the_verified_archives(tmp_path):
    """Item 1: `-F` on a prepared split and `-R download_mnist` deleted the archives, then the
    download failed (offline). Now the download's output is its MD5SUMS record: a rerun checks the
    archives again and keeps them."""
    work = copy_workflow(tmp_path / "work")
    archives = fake_archives(work, "mnist")
    snakemake(work, MNIST, "--cores", "1", "--configfile", "fake.yaml")
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in archives}
    for force in (["-F"], ["-R", "download_mnist"], ["-R", "prepare"]):
        prepared = (work / MNIST).stat().st_mtime_ns
        proc = snakemake(work, MNIST, "--cores", "1", "--configfile", "fake.yaml", *force, check=False)
        assert proc.returncode == 0, (force, proc.text[-3000:])
        assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in archives} == before, force
        if force == ["-R", "download_mnist"]:  # the archives checked again: the MD5s pin what prepare read
            assert (work / MNIST).stat().st_mtime_ns == prepared and job_stats(proc.text) == {"download_mnist": 1}
    assert (work / "resources/datasets/mnist/MD5SUMS").read_text().count("  t10k-") == 2
    log = (work / "logs/download/mnist.log").read_text()
    assert "already in place, MD5 ok" in log and "downloading" not in log, log


# --- the tiny demo: a prepared split deleted, touched, or made with other values ----------------

PREPARED = "resources/prepared/digits-id/train.npz"
LARGE = ["--max-checksum-file-size", "0"]  # as the paper's splits (>1 MB): Snakemake compares no checksum


#: every run and seed of the tiny demo: seed 1 of one run is still to train (nothing built from it yet)
METRICS = [
    f"results/runs/{run}/seed{seed}/metrics.csv"
    for run in ("demo-smallcnn-l2", "demo-smallcnn-nol2")
    for seed in (0, 1)
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_built):
    return built_copy(tmp_path_factory, tiny_built, "data-rerun")  # `snakemake --cores 2` with TINY


@pytest.mark.slow
def test_touched_data_retrains_nothing_and_changed_data_retrains(built):
    """Item 3: modification times of data count for nothing (the split's content is pinned by its
    prepare job's params and its record's MD5); a data set's changed values still rerun everything
    that read it, through the record. Runs before the deleted-split test, which trains a seed under
    --max-checksum-file-size 0: Snakemake's record of that job holds no checksums, so touched small
    records would replan it here (a state of the shared fixture, not of a user's workflow)."""
    later = time.time() + 5
    prepared = [*(built / "resources/prepared").rglob("*.npz"), *(built / "resources/prepared").rglob("*.json")]
    times = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in prepared}
    try:
        for path in (built / "resources/prepared").rglob("*.npz"):
            os.utime(path, (later, later))
        assert plan(built, *TINY, *LARGE) == {}
        for path in (built / "resources/prepared").rglob("*.json"):  # small: Snakemake compares its checksum
            os.utime(path, (later, later))
        assert plan(built, *TINY) == {}
    finally:  # the shared fixture as built, for the next test (newer records would replan it under LARGE)
        for path, ns in times.items():
            os.utime(path, ns=ns)
    (built / "split.yaml").write_text("datasets: {digits-id: {seed: 1}}")  # another train/test split
    jobs = plan(built, *TINY, "split.yaml")  # prepare: its two splits and the two sets made from its test split
    assert jobs.get("prepare") == 4 and jobs.get("train") == 4 and jobs.get("infer") == 4, jobs
    (built / "near.yaml").write_text("datasets: {digits-near: {classes: [5, 6, 7]}}")  # an OoD set only
    jobs = plan(built, *TINY, "near.yaml")
    assert jobs.get("prepare") == 1 and "train" not in jobs and jobs.get("infer") == 4, jobs


@pytest.mark.slow
def test_a_deleted_split_is_made_again_and_only_the_unfinished_seed_trains(built):
    """Item 2: the package's fix for a truncated split is `rm` it; with one seed still to train, every
    finished model that read the split was planned again (Snakemake reruns whatever reads the
    output of a job it reruns, unless the input is ancient() and exists when it plans). A dry run
    wrote the split too: now it writes nothing and says what a run will make again."""
    path, model = built / PREPARED, built / "results/runs/demo-smallcnn-l2/seed1/model.pt"
    record = path.with_suffix(".json")
    data, recorded = path.read_bytes(), record.read_text() if record.exists() else None
    shutil.move(model.parent, built / "seed1.away")  # a seed still to train: the study's tables
    shutil.move(built / "results/demo", built / "demo.away")  # and figures are not built yet either
    try:
        path.unlink()
        proc = snakemake(built, "-n", *METRICS, *TINY, *LARGE)
        assert not path.exists() and f"{PREPARED} was deleted: a run makes it again" in proc.text, proc.text[-3000:]
        assert job_stats(proc.text).get("prepare") == 1  # planned as missing: the dry run's plan says so
        proc = snakemake(built, "--cores", "2", *METRICS, *TINY, *LARGE)
        jobs = job_stats(proc.text)
        assert jobs.get("train") == 1 and "prepare" not in jobs, jobs
        assert f"made {PREPARED} again" in proc.text and path.read_bytes() == data
        assert record.read_text() == recorded
    finally:
        shutil.rmtree(model.parent, ignore_errors=True)
        shutil.move(built / "seed1.away", model.parent)
        shutil.move(built / "demo.away", built / "results/demo")
    assert plan(built, *TINY, *LARGE) == {}


@pytest.mark.slow
def test_a_touched_shared_archive_reprepares_nothing(tmp_path):
    """Item 3: the archives linked from `download.existing` are no input of any job (the download's
    MD5SUMS record is), so a new modification time of the shared copy reruns nothing."""
    work = copy_workflow(tmp_path / "work")
    md5, _ = make("svhn", tmp_path / "shared")
    (work / "fake.yaml").write_text(
        yaml.safe_dump({"download": {"md5": md5, "existing": {"svhn": str(tmp_path / "shared")}}})
    )
    target = "resources/prepared/svhn/test.npz"
    snakemake(work, target, "--cores", "1", "--configfile", "fake.yaml")
    assert (work / "resources/datasets/svhn/test_32x32.mat").is_symlink()
    later = time.time() + 5
    for path in (tmp_path / "shared").iterdir():
        os.utime(path, (later, later))
    assert plan(work, target, "--configfile", "fake.yaml", *LARGE) == {}


def test_restore_makes_a_deleted_split_again_only_from_a_matching_record(tmp_path):
    """l2ood.data.restore, the parse-time step of item 2: same values and bytes keep what read the
    split; other bytes drop the record (the workflow redoes it and what read it); other values, or
    no record, leave it to the workflow."""
    from l2ood import data
    from l2ood.splits import record_path

    spec = {"kind": "digits", "classes": [0, 1, 2], "test_fraction": 0.3, "seed": 0, "image_size": 8}
    path = tmp_path / "prepared/d/train.npz"
    data.prepare(spec, "train", path)
    data.write_record(path, spec)
    made, record = path.read_bytes(), record_path(path).read_text()
    assert data.restore(path, spec, "train") is None  # not deleted
    path.unlink()
    assert data.restore(path, {**spec, "seed": 1}, "train") is None and not path.exists()  # other values
    assert data.restore(path, spec, "train") is True
    assert path.read_bytes() == made and record_path(path).read_text() == record
    path.unlink()
    record_path(path).write_text(record.replace(data.read_record(path)["md5"], "0" * 32))  # made by other code
    assert data.restore(path, spec, "train") is False and not record_path(path).exists()
    path.unlink()
    assert data.restore(path, spec, "train") is None and not path.exists()  # no record
