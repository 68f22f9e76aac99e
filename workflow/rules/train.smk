# train: prepared training split -> the files of l2ood.layout.TRAIN_OUTPUTS (model, history,
# collapse measures, probes, the resolved config) of one run and seed.
# infer: model + the run's test sets -> outputs/{dataset}.npz, per image feature norm and logits.
# One job per run and seed (not per data set): the model loads once, and a cluster queues
# 210 GPU jobs for the paper instead of about 1,000.


rule train:
    input:
        train_input,
    output:
        **{role: f"{RUN_DIR}/{name}" for role, name in TRAIN_OUTPUTS.items()},
    log:
        "logs/train/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{run}/seed{seed}.tsv"
    wildcard_constraints:
        run=runs_pattern(external=False),  # a run with `weights:` is imported (rules/external.smk)
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=run_gpus,
        runtime=train_runtime,
    params:
        **JOB_PARAMS["train"],
    script:
        "../scripts/train.py"


rule infer:
    input:
        unpack(infer_inputs),
    output:
        directory(f"{RUN_DIR}/{OUTPUTS_DIR}"),
    log:
        "logs/infer/{run}/seed{seed}.log",
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["infer"]
    resources:
        gpu=run_gpus,  # the run's GPU request, as training: ~76k test images through the model
    params:
        **JOB_PARAMS["infer"],
    script:
        "../scripts/infer.py"
