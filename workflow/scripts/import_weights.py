"""The run's model.pt and config.yaml from an external checkpoint (a run with `weights:`): no training."""

from pathlib import Path

import yaml
from _common import record_params, setup

log = setup(snakemake)

from l2ood.fileio import atomic_path  # noqa: E402
from l2ood.weights import import_weights  # noqa: E402

cfg = snakemake.params.cfg
seed = int(snakemake.wildcards.seed)
source = import_weights(snakemake.input.weights, cfg, seed, snakemake.output.model)
log.info("run %s seed %d: %s (sha256 %s, %s key layout)", cfg["run"], seed, source["path"], source["sha256"], source["layout"])
with atomic_path(Path(snakemake.output.config)) as tmp:
    tmp.write_text(yaml.safe_dump({**cfg, "seed": seed, "weights_file": source}, sort_keys=False))
record_params(snakemake)
