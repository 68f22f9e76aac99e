# import_weights: a run with `weights:` (docs/own.md) is not trained: each seed's external checkpoint
# becomes the run's model.pt and config.yaml (its SHA-256 recorded), which infer, features and
# everything after read as they read a trained model. The train rule makes the other runs' models.
# release: a run's checkpoints to share, results/release/{run}.zip (l2ood.release).


rule import_weights:
    input:
        weights=weights_input,
    output:
        model=f"{RUN_DIR}/{TRAIN_OUTPUTS['model']}",
        config=f"{RUN_DIR}/{TRAIN_OUTPUTS['config']}",
    log:
        "logs/import_weights/{run}/seed{seed}.log",
    wildcard_constraints:
        run=runs_pattern(external=True),
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["import_weights"],
    script:
        "../scripts/import_weights.py"


rule release:
    input:
        unpack(release_inputs),
    output:
        RELEASE,
    log:
        "logs/release/{run}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["release"],
    script:
        "../scripts/release.py"
