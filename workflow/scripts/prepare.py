from _common import record_params, setup

log = setup(snakemake)

from l2ood.data import prepare  # noqa: E402

spec = snakemake.params.spec
log.info("preparing %s/%s (%s)", snakemake.wildcards.dataset, snakemake.wildcards.split, spec["kind"])
prepare(
    spec,
    snakemake.wildcards.split,
    snakemake.output[0],
    inputs=list(snakemake.input),
    md5=snakemake.params.md5,
)
record_params(snakemake)
