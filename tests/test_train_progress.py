"""Training's progress lines: every epoch in the log, a few on the terminal, each naming run and seed."""

import logging

import pytest
from l2ood import epochlog


@pytest.mark.parametrize(
    "seconds_per_epoch, shown",
    [
        (1.0, [1, 31, 61, 91, 100]),  # a line every 10 epochs would be every 10 s: at most one per 30 s
        (5.0, [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]),  # slow epochs: every tenth of the run
        (0.01, [1, 100]),  # the demo: first and last
    ],
)
def test_terminal_gets_first_last_and_about_every_tenth(monkeypatch, seconds_per_epoch, shown):
    now = [0.0]
    monkeypatch.setattr(epochlog.time, "perf_counter", lambda: now[0])
    clock = epochlog.EpochClock(0, 100)
    got = []
    for epoch in range(1, 101):
        now[0] += seconds_per_epoch
        elapsed, eta, show = clock.tick(epoch)
        assert elapsed == pytest.approx(epoch * seconds_per_epoch)
        assert eta == pytest.approx((100 - epoch) * seconds_per_epoch)
        got += [epoch] if show else []
    assert got == shown


def test_eta_after_a_resume_counts_only_this_process_epochs(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(epochlog.time, "perf_counter", lambda: now[0])
    clock = epochlog.EpochClock(40, 60)  # resumed at epoch 40 of 60
    now[0] += 2.0
    elapsed, eta, show = clock.tick(41)
    assert (elapsed, eta, show) == (2.0, 38.0, True)


def test_epoch_line_names_run_and_seed(caplog):
    row = {"epoch": 3, "loss": 0.5, "accuracy": 0.8, "lr": 0.1, "seconds": 1.5, "images_per_s": 400.0}
    with caplog.at_level(logging.INFO, logger="l2ood.train"):
        epochlog.log_epoch("cifar10-resnet18-l2-sgd60", 7, row, 60, 0.25, epochlog.EpochClock(2, 60))
    (rec,) = caplog.records
    assert rec.getMessage().startswith("cifar10-resnet18-l2-sgd60 seed 7: epoch 3/60  loss 0.5000  acc 0.8000")
    assert "elapsed 0:00:0" in rec.getMessage() and " ETA " in rec.getMessage()
    assert rec.terminal is True  # the first epoch of this process reaches the terminal


def test_hms():
    assert epochlog._hms(0) == "0:00:00" and epochlog._hms(65.4) == "0:01:05" and epochlog._hms(3 * 3600 + 59) == "3:00:59"
