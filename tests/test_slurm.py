"""The workflow on a real SLURM: the tiny demo study through profiles/slurm on a one-node cluster.

One cluster (tests/slurm/cluster.py: munged, slurmctld, slurmd, two fake GPUs) serves every test,
and one SLURM run of the study serves most of them: its head process is SIGKILLed after the first
training job finished, the jobs it left running are cancelled (a preemption), and the same command
finishes the study. Checked: jobs went through sbatch and only the local rules stayed local;
training and inference jobs were given a GPU, the CPUs, the memory and the partition the profile
asks for; the study's metrics equal a local run's; the restart redid only what was unfinished; a
failing job is retried once and then reported as failed.

Needs Debian's slurmctld, slurmd, slurm-client and munge (`bash .ci/install-slurm.sh`) and root.
Without them the tests skip here, and fail under CI=true. About 2.5 minutes on 2 cores.
"""

import base64
import getpass
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from l2ood.layout import TRAIN_OUTPUTS
from slurm import cluster as slurm_cluster
from workflow_files import copy_workflow, job_stats, kill_group, snakemake, start_snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TINY = ["--configfile", "tests/config/tiny.yaml", "gpu.yaml"]
# The demo's runs are CPU-sized (gpus: 0); here they ask for a GPU, as the paper's runs do.
GPU_YAML = "runs:\n  demo-smallcnn-nol2: {gpus: 1}\n  demo-smallcnn-l2: {gpus: 1}\n"
# The first status check 2 s after a submission, not the plugin's 40 s: a short test.
FAST = ["--slurm-init-seconds-before-status-checks", "2"]
TRAIN_JOBS = 4  # 2 runs x 2 seeds in tests/config/tiny.yaml
GPU_RULES = ("train", "infer", "features")  # the rules that ask for the run's GPU


# --- helpers ----------------------------------------------------------------------------------


def kill_leftovers(work: Path, timeout: float = 30) -> None:
    """Kill processes of cancelled jobs that outlived them, as a real cluster's cgroups would.

    The test cluster tracks processes with proctrack/linuxproc (no cgroups in a container): when
    scancel kills a job's intermediate process first, its children are re-parented to init and
    escape, and would finish (writing outputs) after the test took its snapshot.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if Path(os.readlink(proc / "cwd")).resolve().is_relative_to(work.resolve()) and int(proc.name) != os.getpid():
                    left.append(int(proc.name))
            except (OSError, ValueError):
                continue
        if not left:
            return
        assert time.monotonic() < deadline, f"processes still running in {work}: {left}"
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def copy_repo(dest: Path) -> Path:
    copy_workflow(dest)
    (dest / "gpu.yaml").write_text(GPU_YAML)
    return dest


def point_profile_at(profile: Path, cluster) -> None:
    """Fill in the profile's marked cluster block as a user would: partitions, and the status
    command of a cluster without accounting (the account line stays commented: no slurmdbd)."""
    cpu, gpu = cluster.partitions
    text = profile.read_text()
    edits = [
        ('# slurm_partition: "cpu"', f'slurm_partition: "{cpu}"', 1),
        ('# slurm_partition: "gpu"', f'slurm_partition: "{gpu}"', len(GPU_RULES)),
        ("# slurm-status-command: squeue", "slurm-status-command: squeue", 1),
    ]
    for old, new, count in edits:
        assert text.count(old) == count, f"profiles/slurm/config.yaml: expected {count} x {old!r} in its cluster block"
        text = text.replace(old, new)
    profile.write_text(text)


def slurm_jobs(cluster) -> list[dict]:
    """Every job the cluster knows (finished ones stay for MinJobAge), from `scontrol -d -o`."""
    out = cluster.run("scontrol", "-d", "-o", "show", "job")
    jobs = []
    for line in out.splitlines():
        if line.startswith("JobId="):
            fields = dict(re.findall(r"(\S+?)=(\S*)", line))
            jobs.append(fields)
    return jobs


def records(work: Path, kind: str) -> set[Path]:
    """Outputs with a Snakemake record: kind "metadata" (a finished job's) or "incomplete" (a job
    still being written). Each record's name is its path, URL-safe base64, split at 255 bytes."""
    base, paths = work / ".snakemake" / kind, set()
    for rec in base.rglob("*") if base.exists() else []:
        if rec.is_file():
            name = "".join(part.removeprefix("@") for part in rec.relative_to(base).parts)
            try:
                paths.add((work / base64.urlsafe_b64decode(name).decode()).resolve())
            except ValueError:  # not a record (e.g. a migration marker)
                pass
    return paths


TRAINED = set(TRAIN_OUTPUTS.values())  # the files rule train declares


def finished_outputs(work: Path) -> dict[Path, int]:
    """Files of finished jobs -> mtime. Finished: no "incomplete" record, and either a "metadata"
    record (the head saw the job finish) or, for a training job, all its outputs present. The
    second case is a job that finished on the cluster after the head was killed: its job step
    clears the incomplete record the head wrote at submission, but only the head writes metadata
    (snakemake.persistence: records are written in the default exec mode only)."""
    done, running = records(work, "metadata"), records(work, "incomplete")
    files = outputs(work)
    model = TRAIN_OUTPUTS["model"]
    trained = {f.parent for f in files if f.name == model and all(f.parent / n in files for n in TRAINED)}

    def finished(f: Path) -> bool:
        covering = {f, *f.parents}
        if covering & running:  # the file, or a directory it is in, is still marked incomplete
            return False
        return bool(covering & done) or (f.parent in trained and f.name in TRAINED)

    return {f: t for f, t in files.items() if finished(f)}


def outputs(work: Path) -> dict[Path, int]:
    files = [p for d in ("results", "resources/prepared") for p in (work / d).rglob("*") if p.is_file()]
    return {p.resolve(): p.stat().st_mtime_ns for p in files}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reason = slurm_cluster.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    # 8 CPUs: two GPU jobs of 4 CPUs (the profile's set-threads) at once, limited by the two GPUs,
    # so the head is killed with training jobs still to run
    c = slurm_cluster.start(tmp_path_factory.mktemp("slurm"), cpus=8)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def local_metrics(tmp_path_factory) -> pd.DataFrame:
    work = copy_repo(tmp_path_factory.mktemp("local"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # torch's thread count is config.yaml's `threads` in both (not the cluster's 4 CPUs per GPU job)
    snakemake(work, "--cores", "2", "--resources", "gpu=2", *TINY, env=env, log=work / "run.log", timeout=300)
    return pd.read_csv(work / "results/demo/metrics.csv")


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The study through the SLURM profile, its head SIGKILLed after the first training job."""
    work = copy_repo(tmp_path_factory.mktemp("slurm-run"))
    point_profile_at(work / "profiles/slurm/config.yaml", cluster)
    # --verbose: the terminal keeps the per-job lines (workflow/rules/terminal.smk leaves them out), which
    # the kill waits for ("Finished jobid") and the checks read ("localrule", "submitted with SLURM jobid")
    args = ["--workflow-profile", "profiles/slurm", "--verbose", *FAST, *TINY]

    first = start_snakemake(work, *args, env=cluster.env, log=work / "first.log")
    deadline = time.monotonic() + 300
    try:
        while not re.search(r"Finished jobid: \d+ \(Rule: train\)", log := (work / "first.log").read_text()):
            assert first.poll() is None, f"snakemake ended before a training job finished:\n{log[-4000:]}"
            assert time.monotonic() < deadline, f"no training job finished in 300 s:\n{log[-4000:]}"
            time.sleep(0.2)
    finally:
        kill_group(first)  # SIGKILL: no clean-up, no cancelling of its jobs, a stale lock left behind

    # The jobs it left behind are cancelled, as a preemption or `scancel` would.
    cluster.run("scancel", "--user", getpass.getuser())
    deadline = time.monotonic() + 60
    while cluster.run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i").strip():
        assert time.monotonic() < deadline, "cancelled jobs still running after 60 s"
        time.sleep(0.5)
    kill_leftovers(work)
    finished = finished_outputs(work)

    # Restart: the lock of the killed process must go first (docs/cluster.md says so too).
    snakemake(work, *args, "--unlock", env=cluster.env, log=work / "unlock.log", timeout=60)
    second = snakemake(work, *args, env=cluster.env, log=work / "second.log", timeout=300).text
    return {
        "work": work,
        "first": (work / "first.log").read_text(),
        "second": second,
        "finished": finished,
        "jobs": slurm_jobs(cluster),
    }


# --- tests ------------------------------------------------------------------------------------


def test_jobs_go_through_sbatch_and_local_rules_stay_local(slurm_run, cluster):
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", slurm_run["first"] + slurm_run["second"])
    assert submitted, "no 'submitted with SLURM jobid' lines in Snakemake's output"
    ctld = cluster.log("slurmctld")
    for jobid in submitted:
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={jobid}\b", ctld), f"job {jobid} not seen by sbatch"
    ours = [j for j in slurm_run["jobs"] if j["JobId"] in set(submitted)]
    assert all(j["BatchFlag"] == "1" for j in ours)  # batch jobs: sbatch, not srun or salloc
    on_slurm = {re.match(r"rule_(\w+?)_wildcards", j["Comment"]).group(1) for j in ours}
    local = set(re.findall(r"^localrule (\w+):", slurm_run["first"] + slurm_run["second"], re.MULTILINE))
    assert on_slurm >= {"prepare", "train", "infer", "evaluate"}, on_slurm
    assert local >= {"study_metrics", "table", "figure"} and not local & on_slurm, (local, on_slurm)


def test_training_and_inference_jobs_get_a_gpu_and_the_profiles_resources(slurm_run):
    profile = yaml.safe_load((slurm_run["work"] / "profiles/slurm/config.yaml").read_text())
    jobs = {j["JobId"]: j for j in slurm_run["jobs"]}
    ran = [j for j in jobs.values() if j["JobState"] == "COMPLETED"]  # not those cancelled
    train = [j for j in ran if j["Comment"].startswith("rule_train_")]
    by_rule = {rule: [j for j in ran if j["Comment"].startswith(f"rule_{rule}_")] for rule in GPU_RULES}
    # No run and seed completed twice. Fewer than TRAIN_JOBS can show COMPLETED: a tiny training
    # job can finish its work in the moment between the head's kill and the scancel, and then
    # shows CANCELLED (the restart test checks that such a job is not redone).
    names = [j["Comment"] for j in train]
    states = "\n".join(str((j["JobId"], j["Comment"], j["JobState"])) for j in jobs.values())
    assert names and len(set(names)) == len(names) <= TRAIN_JOBS, states
    assert by_rule["infer"], states  # every run and seed is inferred after the restart at the latest
    for rule, rule_jobs in by_rule.items():  # features: only where the study has detector tables
        mem, threads = profile["set-resources"][rule]["mem_mb"], profile["set-threads"][rule]
        for j in rule_jobs:
            assert j.get("JOB_GRES") == "gpu:1", j  # the allocation itself, not just the request
            assert j["Partition"] == "gpu" and j["MinMemoryNode"] == f"{mem}M", j
            assert threads > 1 and j["NumCPUs"] == str(threads), j
    for j in ran:
        if j["Comment"].startswith(("rule_prepare_", "rule_evaluate_")):
            assert j.get("JOB_GRES") in (None, "(null)") and j["Partition"] == "cpu", j
    # inside the job, each GPU job's script saw its GPU (_common.claim_gpu logs it)
    for rule in GPU_RULES:
        logs = list((slurm_run["work"] / "logs" / rule).rglob("*.log"))
        assert logs or rule == "features", rule
        for log in logs:
            assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", log.read_text()), log


def test_outputs_match_a_local_run(slurm_run, local_metrics):
    cluster_metrics = pd.read_csv(slurm_run["work"] / "results/demo/metrics.csv")
    pd.testing.assert_frame_equal(cluster_metrics, local_metrics)  # same seeds; CPU training is deterministic
    for name in ("tables/demo.md", "figures/norm_distributions.png"):
        assert (slurm_run["work"] / "results/demo" / name).stat().st_size > 0


def test_restart_after_a_killed_head_redoes_only_unfinished_jobs(slurm_run):
    finished, work = slurm_run["finished"], slurm_run["work"]
    models = [p for p in finished if p.name == "model.pt"]
    assert models, "the head was killed before any training job finished"
    stats = job_stats(slurm_run["second"])
    assert stats, slurm_run["second"][-3000:]
    assert stats.get("train", 0) == TRAIN_JOBS - len(models), (stats, models)
    # every file finished before the kill is untouched: not rewritten, not resubmitted
    now = outputs(work)
    rewritten = [str(p.relative_to(work)) for p, t in finished.items() if now.get(p) != t]
    assert not rewritten, rewritten
    comments = [j["Comment"] for j in slurm_run["jobs"]]
    for model in models:  # results/runs/{run}/seed{seed}/model.pt: submitted once, before the kill
        run, seed = model.parent.parent.name, model.parent.name.removeprefix("seed")
        resubmitted = comments.count(f"rule_train_wildcards_{run}_{seed}") - 1
        assert resubmitted == 0, (run, seed)
    assert "Nothing to be done" not in slurm_run["second"]
    assert (work / "results/demo/metrics.csv").exists()


def test_a_failing_job_is_retried_then_reported_failed(cluster, tmp_path):
    (tmp_path / "profiles").mkdir()
    shutil.copytree(ROOT / "profiles/slurm", tmp_path / "profiles/slurm")
    point_profile_at(tmp_path / "profiles/slurm/config.yaml", cluster)
    (tmp_path / "Snakefile").write_text(
        "localrules: all\n\n"
        "rule all:\n    input: 'ok.txt', 'broken.txt'\n\n"
        "rule ok:\n    output: 'ok.txt'\n    shell: 'echo ok > {output}'\n\n"
        "rule broken:\n    output: 'broken.txt'\n    shell: 'echo broken-on-purpose >&2; exit 3'\n"
    )
    out = snakemake(
        tmp_path, "--workflow-profile", "profiles/slurm", *FAST, env=cluster.env, log=tmp_path / "run.log", timeout=240,
        check=False,
    ).text
    assert "Exiting because a job execution failed" in out or "At least one job did not complete" in out, out[-3000:]
    failed = re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", out)
    retries = yaml.safe_load((tmp_path / "profiles/slurm/config.yaml").read_text())["retries"]
    assert len(failed) == 1 + retries, out[-3000:]  # the first attempt and each retry
    assert (tmp_path / "ok.txt").read_text() == "ok\n"  # keep-going: the other job finished
    # a failed job's SLURM log is kept, where docs/cluster.md says
    logs = list((tmp_path / ".snakemake/slurm_logs/rule_broken").glob("*.log"))
    assert len(logs) == 1 + retries and all("broken-on-purpose" in p.read_text() for p in logs), logs
