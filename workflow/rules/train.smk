# train: prepared training split -> model, history and probes of one run and seed.
# infer: model + the run's test sets -> outputs/{dataset}.npz, per image feature norm and logits.
# One job per run and seed (not per data set): the model loads once, and a cluster queues
# 210 GPU jobs for the paper instead of about 1,000.


rule train:
    input:
        train_input,
    output:
        model=f"{RUN_DIR}/model.pt",
        history=f"{RUN_DIR}/history.csv",
        collapse=f"{RUN_DIR}/collapse.csv",
        probes=f"{RUN_DIR}/probes.npz",
        config=f"{RUN_DIR}/config.yaml",
    log:
        "logs/train/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{run}/seed{seed}.tsv"
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=train_gpus,
        runtime=train_runtime,
    params:
        cfg=train_params,
    script:
        "../scripts/train.py"


rule infer:
    input:
        unpack(infer_inputs),
    output:
        directory(f"{RUN_DIR}/outputs"),
    log:
        "logs/infer/{run}/seed{seed}.log",
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["infer"]
    params:
        datasets=infer_datasets,
    script:
        "../scripts/infer.py"
