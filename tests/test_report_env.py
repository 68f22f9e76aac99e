"""`snakemake --report` works in an environment made from envs/requirements.txt alone.

Building that venv here (6 GB, minutes, a package index) is too dear for the suite; instead every package the
report's code imports must be reachable from the pins through pip's own dependency metadata (the ``Requires-Dist``
closure of the pinned distributions, as ``pip install -r`` follows it, extras not taken). pytest's environment has
pygments through pytest, which is how its absence from the pins went unnoticed."""

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from test_envs import ENVS, pins


def closure(names) -> set[str]:
    """The distributions ``pip install`` of ``names`` brings in (markers evaluated here, no extras)."""
    norm = lambda n: n.lower().replace("_", "-").replace(".", "-")  # noqa: E731
    seen, todo = set(), [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(norm(req.name))
    return seen


def report_imports() -> set[str]:
    """Top-level modules imported anywhere in snakemake's report code (at any depth: pygments is imported
    inside a function), less the standard library and snakemake itself."""
    import snakemake

    found = set()
    for path in (Path(snakemake.__file__).parent / "report").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "snakemake"}


def test_every_import_of_the_report_comes_with_the_pins():
    pinned = closure(pins((ENVS / "requirements.txt").read_text().splitlines()))
    providers = metadata.packages_distributions()
    modules = report_imports()
    assert {"pygments", "jinja2", "docutils"} <= modules  # the scan sees the report's imports
    missing = {m: providers.get(m, [m]) for m in modules if not {d.lower() for d in providers.get(m, [m])} & pinned}
    assert not missing, f"snakemake --report imports {missing}, which envs/requirements.txt does not install: pin them"
