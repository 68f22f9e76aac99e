from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.evaluate import evaluate_run  # noqa: E402

meta = snakemake.params.meta  # noqa: F821
outputs = snakemake.input.outputs  # noqa: F821
ood = {name: f"{outputs}/{name}.npz" for name in meta["ood"]}
df = evaluate_run(f"{outputs}/{meta['id']}.npz", ood, meta)
df.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("%d metric rows; ID accuracy %.4f", len(df), df["accuracy"].iloc[0])
