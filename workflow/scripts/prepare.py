from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.data import prepare  # noqa: E402

spec = snakemake.params.spec  # noqa: F821
log.info("preparing %s/%s (%s)", snakemake.wildcards.dataset, snakemake.wildcards.split, spec["kind"])  # noqa: F821
prepare(
    spec,
    snakemake.wildcards.split,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    inputs=list(snakemake.input),  # noqa: F821
    md5=snakemake.params.md5,  # noqa: F821
)
