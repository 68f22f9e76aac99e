# prepare: raw files (the download's MD5SUMS record; the archives beside it) or other prepared
# splits (resized, Gaussian, scrambled sets) or nothing (digits) -> resources/prepared/{dataset}/{split}.npz
# and its record {split}.json (its MD5 and the values that made it: l2ood.data.write_record). The
# jobs reading a split name it ancient() and its record as is (common.smk, read_prepared): a touch
# reruns nothing, a changed data set reruns them. A split deleted by hand (the fix for a truncated
# one) is made again before the plan, from its record (rules/ondisk.smk): what read it is kept.


rule prepare:
    input:
        unpack(prepare_inputs),
    output:
        split=prepared("{dataset}", "{split}"),
        record=prepared_record("{dataset}", "{split}"),
    log:
        "logs/prepare/{dataset}/{split}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["prepare"],
    script:
        "../scripts/prepare.py"
