import pandas as pd
from _common import setup

log = setup(snakemake)  # noqa: F821

df = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)  # noqa: F821
df.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("%d rows from %d run/seed files", len(df), len(snakemake.input))  # noqa: F821
