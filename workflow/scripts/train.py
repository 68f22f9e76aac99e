import os
import signal
import sys
from pathlib import Path

import yaml
from _common import claim_gpu, setup

log = setup(snakemake)
claim_gpu(snakemake)  # first: before torch starts CUDA

from l2ood.data import load_split  # noqa: E402
from l2ood.layout import TRAIN_OUTPUTS  # noqa: E402
from l2ood.engine import ENGINE_DEFAULTS  # noqa: E402
from l2ood.train import TrainingInterrupted, fit  # noqa: E402

cfg = snakemake.params.cfg
seed = int(snakemake.wildcards.seed)
run_dir = Path(snakemake.output.model).parent  # (the rule declares run_dir / TRAIN_OUTPUTS[role])
log.info("run %s seed %d; CUDA_VISIBLE_DEVICES=%s", cfg["run"], seed, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
images, labels = load_split(snakemake.input[0])
with open(run_dir / TRAIN_OUTPUTS["config"], "w") as f:
    engine = {**ENGINE_DEFAULTS, **snakemake.config["engine"]}  # recorded in full: config.yaml sets only changes
    yaml.safe_dump({**cfg, "seed": seed, "engine": engine}, f, sort_keys=False)
try:
    fit(cfg, images, labels, run_dir, seed, engine=snakemake.config["engine"])
except TrainingInterrupted as stop:  # SIGTERM: the checkpoint is written; the retry or requeue resumes it
    log.warning("%s", stop)
    sys.exit(128 + signal.SIGTERM)
