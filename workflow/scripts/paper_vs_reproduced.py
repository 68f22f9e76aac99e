from pathlib import Path

import pandas as pd
from _common import setup

log = setup(snakemake)

from l2ood.paper import compare, compare_markdown, load_paper_numbers, summaries  # noqa: E402

frames = [pd.read_csv(p).assign(table=Path(p).stem) for p in snakemake.input.tables]
# L2 - No L2 differences (a table's `diff: true`) go beyond the paper: it prints none
frames = [f[f["stat"] != "diff"] if "stat" in f else f for f in frames]
# stat: mean, min or max (Table 3); only a mean is t-tested against the paper's number
columns = ["table", "row", "column", "metric", "value", "std", "n_seeds", "stat"]
reproduced = pd.concat(frames, ignore_index=True)[columns]
df = compare(load_paper_numbers(snakemake.input.numbers), reproduced)
df.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.md).write_text(compare_markdown(df))
log.info("%d paper numbers, %d reproduced", len(df), df["reproduced"].notna().sum())
for line in summaries(df).values():
    log.info("%s", line)
