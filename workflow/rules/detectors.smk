# features: model + the run's training split and test sets -> features/{dataset}.{split}.npz (float16
# penultimate features, eval mode, no augmentation), features/head.npz (W, b) and each test set's ODIN
# scores over a grid of (T, eps), features/{dataset}.test.odin.npz (l2ood.odin). One job per run and
# seed, as infer; only for the runs a detector table or figure names (common.smk, l2ood.config).
# detectors: the stored features -> detectors.csv, every detector x OoD set x logits variant, on CPU:
# a new detector or hyperparameter (config `detectors:`) reruns this step, never the GPU job.


rule features:
    input:
        unpack(features_inputs),
    output:
        directory(f"{RUN_DIR}/{FEATURES_DIR}"),
    log:
        "logs/features/{run}/seed{seed}.log",
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["infer"]
    resources:
        gpu=run_gpus,  # the run's GPU request, as infer
    params:
        **JOB_PARAMS["features"],
    script:
        "../scripts/features.py"


rule detectors:
    input:
        unpack(detectors_inputs),
    output:
        f"{RUN_DIR}/{DETECTOR_METRICS}",
    log:
        "logs/detectors/{run}/seed{seed}.log",
    conda:
        "../../envs/l2ood.yaml"
    threads: config["threads"]["detectors"]
    params:
        **JOB_PARAMS["detectors"],
    script:
        "../scripts/detectors.py"
