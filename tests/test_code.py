"""l2ood.code: what Snakemake reads at parse time without torch (the models' builders), and the content
digest of a script and the library modules it imports."""

import inspect
import os

from l2ood import code


def test_parse_time_reads_match_the_library():
    from l2ood.models import REGISTRY

    builders = {n: tuple(p for p in inspect.signature(f).parameters if p != "image_size") for n, f in REGISTRY.items()}
    assert code.model_signatures() == builders


def test_the_code_digest_follows_imports_and_content_not_mtimes(tmp_path, monkeypatch):
    """A script's digest covers the library modules it imports, directly (`from l2ood.a import`) or
    through them (`from .b import`); a touch changes nothing, an edit to an imported module does, an
    edit to a module it does not import does not."""
    lib = tmp_path / "l2ood"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    (lib / "a.py").write_text("from .b import x\ny = x + 1\n")
    (lib / "b.py").write_text("x = 1\n")
    (lib / "c.py").write_text("z = 3\n")
    script = tmp_path / "script.py"
    script.write_text("from l2ood.a import y\nprint(y)\n")
    monkeypatch.setattr(code, "LIBRARY", lib)

    def digest():
        code.code_digest.cache_clear()  # cached per process: each call below reads the files again
        return code.code_digest(str(script))

    before = digest()
    later = os.stat(script).st_mtime + 100
    for path in [script, *lib.iterdir()]:
        os.utime(path, (later, later))
    assert digest() == before
    (lib / "c.py").write_text("z = 4\n")
    assert digest() == before
    (lib / "b.py").write_text("x = 2\n")
    changed = digest()
    assert changed != before
    script.write_text("from l2ood.a import y\nprint(y + 1)\n")
    assert digest() != changed
