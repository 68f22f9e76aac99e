# evaluate: one run and seed's outputs -> tidy metrics (one row per OoD set x score).
# study_metrics: every run and seed of a study -> results/{study}/metrics.csv.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        f"{RUN_DIR}/{METRICS}",
    log:
        "logs/evaluate/{run}/seed{seed}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["evaluate"],
    script:
        "../scripts/evaluate.py"


rule study_metrics:
    input:
        study_metrics_inputs,
    output:
        report(
            study_file("{study}", METRICS),
            caption="../report/metrics.rst",
            category="Metrics",
        ),
    log:
        "logs/study_metrics/{study}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["study_metrics"],
    script:
        "../scripts/study_metrics.py"
