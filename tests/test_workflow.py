"""The workflow end to end on the tiny demo config, in a temporary copy of the repository.

Checks the contents of the table and figures (not only that they exist), the config schema's
errors, `snakemake --lint`, `snakefmt --check`, the report, and that a changed output reruns
only what depends on it.
"""

import html
import json
import re
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from workflow_files import built_copy, copy_workflow, job_stats, snakemake

pytestmark = pytest.mark.slow  # every test here runs Snakemake: the demo, a dry run or a lint

TINY = ["--configfile", "tests/config/tiny.yaml"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_built):
    return built_copy(tmp_path_factory, tiny_built, "demo")  # `snakemake --cores 2` with TINY, terminal.txt


def test_lint_and_format_are_clean():
    lint = subprocess.run(["snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run(["snakefmt", "--check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("runs:\n  demo-smallcnn-l2:\n    epoch: 3\n", r"runs\.demo-smallcnn-l2: unknown key\(s\) \['epoch'\]"),
        ("recipes:\n  demo-sgd60:\n    epochs: sixty\n", r"recipes\.demo-sgd60\.epochs: 'sixty' is not of type 'integer'"),
        ("bogus: 1\n", r"\(top level\): unknown key\(s\) \['bogus'\]"),
        ("runs:\n  demo-smallcnn-l2:\n    recipe: sgd-missing\n", r"runs\.demo-smallcnn-l2\.recipe: unknown recipe 'sgd-missing'"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, yaml_text, message):
    work = copy_workflow(tmp_path)
    (work / "bad.yaml").write_text(yaml_text)
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not (work / "results").exists()


def test_demo_table_content(demo):
    md = (demo / "results/demo/tables/demo.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| SmallCNN")]
    assert len(rows) == 3  # feature norm, MSP, MaxLogit
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == 1 + 2 * 3 + 2  # model, 3 OoD sets x (No L2, L2), accuracy x 2
    for cell in cells[1:7]:  # "AUROC ± std / FPR95 ± std", a dagger after an AUROC below 50
        m = re.fullmatch(r"(\d+\.\d+)(†?) ± (\d+\.\d+) / (\d+\.\d+) ± (\d+\.\d+)", cell)
        assert m, cell
        auroc, fpr = float(m[1]), float(m[4])
        assert 0 <= auroc <= 100 and 0 <= fpr <= 100 and (m[2] == "†") == (auroc < 50)
    tidy = pd.read_csv(demo / "results/demo/tables/demo.csv")
    # one row per printed number: 3 scores x 3 OoD sets x 2 heads x (AUROC, FPR95) + 3 x 2 accuracies
    assert len(tidy) == 3 * 3 * 2 * 2 + 3 * 2
    assert set(tidy.metric) == {"auroc", "fpr95", "accuracy"} and (tidy.n_seeds == 2).all()
    assert set(tidy.column) >= {"digits-near/nol2", "digits-near/l2", "accuracy/nol2", "accuracy/l2"}
    assert np.isfinite(tidy[["value", "mean", "std", "min", "max"]].to_numpy()).all()
    assert tidy["value"].between(0, 100).all()
    # the markdown prints the CSV's numbers
    from l2ood.stats import pct_std
    from l2ood.tables import BELOW_CHANCE

    near_l2 = tidy.query("row == 'SmallCNN (Feature norm)' and column == 'digits-near/l2'").set_index("metric")
    a, f = (pct_std(near_l2.loc[k, "value"] / 100, near_l2.loc[k, "std"] / 100) for k in ("auroc", "fpr95"))
    if near_l2.loc["auroc", "value"] < 50:
        a = a.replace(" ± ", f"{BELOW_CHANCE} ± ")
    assert cells[2] == f"{a} / {f}"
    tex = (demo / "results/demo/tables/demo.tex").read_text()
    assert r"\begin{tabular}" in tex and tex.count(r"\\") >= 5


def test_study_metrics_are_tidy(demo):
    df = pd.read_csv(demo / "results/demo/metrics.csv")
    assert len(df) == 2 * 2 * 3 * 8  # runs x seeds x OoD sets x scores (7 + scaled softmax)
    assert set(df.score) == {"feature_norm", "logit_norm_raw", "logit_norm_head", "max_logit_raw", "max_logit_head",
                             "msp", "energy", "scaled_msp"}  # fmt: skip
    assert (df.query("score == 'scaled_msp'").scale > 0).all() and df.query("score != 'scaled_msp'").scale.isna().all()
    assert df[["auroc", "fpr95", "fpr95_ood_positive", "aupr_in", "aupr_out", "accuracy"]].apply(
        lambda c: c.between(0, 1).all()
    ).all()


def test_demo_detectors_table(demo):
    from l2ood.detectors import DETECTORS

    md = (demo / "results/demo/tables/detectors.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    body = [r for r in rows if r[0] != "Detector"]
    assert len(body) == 2 * len(DETECTORS)  # AUROC and FPR95 sections
    assert all(len(r) == 2 + 3 * 3 for r in body)  # detector, family, 3 OoD sets x (No L2, L2, difference)
    assert all(re.match(r"^\d{1,3}\.\d{1,2} ± \d{1,3}\.\d{1,2}$", c) for r in body for c in (r[2], r[3])), body
    assert {r[1] for r in body} == {cls.family for cls in DETECTORS.values()}
    tidy = pd.read_csv(demo / "results/demo/tables/detectors.csv")
    diffs = tidy[tidy.stat == "diff"]
    assert len(diffs) == 2 * len(DETECTORS) * 3
    # Welch's interval brackets the difference; where neither head's seeds vary there is none, and no star
    ci = diffs.dropna(subset=["low"])
    assert len(ci) > len(diffs) / 2 and (ci.low <= ci.value).all() and (ci.value <= ci.high).all()
    none = diffs[diffs.low.isna()]
    assert none.high.isna().all() and not none.excludes_zero.any()
    # features only for the demo's runs, float16
    with np.load(demo / "results/runs/demo-smallcnn-l2/seed0/features/digits-id.train.npz") as z:
        assert z["features"].dtype == np.float16 and len(z["labels"]) == len(z["features"])


@pytest.mark.parametrize("name", ["norm_distributions", "accuracy_vs_norm", "norm_variability", "detectors"])
def test_demo_figures_render(demo, name):
    png = demo / f"results/demo/figures/{name}.png"
    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert (demo / f"results/demo/figures/{name}.pdf").read_bytes().startswith(b"%PDF")


def test_training_log_shows_progress(demo):
    log = (demo / "logs/train/demo-smallcnn-l2/seed0.log").read_text()
    assert len(re.findall(r"epoch \d+/3 +loss [\d.]+ +acc [\d.]+ .* img/s", log)) == 3
    assert (demo / "benchmarks/train/demo-smallcnn-l2/seed0.tsv").exists()


def test_terminal_is_short_and_every_progress_line_names_run_and_seed(demo):
    lines = (demo / "terminal.txt").read_text().splitlines()
    assert len(lines) <= 60, "\n".join(lines)  # 23 jobs; the full demo's 29 print about 40 lines
    assert "Shell command" not in "\n".join(lines)
    assert sum(line.startswith("Training 4 jobs, 12 epochs: demo-smallcnn-") for line in lines) == 1
    progress = [line for line in lines if re.search(r"epoch \d+/\d+", line)]
    assert progress and all(re.search(r"demo-smallcnn-(l2|nol2) seed [01]: epoch \d+/3 .* ETA \d+:\d\d:\d\d$", line)
                            for line in progress), progress  # fmt: skip
    assert len(progress) == 4 * 2  # per job the first and the last epoch (the log file has all three)


def test_the_last_lines_name_the_tables_figures_and_report_command(demo):
    """terminal.smk: a step count up to the last job (every tenth), then where the results are and the report
    command, before Snakemake's own last two lines (the log's path, the elapsed time)."""
    lines = (demo / "terminal.txt").read_text().splitlines()
    end = "\n".join(lines[-4:])
    assert "results/demo/tables/" in end and "results/demo/figures/" in end, end
    assert "snakemake --report results/demo/report.html" in end, end
    counts = [m for m in (re.search(r"(\d+) of (\d+) steps", line) for line in lines) if m]
    assert counts and counts[-1][1] == counts[-1][2], counts  # the count is seen to the last job
    assert 5 <= len(counts) <= 11, counts  # every tenth: progress without burying the training lines
    last_training = max(i for i, line in enumerate(lines) if re.search(r"epoch \d+/\d+", line))
    assert sum(bool(re.search(r"\d+ of \d+ steps", line)) for line in lines[last_training:]) >= 2


def test_report_home_page_scrolls_to_its_title_at_1400x900(demo, tmp_path):
    """The home page is taller than a 1400 x 900 window: scrolled to the top, its title is in view (Snakemake's
    own layout centred it vertically and left the title and introduction above the reachable top)."""
    import browser

    browser.chromium()  # skips here before the report is built, where there is no browser
    report = demo / "results/demo/report.html"
    if not report.exists():  # (test_report_has_a_description_and_the_tables_inline builds the same)
        snakemake(demo, *TINY, "--report", "results/demo/report.html")
    layout = browser.home_page_layout(report, tmp_path)
    assert layout["found"] and layout["title"].startswith("L2-normalized features"), layout
    assert layout["scrollHeight"] > layout["clientHeight"], layout  # taller than the window: the case at issue
    assert layout["contentTop"] >= 0 and 0 <= layout["titleTop"] < 100, layout


def html_text(text):
    """Text as a reader sees it: tags dropped, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_report_has_a_description_and_the_tables_inline(demo):
    snakemake(demo, *TINY, "--report", "results/demo/report.html")
    html = (demo / "results/demo/report.html").read_text(errors="replace")
    for name in ("norm_distributions", "accuracy_vs_norm", "norm_variability", "demo.csv", "demo.html"):
        assert name in html
    assert "laid out like the paper" in html  # a caption from config.yaml
    assert "What the study shows" in html and "How to read the tables" in html  # the description page
    # the table as printed is on the home page in plain text (results are embedded base64): every
    # number of the markdown table is in the HTML
    md = (demo / "results/demo/tables/demo.md").read_text()
    numbers = re.findall(r"\d+\.\d+", "\n".join(line for line in md.splitlines() if line.startswith("| SmallCNN")))
    assert len(numbers) == 3 * (6 * 4 + 2 * 2)  # 3 scores x (6 cells x 2 means ± 2 stds + 2 accuracies ± std)
    assert all(n in html for n in numbers), [n for n in numbers if n not in html]
    # "Job parameters" of each table and figure: one short line (the spec's digest), not the spec
    shown = json.loads(re.search(r"var results = (\{.*?\});\n", html, re.S).group(1))
    params = {k: v["job_properties"]["params"] for k, v in shown.items() if "/tables/" in k or "/figures/" in k}
    # and each caption is its table's or figure's caption from config.yaml (the CSV's has its own text)
    study = yaml.safe_load((demo / "config.yaml").read_text())["studies"]["demo"]
    for path, result in shown.items():
        group, name, ext = Path(path).parts[-2], Path(path).stem, Path(path).suffix
        if group in ("tables", "figures") and ext != ".csv":
            assert html_text(study[group][name]["caption"])[:60] in html_text(result["caption"]), path
    assert len(params) >= 8 and all(re.fullmatch(r"spec=[0-9a-f]{16}, code=[0-9a-f]{16}", p) for p in params.values()), params


def test_nothing_to_do_after_a_complete_run(demo):
    proc = snakemake(demo, "-n", *TINY)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_partial_rebuild_after_one_output_changes(demo):
    model = demo / "results/runs/demo-smallcnn-l2/seed1/model.pt"
    ckpt = torch.load(model, weights_only=True)
    ckpt["state_dict"]["fc.bias"] += 1.0  # a changed training output: content, not only mtime
    torch.save(ckpt, model)
    proc = snakemake(demo, "-n", *TINY)
    jobs = job_stats(proc.stdout + proc.stderr)
    # that run and seed's inference and metrics, then the study metrics and the table; no figure of
    # norms (they read seed 0's outputs, accuracy_vs_norm too unless `pooled`, or the training
    # histories, which did not change); the detectors' features, metrics, table and figure of that run
    assert jobs == {"infer": 1, "evaluate": 1, "study_metrics": 1, "features": 1, "detectors": 1, "table": 2,
                    "figure": 1, "all": 1}, jobs  # fmt: skip
