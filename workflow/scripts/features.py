from pathlib import Path

from _common import claim_gpu, record_params, setup

log = setup(snakemake)
claim_gpu(snakemake)  # first: before torch starts CUDA

from l2ood.data import load_split  # noqa: E402
from l2ood.fileio import save_npz  # noqa: E402
from l2ood.inference import infer_features  # noqa: E402
from l2ood.layout import FEATURES_HEAD, features_file, odin_file  # noqa: E402
from l2ood.odin import odin_sets  # noqa: E402

out_dir = Path(snakemake.output[0])  # (the rule declares run_dir / FEATURES_DIR)
out_dir.mkdir(parents=True, exist_ok=True)
sets = {(d, s): load_split(path) for (d, s), path in zip(snakemake.params.sets, snakemake.input.images)}
features, head = infer_features(snakemake.input.model, sets, engine=snakemake.config["engine"])
for (dataset, split), out in features.items():
    save_npz(out_dir.parent / features_file(dataset, split), **out)
    log.info("%s/%s: %d x %d float16 features", dataset, split, *out["features"].shape)
save_npz(out_dir / FEATURES_HEAD, **head)
tests = {dataset: images for (dataset, split), (images, _) in sets.items() if split == "test"}
for dataset, grid in odin_sets(snakemake.input.model, tests, engine=snakemake.config["engine"]).items():
    save_npz(out_dir.parent / odin_file(dataset), **grid)
    log.info("%s: ODIN scores over %d temperatures x %d epsilons", dataset, *grid["raw"].shape[:2])
record_params(snakemake)
