from _common import setup

log = setup(snakemake)

from l2ood.config import study_item  # noqa: E402
from l2ood.figures import render_figure  # noqa: E402

# resolved from the config as the rule resolved it; its params hold only the digest (l2ood.config.spec_digest)
fig = render_figure(study_item(snakemake.config, snakemake.wildcards.study, "figures", snakemake.wildcards.figure))
for path in (snakemake.output.png, snakemake.output.pdf):
    fig.savefig(path, dpi=150, bbox_inches="tight")
log.info("figure %s written", snakemake.wildcards.figure)
