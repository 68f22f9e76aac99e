"""The two install paths pin the same packages: pip's requirements and the rules' conda environment."""

import re
from pathlib import Path

import yaml

ENVS = Path(__file__).resolve().parents[1] / "envs"


def pins(lines) -> dict[str, str]:
    """``name==version`` lines -> {normalised name: version}; every line must be an exact pin."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line == "-e .":  # the package itself (pip only; the rules' env reads it from the clone)
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line)
        assert m, f"not an exact pin: {line!r}"
        out[m[1].lower().replace("_", "-")] = m[2]
    return out


def test_conda_env_pins_exactly_the_requirements():
    env = yaml.safe_load((ENVS / "l2ood.yaml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    assert not any(item.startswith("-r") for item in pip_lists[0]), "conda copies the env file: no -r includes"
    assert pins(pip_lists[0]) == pins((ENVS / "requirements.txt").read_text().splitlines())
    assert "python=3.11" in env["dependencies"]


def test_pins_reject_ranges():
    import pytest

    with pytest.raises(AssertionError, match="not an exact pin"):
        pins(["numpy>=2.0"])
    assert pins(["PyYAML==6.0.3  # comment", "", "scikit_learn==1.9.1"]) == {"pyyaml": "6.0.3", "scikit-learn": "1.9.1"}


def test_cpu_requirements_are_the_same_pins_with_torch_cpu_wheels():
    """envs/requirements-cpu.txt = requirements.txt plus torch's CPU wheel index and the +cpu builds of its torch
    and torchvision pins, which satisfy requirements.txt's own pins (pip installs both files' lines at once).
    Not run here: the install itself (download.pytorch.org is out of reach of the test machines)."""
    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in (ENVS / "requirements-cpu.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    indexes = ["--index-url https://download.pytorch.org/whl/cpu", "--extra-index-url https://pypi.org/simple"]
    assert lines[:2] == indexes
    assert lines[-1] == "-r requirements.txt"
    cpu = pins(lines[2:-1])
    main = pins((ENVS / "requirements.txt").read_text().splitlines())
    assert set(cpu) == {"torch", "torchvision"}
    for name, version in cpu.items():
        assert version == main[name] + "+cpu", name
        assert Requirement(f"{name}=={main[name]}").specifier.contains(version), f"{name} {version} breaks the pin"
