# train: prepared training split -> model, history and probes of one run and seed.
# infer: model + prepared test split -> per-image feature norms and logits.


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
        f"{RUN_DIR}/outputs/{{dataset}}.npz",
    log:
        "logs/infer/{run}/seed{seed}/{dataset}.log",
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["infer"]
    script:
        "../scripts/infer.py"
