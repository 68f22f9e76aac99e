# prepare: raw files (or nothing, for generated sets) -> resources/prepared/{dataset}/{split}.npz


rule prepare:
    input:
        prepare_inputs,
    output:
        "resources/prepared/{dataset}/{split}.npz",
    log:
        "logs/prepare/{dataset}/{split}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        spec=prepare_params,
        raw_root=config["download"]["root"],
    script:
        "../scripts/prepare.py"
