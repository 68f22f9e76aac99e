from _common import setup

log = setup(snakemake)

from l2ood.tables import render_table  # noqa: E402

table = render_table(snakemake.params.spec)
table.tidy.to_csv(snakemake.output.csv, index=False)
for path, text in ((snakemake.output.md, table.markdown), (snakemake.output.tex, table.latex)):
    with open(path, "w") as f:
        f.write(text)
log.info("table %s: %d rows", snakemake.wildcards.table, len(table.tidy))
