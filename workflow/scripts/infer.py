from pathlib import Path

import numpy as np
from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.data import load_split  # noqa: E402
from l2ood.train import infer  # noqa: E402

out_dir = Path(snakemake.output[0])  # noqa: F821
out_dir.mkdir(parents=True, exist_ok=True)
for name, path in zip(snakemake.params.datasets, snakemake.input.images):  # noqa: F821
    images, labels = load_split(path)
    out = infer(snakemake.input.model, images, labels, engine=snakemake.config["engine"])  # noqa: F821
    np.savez(out_dir / f"{name}.npz", **out)
    log.info("%s: %d images, mean feature norm %.4g", name, len(labels), out["feature_norm"].mean())
