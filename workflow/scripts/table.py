from _common import setup

log = setup(snakemake)

from l2ood.tables import render_table  # noqa: E402

table = render_table(snakemake.params.spec)
table.tidy.to_csv(snakemake.output.csv, index=False)
outputs = snakemake.output
for path, text in ((outputs.md, table.markdown), (outputs.tex, table.latex), (outputs.html, table.html)):
    with open(path, "w") as f:
        f.write(text)
log.info("table %s: %d rows", snakemake.wildcards.table, len(table.tidy))
