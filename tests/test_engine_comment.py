"""config.yaml's comment on the `engine:` section says which options retrain: exactly the ones that are
training parameters, and the job count of its example is the paper's."""

import re

import yaml
from conftest import ROOT

from l2ood.engine import NUMERIC_ENGINE_OPTIONS
from l2ood.plan import summary


def engine_comment() -> str:
    lines = (ROOT / "config.yaml").read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("engine:"))
    start = max(i for i in range(end) if not lines[i].startswith("#")) + 1
    return " ".join(line.lstrip("# ") for line in lines[start:end])


def test_the_engine_comment_names_the_options_that_retrain():
    text = engine_comment()
    retrain = re.search(r"Seven options change what training computes and are training\s+parameters: ([^(]+)\(", text)
    assert retrain, text
    named = [w.strip() for w in retrain[1].split(",")]
    assert named == list(NUMERIC_ENGINE_OPTIONS) and len(named) == 7
    assert "None of these change results" not in text
    jobs = int(re.search(r"retrains all (\d+) jobs of the paper", text)[1])
    assert jobs == summary(yaml.safe_load((ROOT / "config.yaml").read_text()), "paper", {}).seeds.sum()
