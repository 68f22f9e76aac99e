from _common import setup

log = setup(snakemake)

from l2ood.evaluate import evaluate_run  # noqa: E402

meta = snakemake.params.meta
outputs = snakemake.input.outputs
ood = {name: f"{outputs}/{name}.npz" for name in meta["ood"]}
df = evaluate_run(f"{outputs}/{meta['id']}.npz", ood, meta)
df.to_csv(snakemake.output[0], index=False)
log.info("%d metric rows; ID accuracy %.4f", len(df), df["accuracy"].iloc[0])
