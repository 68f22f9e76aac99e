"""The README's commands are the contract: each one is run here, as a dry run where it would train
or download, or is named with the test (or CI step) that runs it. A command added to the README
without either fails `test_every_readme_command_is_run_somewhere`. The reference parts moved from
the README to docs/ (MOVED) are held to the same contract."""

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT
from workflow_files import dry_run

README = ROOT / "README.md"
#: the README's reference sections, moved to docs/: their commands are checked as the README's
MOVED = [ROOT / "docs" / name for name in ("modules.md", "reruns.md", "engine.md", "choices.md", "extending.md")]

#: commands run elsewhere, by the test (tests/<file>::<function>) or CI step that runs them as written
RUN_ELSEWHERE = {
    "pip install -r envs/requirements-test.txt": ".ci/run",
    # checked, not run: its index (download.pytorch.org) is out of the test machines' reach
    "pip install -r envs/requirements-cpu.txt": "tests/test_envs.py::test_cpu_requirements_are_the_same_pins_with_torch_cpu_wheels",
    "pytest": ".ci/run",
    "bash .ci/install-slurm.sh": ".ci/run",
    "bash .ci/install-chromium.sh": ".ci/run",
    "CI=true bash .ci/run": ".ci/run",  # CI's own command
    "snakemake --cores 2": "tests/test_workflow.py::demo",  # the demo fixture builds it (a tiny config over it)
    "snakemake --report results/demo/report.html": "tests/test_workflow.py::test_report_has_a_description_and_the_tables_inline",
    "snakemake paper --report results/paper/report.html": "tests/test_paper_mini.py::test_report_groups_tables_and_figures",
    "python tests/paper_mini.py /tmp/mini": "tests/test_paper_mini.py::paper",
    "python -m l2ood.plan paper": "tests/test_plan.py::test_command_line_reads_the_repository_config_from_any_folder",
    # re-records tests/training_code.sha256: running it here would hide the change the check is for
    "python tests/training_code.py": "tests/test_rerun.py::test_training_code_version_is_kept_honest",
}  # fmt: skip
#: snakemake options that do not change what a dry run checks (how many cores, the dry run itself)
NO_PLAN = {"--cores": 1, "-n": 0}


def readme_commands() -> list[str]:
    """Every command the README gives: the lines of its ```bash blocks and its inline code spans
    that start with a program and have arguments (a lone `snakemake` is the word, not a command); in
    the README and the docs its reference parts moved to."""
    text = "\n".join(path.read_text() for path in [README, *MOVED])
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line.split(" #")[0] for b in blocks for line in b.splitlines() if not line.lstrip().startswith("#")]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = re.findall(r"`((?:[A-Z0-9_]+=\S+\s+)?(?:snakemake|python|pytest|pip|bash)\s+[^`]+)`", prose)
    parts = [" ".join(p.split()) for c in lines + spans for p in c.split("&&")]
    return list(dict.fromkeys(p for p in parts if p))


def test_the_readme_gives_the_commands_this_file_checks():
    cmds = readme_commands()
    assert "pip install -r envs/requirements.txt" in cmds and "snakemake --cores 2" in cmds  # the first screen
    assert "snakemake results/paper/tables/table8.md --cores 16" in cmds and len(cmds) >= 20, cmds


def snakemake_argv(cmd: str) -> list[str]:
    argv = shlex.split(cmd)[1:]
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
        elif a in NO_PLAN:
            skip = NO_PLAN[a]
        else:
            out.append(a)
    return out


#: what the README's placeholders stand for here
PLACEHOLDERS = {"<run>": "cifar10-resnet18-l2-sgd60", "<seed>": "3"}


def planned(cmds: list[str]) -> list[str]:
    """The README's snakemake commands that plan jobs (not a report, not an unlock), placeholders filled in."""
    cmds = [c for c in cmds if c.startswith("snakemake") and not re.search(r"--report|--unlock", c)]
    for key, value in PLACEHOLDERS.items():
        cmds = [c.replace(key, value) for c in cmds]
    return cmds


def test_every_readme_command_is_run_somewhere():
    """Each command is dry-run below, or run by the test or CI step RUN_ELSEWHERE names (which exists)."""
    cmds = readme_commands()
    here = {c for c in cmds if c.startswith("snakemake") and "--report" not in c}  # planned or unlocked below
    here |= {c for c in cmds if c.startswith(("pip install -r envs/requirements.txt", "L2OOD_", "pytest -m"))}
    missing = [c for c in cmds if c not in here and c not in RUN_ELSEWHERE]
    assert not missing, f"README commands no test runs: {missing}; run them in tests/test_readme.py or name the test"
    for where in RUN_ELSEWHERE.values():
        path, _, name = where.partition("::")
        assert (ROOT / path).is_file(), where
        if name:
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), where
    ci = (ROOT / ".ci/run").read_text()
    for cmd, where in RUN_ELSEWHERE.items():
        if where == ".ci/run":
            assert cmd in ci or cmd.endswith("bash .ci/run"), cmd  # (`pytest` ends CI's install-and-test line)


@pytest.mark.slow
def test_the_readme_snakemake_commands_plan(tmp_path):
    """Every target and option of the README's snakemake commands, in one dry run per option set; the
    first screen's Table 8 is 30 training jobs; the profile, the only_seeds subset and the one-run
    target plan as the README says."""
    cmds = planned(readme_commands())
    plain = [snakemake_argv(c) for c in cmds if not re.search(r"--workflow-profile|--config|results/runs/", c)]
    targets = [a for argv in plain for a in (argv or ["all"])]  # no target: the default one (rule all)
    assert all(not t.startswith("-") for t in targets), targets  # an option this test does not know
    proc = dry_run(*dict.fromkeys(targets))
    assert proc.returncode == 0, proc.text[-3000:]
    runs = {"paper_data", "paper", "results/paper/tables/table8.md", "results/paper/tables/table4.md"}
    assert runs <= set(targets), targets
    proc = dry_run("results/paper/tables/table8.md")
    assert proc.returncode == 0 and proc.jobs["train"] == 30, proc.text[-3000:]
    for c in cmds:
        if re.search(r"--workflow-profile|--config", c):
            proc = dry_run(*snakemake_argv(c))
            assert proc.returncode == 0, (c, proc.text[-3000:])
            assert proc.jobs["train"] >= 22, (c, proc.text[-2000:])  # 22 runs: at least one seed each
    one = [c for c in cmds if "results/runs/" in c]  # one run and seed, placeholders filled in
    assert one, cmds
    for c in one:
        proc = dry_run(*snakemake_argv(c))
        assert proc.returncode == 0 and proc.jobs["train"] == 1, proc.text[-3000:]


@pytest.mark.slow
def test_the_readme_unlock_command_runs():
    cmd = next(c for c in readme_commands() if "--unlock" in c)
    proc = subprocess.run(shlex.split(cmd), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Unlocked working directory" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_the_readme_pytest_commands_select_tests():
    """The marker expression and the paper-number command as written (the paper's path from this
    machine's layout where it is there; the command's placeholder path is the user's)."""
    cmds = readme_commands()
    fast = shlex.split(next(c for c in cmds if c.startswith("pytest -m")))
    proc = subprocess.run([sys.executable, "-m", *fast, "--collect-only", "-q"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    n = re.search(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", proc.stdout)
    assert proc.returncode == 0 and n and int(n[1]) > 300 and int(n[3]) > 20, proc.stdout[-1000:]
    paper = ROOT.parent / "shared/paper/paper.md"
    cmd = next(c for c in cmds if c.startswith("L2OOD_PAPER_MD="))
    var, *argv = shlex.split(cmd)
    env = {**os.environ, var.split("=")[0]: str(paper)}
    proc = subprocess.run([sys.executable, "-m", *argv, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if not paper.is_file() and os.environ.get("CI") != "true":
        pytest.skip(f"the paper's text is not at {paper}: the command's own run is left to CI")
    assert proc.returncode == 0 and " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_the_demo_requirements_are_inside_the_test_requirements():
    """`pip install -r envs/requirements.txt` (the demo's line) is what the test line installs first."""
    cmds = readme_commands()
    assert "pip install -r envs/requirements.txt" in cmds
    test_reqs = (ROOT / "envs/requirements-test.txt").read_text().splitlines()
    assert "-r requirements.txt" in test_reqs and "-e ." in (ROOT / "envs/requirements.txt").read_text().splitlines()


def test_the_readme_test_lines_are_the_fast_subset_and_what_ci_runs():
    """The first screen's two test lines: the fast subset, and the whole suite exactly as .ci/run runs it."""
    block = re.search(r"```bash\n(pip install -r envs/requirements-test.txt.*?)```", README.read_text(), re.S)[1]
    lines = [line.split(" #")[0].strip() for line in block.splitlines()]
    assert lines[0] == 'pip install -r envs/requirements-test.txt && pytest -m "not slow and not slurm"', lines
    assert lines[1] == "pip install -r envs/requirements-test.txt && pytest", lines
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if not line.startswith("#")]
    assert lines[1] in ci, ci


def test_every_link_of_the_readme_and_docs_points_at_a_file_and_heading_that_exist():
    """A section moved to docs/ leaves no link to where it was."""

    def anchors(path):
        heads = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}

    bad = []
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
                bad.append(f"{path.relative_to(ROOT)}: {target}")
    assert not bad, bad
