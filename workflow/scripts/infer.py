from pathlib import Path

from _common import claim_gpu, record_params, setup

log = setup(snakemake)
claim_gpu(snakemake)  # first: before torch starts CUDA

from l2ood.data import load_split  # noqa: E402
from l2ood.layout import outputs_file  # noqa: E402
from l2ood.outputs import save_outputs  # noqa: E402
from l2ood.inference import infer_sets  # noqa: E402

out_dir = Path(snakemake.output[0])  # (the rule declares run_dir / OUTPUTS_DIR)
out_dir.mkdir(parents=True, exist_ok=True)
sets = {name: load_split(path) for name, path in zip(snakemake.params.datasets, snakemake.input.images)}
for name, out in infer_sets(snakemake.input.model, sets, engine=snakemake.config["engine"]).items():
    save_outputs(out_dir.parent / outputs_file(name), out)
    log.info("%s: %d images, mean feature norm %.4g", name, len(out["labels"]), out["feature_norm"].mean())
record_params(snakemake)
