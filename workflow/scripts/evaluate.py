from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.evaluate import evaluate_run  # noqa: E402

meta = snakemake.params.meta  # noqa: F821
ood = dict(zip(meta["ood"], snakemake.input.ood))  # noqa: F821
df = evaluate_run(snakemake.input.id, ood, meta)  # noqa: F821
df.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("%d metric rows; ID accuracy %.4f", len(df), df["accuracy"].iloc[0])
