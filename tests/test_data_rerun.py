"""Issue 19, "Trust the disk", items 1-3: what a rerun does to the data on disk. A verified archive
survives every forced or other rerun of the jobs above it; a prepared split deleted by hand is made
again without retraining the models that read it; a `touch` of data retrains nothing, while a
changed data set still does. Fake archives in the real layout (tests/fakes) and the tiny demo."""

import os
import time

import yaml
from fakes.raw_datasets import make
from test_rerun import TINY, plan, snakemake
from workflow_files import copy_workflow

MNIST = "resources/prepared/mnist/test.npz"


def fake_archives(work, kind):
    """``kind``'s fake archives where a finished download left them; the config naming their MD5s."""
    md5, _ = make(kind, work / "resources/datasets" / kind)
    (work / "fake.yaml").write_text(yaml.safe_dump({"download": {"md5": md5}}))
    return sorted((work / "resources/datasets" / kind).glob("t10k-*"))


def test_forced_reruns_keep_the_verified_archives(tmp_path):
    """Item 1: `-F` on a prepared split and `-R download_mnist` deleted the archives, then the
    download failed (offline). Now the download's output is its MD5SUMS record: a rerun checks the
    archives again and keeps them."""
    work = copy_workflow(tmp_path / "work")
    archives = fake_archives(work, "mnist")
    snakemake(work, MNIST, "--cores", "1", "--configfile", "fake.yaml")
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in archives}
    for force in (["-F"], ["-R", "download_mnist"], ["-R", "prepare"]):
        proc = snakemake(work, MNIST, "--cores", "1", "--configfile", "fake.yaml", *force, check=False)
        assert proc.returncode == 0, (force, proc.text[-3000:])
        assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in archives} == before, force
    assert (work / "resources/datasets/mnist/MD5SUMS").read_text().count("  t10k-") == 2
    log = (work / "logs/download/mnist.log").read_text()
    assert "already in place, MD5 ok" in log and "downloading" not in log, log
