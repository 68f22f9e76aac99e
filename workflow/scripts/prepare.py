from _common import setup

log = setup(snakemake)

from l2ood import sources  # noqa: E402
from l2ood.data import prepare, write_record  # noqa: E402

spec = snakemake.params.spec
log.info("preparing %s/%s (%s)", snakemake.wildcards.dataset, snakemake.wildcards.split, spec["kind"])
if spec["kind"] in sources.RAW_KINDS:  # the input is the download's MD5SUMS; the archives lie beside it
    inputs = sources.raw_files(spec["kind"], snakemake.config["download"]["root"])
else:
    inputs = [snakemake.input.split] if "split" in snakemake.input.keys() else []  # a derived set's source
prepare(spec, snakemake.wildcards.split, snakemake.output.split, inputs=inputs, md5=snakemake.params.md5)
# the split's one record: its MD5 and its params, which l2ood.ondisk.stale_params compares (no .params.json)
write_record(snakemake.output.split, spec, snakemake.params.md5)
