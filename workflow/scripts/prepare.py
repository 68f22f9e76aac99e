from _common import setup

log = setup(snakemake)

from l2ood import sources  # noqa: E402
from l2ood.data import prepare  # noqa: E402

spec = snakemake.params.spec
log.info("preparing %s/%s (%s)", snakemake.wildcards.dataset, snakemake.wildcards.split, spec["kind"])
if spec["kind"] in sources.RAW_KINDS:  # the input is the download's MD5SUMS; the archives lie beside it
    inputs = sources.raw_files(spec["kind"], snakemake.config["download"]["root"])
else:
    inputs = list(snakemake.input)
prepare(spec, snakemake.wildcards.split, snakemake.output[0], inputs=inputs, md5=snakemake.params.md5)
