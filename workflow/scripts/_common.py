"""Shared by the script adapters: make l2ood importable and send logging to the rule's log file."""

import logging
import os
import sys
from pathlib import Path


def setup(snakemake) -> logging.Logger:
    """Log to the job's ``log:`` file, the uncaught exception that ends a job included; set torch's
    thread count from the config's ``threads`` (not the job's ``--cores`` share).

    The terminal (stderr) gets warnings, errors and the records marked ``extra={"terminal": True}``
    (training's progress lines): with several jobs at once, the rest would bury them.
    """
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # workflow/ -> import l2ood
    handlers = [logging.StreamHandler(sys.stderr)]
    handlers[0].addFilter(lambda r: r.levelno >= logging.WARNING or getattr(r, "terminal", False))
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True)
    log = logging.getLogger(f"l2ood.{snakemake.rule}")
    log_uncaught(log)
    if "torch" in sys.modules or snakemake.rule in ("train", "infer", "features"):
        import torch

        # the float reductions on a CPU depend on the thread count: the config fixes it, and
        # training records it (l2ood.config.resolve_run) so that --cores cannot change a model
        torch.set_num_threads(snakemake.config["threads"].get(snakemake.rule, snakemake.threads))
    return log


def log_uncaught(log: logging.Logger) -> None:
    """End the rule's log with the exception that stops the script: Snakemake says "check log file(s)",
    and the traceback on the terminal is gone by then (or was never seen, on a cluster)."""

    def hook(kind, value, tb):
        log.error("failed: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        for handler in logging.getLogger().handlers:
            handler.flush()

    sys.excepthook = hook


def claim_gpu(snakemake) -> None:
    """Give a job that asks for a GPU (the rule's ``gpu`` resource) a GPU of its own on a
    workstation (``l2ood.gpus.claim_device``: Snakemake sets no CUDA_VISIBLE_DEVICES), before
    anything starts CUDA; SLURM's CUDA_VISIBLE_DEVICES is kept. A job asking for none gets none."""
    if int(getattr(snakemake.resources, "gpu", 0) or 0) < 1:
        return
    from l2ood.gpus import claim_device
    from l2ood.engine import ENGINE_DEFAULTS

    claim_device(jobs_per_gpu={**ENGINE_DEFAULTS, **snakemake.config["engine"]}["jobs_per_gpu"])
    log = logging.getLogger(f"l2ood.{snakemake.rule}")
    log.info("CUDA_VISIBLE_DEVICES=%s", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # the job's GPU, in its log


def record_params(snakemake, **extra) -> None:
    """Write the params the job ran with (and ``extra``) beside its first output, last, when its outputs
    are written: where Snakemake has no record of the job (results copied into a fresh clone), the next
    start compares them with what the config gives (l2ood.ondisk.stale_params)."""
    from l2ood.ondisk import write_params

    write_params(snakemake.output[0], {**dict(snakemake.params.items()), **extra})
