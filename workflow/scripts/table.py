from _common import record_params, setup

log = setup(snakemake)

from l2ood.config import study_item  # noqa: E402
from l2ood.tables import render_table  # noqa: E402

# resolved from the config as the rule resolved it; its params hold only the digest (l2ood.config.spec_digest)
spec = study_item(snakemake.config, snakemake.wildcards.study, "tables", snakemake.wildcards.table)
table = render_table(spec)
table.tidy.to_csv(snakemake.output.csv, index=False)
outputs = snakemake.output
for path, text in ((outputs.md, table.markdown), (outputs.tex, table.latex), (outputs.html, table.html)):
    with open(path, "w") as f:
        f.write(text)
log.info("table %s: %d rows", snakemake.wildcards.table, len(table.tidy))
record_params(snakemake, resolved=spec)
