"""Where each file of a run lives and what the heads are called: the names rules, scripts and library share."""

PREPARED = "resources/prepared/{dataset}/{split}.npz"  # images uint8 N x H x W x 3, labels int64
RUN_DIR = "results/runs/{run}/seed{seed}"
RELEASE = "results/release/{run}.zip"  # a run's checkpoints to share (l2ood.release)

#: the training job's declared outputs, by role (rules/train.smk declares them from this mapping)
TRAIN_OUTPUTS = {
    "model": "model.pt",
    "history": "history.csv",
    "collapse": "collapse.csv",
    "probes": "probes.npz",
    "config": "config.yaml",
}
CHECKPOINT = "checkpoint.pt"  # not declared: Snakemake deletes a failed job's declared outputs
OUTPUTS_DIR = "outputs"  # inference writes one {dataset}.npz per test set in here
METRICS = "metrics.csv"

# --- a study's files (rules/evaluate, tables and figures.smk declare them; l2ood.ondisk checks them) ---
STUDY_DIR = "results/{study}"
TABLE_FORMATS = ("html", "csv", "md", "tex")  # the table job writes all four
FIGURE_FORMATS = ("png", "pdf")
COMPARISON = "paper_vs_reproduced"  # the paper's numbers beside ours: a table of that name would clash
COMPARISON_FORMATS = ("csv", "md")

#: the two heads: code name -> printed name
HEADS = {"l2": "L2", "nol2": "No L2"}


def prepared_file(dataset: str, split: str) -> str:
    """``resources/prepared/{dataset}/{split}.npz``."""
    return PREPARED.format(dataset=dataset, split=split)


def prepared_record(dataset: str, split: str) -> str:
    """The record beside a prepared split, ``{split}.json``: its MD5 and the values that made it
    (``l2ood.data.write_record``). The jobs reading a split read both: the split ancient (its
    modification time counts for nothing), the record as is (a changed data set replans them)."""
    return record_of(prepared_file(dataset, split))


def record_of(split_path: str) -> str:
    """The record's path beside the prepared split at ``split_path``: ``{split}.npz`` -> ``{split}.json``."""
    return str(split_path).removesuffix(".npz") + ".json"


def run_file(run: str, seed: int, name: str) -> str:
    """``results/runs/{run}/seed{seed}/{name}``."""
    return f"{RUN_DIR.format(run=run, seed=seed)}/{name}"


def study_file(study: str, name: str) -> str:
    """``results/{study}/{name}``: ``metrics.csv``, ``tables/...``, ``figures/...``, ``report.html``."""
    return f"{STUDY_DIR.format(study=study)}/{name}"


def table_file(study: str, table: str, ext: str) -> str:
    """``results/{study}/tables/{table}.{ext}`` (the comparison's too: ``table`` = ``COMPARISON``)."""
    return study_file(study, f"tables/{table}.{ext}")


def figure_file(study: str, figure: str, ext: str) -> str:
    """``results/{study}/figures/{figure}.{ext}``."""
    return study_file(study, f"figures/{figure}.{ext}")


def outputs_file(dataset: str) -> str:
    """A test set's per-image outputs, relative to the run directory."""
    return f"{OUTPUTS_DIR}/{dataset}.npz"


# --- post-hoc detectors (docs/detectors.md): only for the runs a detector table or figure names ---
FEATURES_DIR = "features"  # the features job writes {dataset}.{split}.npz per set and head.npz in here
FEATURES_HEAD = "head.npz"  # the classifier's W, b and head name
DETECTOR_METRICS = "detectors.csv"  # one row per OoD set x detector x logits variant


def features_file(dataset: str, split: str) -> str:
    """A set's float16 penultimate features, relative to the run directory: ``features/cifar10.train.npz``."""
    return f"{FEATURES_DIR}/{dataset}.{split}.npz"


def odin_file(dataset: str) -> str:
    """A test set's ODIN scores over the stored grid (l2ood.odin), relative to the run directory."""
    return f"{FEATURES_DIR}/{dataset}.test.odin.npz"
