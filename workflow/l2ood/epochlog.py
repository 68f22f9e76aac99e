"""What a training run says about its epochs: one line per epoch in the job's log, a few on the terminal."""

import logging
import time

log = logging.getLogger("l2ood.train")  # the training job's lines

class EpochClock:
    """Elapsed time and ETA of the epochs this process trains, and which epoch lines reach the terminal.

    Every epoch's line goes to the job's log file; the terminal (a record with ``terminal=True``,
    ``workflow/scripts/_common.py``) gets the first and the last epoch, and between them one line about
    every tenth of the run but at most one per ``TERMINAL_SECONDS``: two demo jobs training at once
    print a few lines each, not one per epoch.
    """

    TERMINAL_SECONDS = 30.0

    def __init__(self, start_epoch: int, epochs: int):
        self.start, self.epochs = start_epoch, epochs
        self.t0 = self.shown_at = time.perf_counter()
        self.shown_epoch = start_epoch

    def tick(self, epoch: int) -> tuple[float, float, bool]:
        """(elapsed s, ETA s, show on the terminal) after ``epoch`` (1-based) of ``epochs``."""
        now = time.perf_counter()
        elapsed = now - self.t0
        eta = elapsed / (epoch - self.start) * (self.epochs - epoch)
        due = epoch - self.shown_epoch >= max(1, self.epochs // 10) and now - self.shown_at >= self.TERMINAL_SECONDS
        show = epoch == self.start + 1 or epoch == self.epochs or due
        if show:
            self.shown_at, self.shown_epoch = now, epoch
        return elapsed, eta, show


def _hms(seconds: float) -> str:
    """``0:07:05``: hours, minutes, seconds."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def log_epoch(name: str, seed: int, row: dict, epochs: int, nc1: float, clock: EpochClock) -> None:
    """One line per epoch naming the run and seed: ``run seed 0: epoch 12/60  loss ... ETA 0:00:41``."""
    elapsed, eta, show = clock.tick(row["epoch"])
    log.info(
        "%s seed %d: epoch %d/%d  loss %.4f  acc %.4f  lr %.4g  %.1f s  %.0f img/s  probe NC1 %.3g  elapsed %s  ETA %s",
        name, seed, row["epoch"], epochs, row["loss"], row["accuracy"], row["lr"], row["seconds"], row["images_per_s"],
        nc1, _hms(elapsed), _hms(eta), extra={"terminal": show},
    )  # fmt: skip

