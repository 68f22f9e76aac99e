import os
from pathlib import Path

from _common import setup

log = setup(snakemake)

from l2ood.data import load_split  # noqa: E402
from l2ood.layout import outputs_file  # noqa: E402
from l2ood.outputs import save_outputs  # noqa: E402
from l2ood.train import infer_sets  # noqa: E402

log.info("run %s seed %s; CUDA_VISIBLE_DEVICES=%s", snakemake.wildcards.run, snakemake.wildcards.seed,
         os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # fmt: skip
out_dir = Path(snakemake.output[0])  # (the rule declares run_dir / OUTPUTS_DIR)
out_dir.mkdir(parents=True, exist_ok=True)
sets = {name: load_split(path) for name, path in zip(snakemake.params.datasets, snakemake.input.images)}
for name, out in infer_sets(snakemake.input.model, sets, engine=snakemake.config["engine"]).items():
    save_outputs(out_dir.parent / outputs_file(name), out)
    log.info("%s: %d images, mean feature norm %.4g", name, len(out["labels"]), out["feature_norm"].mean())
