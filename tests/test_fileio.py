"""l2ood.fileio.atomic_path: the real name holds the old file or the complete new one, never a half-written one."""

import pytest

from l2ood.fileio import atomic_path


def test_error_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_success_renames_the_temporary_over_the_real_name(tmp_path):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.npz.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # the real name changes only when the block ends
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_error_before_anything_was_written(tmp_path):
    with pytest.raises(OSError), atomic_path(tmp_path / "never"):
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_path(tmp_path):
    """A write that finds no space says where (np.savez said "[Errno 28] No space left on device")."""
    import os
    import re
    from pathlib import Path

    import numpy as np

    from l2ood.fileio import save_npz

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    target = tmp_path / "probes.npz"
    target.with_name(f".probes.npz.{os.getpid()}.tmp").symlink_to("/dev/full")  # writes fail with ENOSPC
    with pytest.raises(OSError, match=rf"no space left on {re.escape(str(tmp_path))} \(writing probes.npz"):
        save_npz(target, x=np.zeros(10_000))
    assert list(tmp_path.iterdir()) == []


def test_only_temporaries_of_dead_writers_are_stale(tmp_path):
    import os

    from l2ood.fileio import remove_stale_temporaries

    dead = 2**22 + 1  # above Linux's pid_max (4194304): no process has it
    names = [f".checkpoint.pt.{dead}.tmp", f".model.pt.{os.getpid()}.tmp", "checkpoint.pt", ".notes.tmp"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [tmp_path / names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
