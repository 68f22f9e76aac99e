"""Write a file so that a kill mid-write never leaves a half-written file under the real name; say
which file a full disk or a damaged file is about."""

import contextlib
import errno
import os
import re
from pathlib import Path

#: errors of a write that found no room: a full file system, or the user's quota on a cluster's
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DamagedFileError(RuntimeError):
    """A file that should hold this package's results cannot be read back: cut short (a full disk,
    a kill mid-write by a tool that did not write atomically), overwritten, or not written by it."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The temporary name is ``.{name}.{pid}.tmp`` in the same folder (a rename is atomic only within one
    file system); not ``mkstemp``, whose 0600 mode would hide the file from others on a shared disk.
    A write that finds the disk (or the quota) full raises an ``OSError`` naming ``path``: the
    writers' own errors do not (``torch.save`` to a path says only "unexpected pos 6144 vs 6040", so
    write through a file object opened on the temporary path, whose errors are Python's).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in NO_SPACE:
            raise OSError(err.errno, f"no space left on {path.parent} (writing {path.name}: {err.strerror})") from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def save_npz(path, **arrays) -> None:
    """``np.savez(path, **arrays)``, written atomically (``atomic_path``)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path, fix: str) -> dict:
    """The arrays of the ``.npz`` file ``path``, read into memory: ``{name: array}``. A damaged file
    raises ``DamagedFileError`` naming ``path`` and ``fix`` (what to delete or rebuild)."""
    import numpy as np

    with reading(path, fix), np.load(path) as z:
        return {k: z[k] for k in z.files}


@contextlib.contextmanager
def reading(path, fix: str):
    """Inside the block, any error but a missing file is ``path`` being damaged: it is raised again as a
    ``DamagedFileError`` naming ``path`` and ``fix``. (A missing file's own error names it already.)"""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as err:
        raise DamagedFileError(f"cannot read {path}: {load_error(err)}. {fix}") from err


def load_error(err: Exception) -> str:
    """What went wrong reading a file, in one line. ``torch.load(weights_only=True)`` refusing a pickle
    that would run code says so at length and advises loading it unsafely: keep only its reason."""
    text = str(err)
    if "Weights only load failed" in text:
        lines = [s.strip() for s in text.splitlines()[1:] if s.strip()]
        why = [s for s in lines if not s.startswith(("Please file an issue", "Check the documentation"))]
        reason = why[0] if why else "objects that are not tensors or plain values"
        return f"it holds more than tensors and plain values, and it is not run ({reason})"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


#: ``atomic_path``'s temporary names: ``.{name}.{pid}.tmp``
TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporaries in ``folder`` that ``atomic_path`` left behind in a process that is dead
    (killed with ``kill -9``, or out of memory, mid-write) and return them.

    Only those whose writer's pid is not a live process on this machine: one that is alive may be
    writing now. (A pid of another node of a cluster says nothing here; a job's folder is written by
    that job alone, Snakemake's lock sees to it, so a temporary there whose pid is not alive here is
    stale too.)
    """
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        m = TEMPORARY.match(p.name)
        if m and not _alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return sorted(removed)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True
