from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.tables import render_table  # noqa: E402

table = render_table(snakemake.params.spec)  # noqa: F821
table.tidy.to_csv(snakemake.output.csv, index=False)  # noqa: F821
for path, text in ((snakemake.output.md, table.markdown), (snakemake.output.tex, table.latex)):  # noqa: F821
    with open(path, "w") as f:
        f.write(text)
log.info("table %s: %d rows", snakemake.wildcards.table, len(table.tidy))  # noqa: F821
