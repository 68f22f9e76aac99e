import pandas as pd
from _common import setup

log = setup(snakemake)

df = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)
df.to_csv(snakemake.output[0], index=False)
log.info("%d rows from %d run/seed files", len(df), len(snakemake.input))
