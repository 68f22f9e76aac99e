"""results/release/{run}.zip: each seed's model, config and metrics, SHA-256 sums and a model card."""

from pathlib import Path

from _common import record_params, setup

log = setup(snakemake)

from l2ood.release import build_release  # noqa: E402

seeds = snakemake.params.seeds
dirs = {seed: Path(model).parent for seed, model in zip(seeds, snakemake.input.models)}
build_release(snakemake.wildcards.run, dirs, snakemake.output[0])
log.info("%s: %d seeds -> %s", snakemake.wildcards.run, len(seeds), snakemake.output[0])
record_params(snakemake)
