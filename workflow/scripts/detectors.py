from pathlib import Path

from _common import record_params, setup

log = setup(snakemake)

from l2ood.evaluate_detectors import evaluate_detectors  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (installed with scikit-learn)

meta = snakemake.params.meta
run_dir = Path(snakemake.input.features).parent  # (the input is run_dir / FEATURES_DIR)
with threadpool_limits(snakemake.threads):  # numpy's BLAS (KNN's matrix products) on the job's threads
    df = evaluate_detectors(run_dir, meta, meta["names"], meta["params"])
df.to_csv(snakemake.output[0], index=False)
log.info("%d detector metric rows, ID accuracy %.4f", len(df), df["accuracy"].iloc[0])
record_params(snakemake)
