# prepare: raw files (the download's MD5SUMS record; the archives beside it) or other prepared
# splits (resized, Gaussian, scrambled sets) or nothing (digits) -> resources/prepared/{dataset}/{split}.npz


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
