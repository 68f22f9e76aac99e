from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.figures import render_figure  # noqa: E402

fig = render_figure(snakemake.params.spec)  # noqa: F821
for path in (snakemake.output.png, snakemake.output.pdf):  # noqa: F821
    fig.savefig(path, dpi=150, bbox_inches="tight")
log.info("figure %s written", snakemake.wildcards.figure)  # noqa: F821
