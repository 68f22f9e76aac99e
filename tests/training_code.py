"""The digest that keeps ``TRAINING_CODE_VERSION`` (workflow/l2ood/engine.py) honest.

Training reruns when that version changes, not when the code does (a touched or refactored file
must not retrain 31 GPU-hours). tests/test_rerun.py compares the digest of the code the version
covers with the one recorded in tests/training_code.sha256, beside the version it was recorded
for. When it fails:

  * the change alters what training computes (numbers, not only speed or words): bump
    ``TRAINING_CODE_VERSION`` in workflow/l2ood/engine.py (every model trains again);
  * either way, record the new state:  python tests/training_code.py

The digest reads the syntax tree without docstrings, so comments, docstrings and formatting
changes do not count.
"""

import ast
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "workflow/l2ood"
RECORD = Path(__file__).resolve().with_name("training_code.sha256")
#: what a trained model depends on besides its config and data: the engine and what it calls (its
#: recipe defaults, optimizer, checkpoint and forward pass; not epochlog.py, which only writes the log)
COVERED = ["train.py", "engine.py", "optim.py", "checkpoint.py", "inference.py", "augment.py", "randaugment.py", "mix.py", "losses.py", "collapse.py", "models/*.py"]


def covered_files() -> list[Path]:
    return sorted(p for pattern in COVERED for p in LIBRARY.glob(pattern))


def _strip(tree: ast.AST) -> ast.AST:
    """``tree`` without docstrings and without the ``TRAINING_CODE_VERSION = ...`` line itself."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        first = body[0] if body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            body.pop(0)
        node.body = [
            b
            for b in body
            if not (
                isinstance(b, ast.Assign) and any(getattr(t, "id", "") == "TRAINING_CODE_VERSION" for t in b.targets)
            )
        ] or [ast.Pass()]
    return tree


def digest() -> str:
    h = hashlib.sha256()
    for path in covered_files():
        h.update(str(path.relative_to(LIBRARY)).encode())
        h.update(ast.dump(_strip(ast.parse(path.read_text()))).encode())
    return h.hexdigest()


def version() -> int:
    sys.path.insert(0, str(ROOT / "workflow"))
    from l2ood.engine import TRAINING_CODE_VERSION

    return TRAINING_CODE_VERSION


def recorded() -> tuple[int, str]:
    line = next(x for x in RECORD.read_text().splitlines() if x and not x.startswith("#"))
    v, d = line.split()
    return int(v), d


def record() -> None:
    RECORD.write_text(
        "# TRAINING_CODE_VERSION and the digest of the code it covers (tests/training_code.py says when\n"
        "# to bump the version). Written by: python tests/training_code.py\n"
        f"{version()} {digest()}\n"
    )


if __name__ == "__main__":
    record()
    print(RECORD.read_text(), end="")
