"""Shared by the script adapters: make l2ood importable and send logging to the rule's log file."""

import logging
import sys
from pathlib import Path


def setup(snakemake) -> logging.Logger:
    """Log to the job's ``log:`` file; limit torch to the job's threads.

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
    if "torch" in sys.modules or snakemake.rule in ("train", "infer"):
        import torch

        torch.set_num_threads(snakemake.threads)
    return logging.getLogger(f"l2ood.{snakemake.rule}")
