"""Write a file so that a kill mid-write never leaves a half-written file under the real name."""

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The temporary name is ``.{name}.{pid}.tmp`` in the same folder (a rename is atomic only within one
    file system); not ``mkstemp``, whose 0600 mode would hide the file from others on a shared disk.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
