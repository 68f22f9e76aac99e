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
