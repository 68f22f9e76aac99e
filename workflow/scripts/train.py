import os

import yaml
from _common import setup

log = setup(snakemake)

from l2ood.data import load_split  # noqa: E402
from l2ood.train import ENGINE_DEFAULTS, fit  # noqa: E402

cfg, out = snakemake.params.cfg, snakemake.output
seed = int(snakemake.wildcards.seed)
log.info("run %s seed %d; CUDA_VISIBLE_DEVICES=%s", cfg["run"], seed, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
images, labels = load_split(snakemake.input[0])
with open(out.config, "w") as f:
    engine = {**ENGINE_DEFAULTS, **snakemake.config["engine"]}  # recorded in full: config.yaml sets only changes
    yaml.safe_dump({**cfg, "seed": seed, "engine": engine}, f, sort_keys=False)
fit(cfg, images, labels, os.path.dirname(out.model), seed, engine=snakemake.config["engine"])
