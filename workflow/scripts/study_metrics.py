from _common import record_params, setup

log = setup(snakemake)

from l2ood.results import load_seed_files  # noqa: E402

df = load_seed_files(list(snakemake.input))  # each checked (l2ood.results)
df.to_csv(snakemake.output[0], index=False)
log.info("%d rows from %d run/seed files", len(df), len(snakemake.input))
record_params(snakemake)
