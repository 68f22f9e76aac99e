from _common import record_params, setup

log = setup(snakemake)

from l2ood.config import study_item  # noqa: E402
from l2ood.figures import render_figure  # noqa: E402

# resolved from the config as the rule resolved it; its params hold only the digest (l2ood.config.spec_digest)
spec = study_item(snakemake.config, snakemake.wildcards.study, "figures", snakemake.wildcards.figure)
fig = render_figure(spec)
for path in (snakemake.output.png, snakemake.output.pdf):
    fig.savefig(path, dpi=150, bbox_inches="tight")
log.info("figure %s written", snakemake.wildcards.figure)
record_params(snakemake, resolved=spec)
