from pathlib import Path

from _common import record_params, setup

log = setup(snakemake)

from l2ood.paper import compare, compare_markdown, load_paper_numbers, summaries  # noqa: E402
from l2ood.results import load_study_tables  # noqa: E402

frames = load_study_tables(snakemake.input.tables)  # each checked (l2ood.results)
# L2 - No L2 differences (a table's `diff: true`) go beyond the paper: it prints none
frames = frames[frames["stat"] != "diff"] if "stat" in frames else frames
# stat: mean, min or max (Table 3); only a mean is t-tested against the paper's number
columns = ["table", "row", "column", "metric", "value", "std", "n_seeds", "stat"]
reproduced = frames[columns]
df = compare(load_paper_numbers(snakemake.input.numbers), reproduced)
df.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.md).write_text(compare_markdown(df))
log.info("%d paper numbers, %d reproduced", len(df), df["reproduced"].notna().sum())
for line in summaries(df).values():
    log.info("%s", line)
record_params(snakemake)
