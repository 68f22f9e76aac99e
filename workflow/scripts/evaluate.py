from pathlib import Path

from _common import record_params, setup

log = setup(snakemake)

from l2ood.evaluate import evaluate_run  # noqa: E402
from l2ood.layout import outputs_file  # noqa: E402

meta = snakemake.params.meta
run_dir = Path(snakemake.input.outputs).parent  # (the input is run_dir / OUTPUTS_DIR)
ood = {name: run_dir / outputs_file(name) for name in meta["ood"]}
df = evaluate_run(run_dir / outputs_file(meta["id"]), ood, meta, tune_on=meta["tune_scale_on"])
df.to_csv(snakemake.output[0], index=False)
log.info("%d metric rows; ID accuracy %.4f", len(df), df["accuracy"].iloc[0])
record_params(snakemake)
