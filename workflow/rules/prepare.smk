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
        md5=prepare_md5,
    script:
        "../scripts/prepare.py"
