"""l2ood.plan: measured throughput from benchmarks/gpu_check.py's JSON replaces the estimates."""

import json

import pytest
import yaml
from conftest import ROOT
from l2ood import plan

RUN = "cifar10-resnet18-l2-sgd60"  # ResNet18, 32 px, batch 1024, 60 epochs, 15 seeds


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def figures(tmp_path, throughput, **top):
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"schema": 1, "smoke": False, "device": "cuda", "gpu": "H100", **top,
                                "throughput": throughput}))  # fmt: skip
    return path


def test_a_measured_speed_replaces_the_estimate(tmp_path, config):
    key = plan.throughput_key("resnet18", 32, 1024)
    assert key == "resnet18@32/b1024"  # the key gpu_check.json uses
    measured = plan.measured_throughput(figures(tmp_path, {key: 40_000.0, "resnet50@64/b512": 0}))
    assert measured == {key: 40_000.0}  # a zero (nothing measured) is no speed
    assert plan.epoch_seconds(config, RUN, measured) == pytest.approx(50_000 / 40_000)
    assert plan.run_minutes(config, RUN, measured) == pytest.approx(60 * 1.25 / 60)
    df = plan.summary(config, "paper", measured).set_index("run")
    assert df.loc[RUN, "speed"] == "measured" and df.loc[RUN, "gpu_hours"] == pytest.approx(15 * 1.25 / 60)
    assert df.loc["cifar10-resnet50-l2-sgd100", "speed"] == "estimate"  # batch 768 at 32 px: not measured
    estimate = plan.epoch_seconds(config, RUN, {})
    assert estimate != pytest.approx(1.25) and plan.epoch_seconds(config, "cifar10-resnet50-l2-sgd100", measured) == (
        plan.epoch_seconds(config, "cifar10-resnet50-l2-sgd100", {})
    )


def test_smoke_cpu_and_missing_figures_are_not_measurements(tmp_path, monkeypatch, config):
    key = plan.throughput_key("resnet18", 32, 1024)
    for name, top in (("smoke", {"smoke": True}), ("cpu", {"device": "cpu"})):
        (tmp_path / name).mkdir()
        assert plan.measured_throughput(figures(tmp_path / name, {key: 9.0}, **top)) == {}, name
    assert plan.measured_throughput(tmp_path / "absent.json") == {}
    # the default file is read where the runtime request is computed (every job, at parse time)
    monkeypatch.setattr(plan, "MEASURED_JSON", figures(tmp_path, {key: 1_000.0}))
    assert plan.runtime_request(config, RUN) == 3 * 50 + 10  # 60 epochs x 50 s = 50 minutes, 3x, + 10
