import numpy as np
from _common import setup

log = setup(snakemake)  # noqa: F821

from l2ood.data import load_split  # noqa: E402
from l2ood.train import infer  # noqa: E402

images, labels = load_split(snakemake.input.images)  # noqa: F821
out = infer(snakemake.input.model, images, labels, engine=snakemake.config["engine"])  # noqa: F821
log.info("%s: %d images, mean feature norm %.4g", snakemake.wildcards.dataset, len(labels), out["feature_norm"].mean())  # noqa: F821
np.savez(snakemake.output[0], **out)  # noqa: F821
