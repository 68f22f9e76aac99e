import os
from pathlib import Path

import yaml
from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.data import load_split  # noqa: E402
from l2ood.layout import TRAIN_OUTPUTS  # noqa: E402
from l2ood.train import fit  # noqa: E402

cfg = snakemake.params.cfg  # noqa: F821
seed = int(snakemake.wildcards.seed)  # noqa: F821
run_dir = Path(snakemake.output.model).parent  # noqa: F821  (the rule declares run_dir / TRAIN_OUTPUTS[role])
log.info("run %s seed %d; CUDA_VISIBLE_DEVICES=%s", cfg["run"], seed, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
images, labels = load_split(snakemake.input[0])  # noqa: F821
with open(run_dir / TRAIN_OUTPUTS["config"], "w") as f:
    yaml.safe_dump({**cfg, "seed": seed, "engine": snakemake.config["engine"]}, f, sort_keys=False)  # noqa: F821
fit(cfg, images, labels, run_dir, seed, engine=snakemake.config["engine"])  # noqa: F821
