from _common import setup

log = setup(snakemake)

from l2ood.figures import render_figure  # noqa: E402

fig = render_figure(snakemake.params.spec)
for path in (snakemake.output.png, snakemake.output.pdf):
    fig.savefig(path, dpi=150, bbox_inches="tight")
log.info("figure %s written", snakemake.wildcards.figure)
