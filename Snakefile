# L2-normalized features for OoD detection (Haas, Yolland, Rabus; TMLR): the reproduction.
#
#   snakemake --cores 2                       the demo study (digits, CPU, minutes)
#   snakemake paper --workflow-profile ...    the whole paper
#   snakemake results/paper/tables/table4.md  one table and exactly what it needs
#
# download -> prepare -> train -> infer -> evaluate -> tables / figures -> report

import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# the l2ood library, found from this file's folder (not the working one): works when used as a module too
sys.path.insert(0, str(Path(workflow.current_basedir) / "workflow"))


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/detectors.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/terminal.smk"
include: "workflow/rules/ondisk.smk"  # last: it reads the rules' params (JOB_PARAMS) and checks the disk


# The report's home page: what the study shows and how to read it (`snakemake --report report.html`).
report: "workflow/report/workflow.rst"


localrules:
    all,
    study_metrics,
    table,
    figure,
    paper_vs_reproduced,
    release,


rule all:
    default_target: True
    input:
        study_targets(config["default_study"]),


# One target rule per study: `snakemake demo`, `snakemake paper`; and one for the prepared data
# it reads, downloads included: `snakemake paper_data` (on a cluster's login node, before the rest).
for _study in config["studies"]:

    rule:
        name:
            _study
        input:
            study_targets(_study),
        localrule: True

    rule:
        name:
            f"{_study}_data"
        input:
            study_data(_study),
        localrule: True
