"""What the library's source declares, read without importing it: the workflow reads this at
parse time on every node, where importing torch would cost seconds per job (and ``l2ood.config``
must not import it). The engine's defaults and ``TRAINING_CODE_VERSION`` need no parsing: they
are in ``l2ood.engine``, which imports nothing.

``model_signatures`` gives the keyword arguments of every registered model, ``code_digest`` a digest
of a script and the library modules it imports (the cheap rules' params: an edit reruns them).
"""

import ast
import functools
import hashlib
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent  # workflow/l2ood


@functools.cache
def model_signatures() -> dict[str, tuple[str, ...]]:
    """Model name -> the keyword arguments its encoder builder takes (``model_kwargs``), read from the
    ``@register("name")`` functions of ``l2ood/models/*.py``; ``image_size`` is the run's, not a kwarg."""
    out = {}
    for path in sorted((LIBRARY / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register" and deco.args:
                    a = node.args
                    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                    out[ast.literal_eval(deco.args[0])] = tuple(n for n in names if n != "image_size")
    return out


def _imported_modules(path: Path) -> set[Path]:
    """The ``l2ood`` modules the Python file ``path`` imports (``from l2ood.x import``, ``from .x import``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 0 and not (mod == "l2ood" or mod.startswith("l2ood.")):
                continue
            base = LIBRARY if node.level == 0 else path.parent
            for _ in range(max(node.level - 1, 0)):
                base = base.parent
            parts = mod.split(".")[1:] if node.level == 0 else mod.split(".") if mod else []
            names = [parts] if parts else [[a.name] for a in node.names]  # `from . import x`
            for p in names:
                for cand in (base.joinpath(*p).with_suffix(".py"), base.joinpath(*p, "__init__.py")):
                    if cand.is_file():
                        found.add(cand)
    return found


def odin_code() -> str:
    """A digest of ODIN's code and stored grid (l2ood/odin.py, l2ood/detectors/network.py): the features
    job, which stores ODIN's scores, reruns when either changes, not when another detector does."""
    h = hashlib.sha256()
    for path in (LIBRARY / "odin.py", LIBRARY / "detectors" / "network.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def code_digest(script: str) -> str:
    """A digest of the content (not the mtime) of ``script`` (a path) and of every library module it
    imports, directly or not: ``touch`` leaves it the same, an edit changes it."""
    todo, seen = [Path(script).resolve()], set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imported_modules(path)
    h = hashlib.sha256()
    for path in sorted(seen):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
