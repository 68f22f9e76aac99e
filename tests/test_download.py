"""l2ood.download: fetching over HTTP, checking, keeping what is verified, existing copies and
manual downloads (moved from tests/test_sources.py; fakes in the real layouts).
"""

import functools
import http.server
import subprocess
import threading
from pathlib import Path

import pytest
from fakes import raw_datasets as fakes
from l2ood import sources
from l2ood.download import download, md5sum
from l2ood.sources import ChecksumError, DownloadError
from test_sources import files_in, make_raw


@pytest.fixture
def http_folder(tmp_path):
    """Serve ``tmp_path/served`` over HTTP on localhost; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _svhn_served(tmp_path, monkeypatch, http_folder):
    """Fake SVHN archives served over HTTP, the published URLs and MD5s pointed at them: (served folder,
    {file: md5}, the download root)."""
    served, base = http_folder
    md5s, _ = fakes.make("svhn", served)
    for name, md5 in md5s.items():
        monkeypatch.setitem(sources.FILES["svhn"], name, (f"{base}/{name}", md5))
    return served, md5s, tmp_path / "datasets"


def test_download_over_http_checks_and_renames(tmp_path, monkeypatch, http_folder):
    served, md5s, root = _svhn_served(tmp_path, monkeypatch, http_folder)
    download("svhn", root)
    assert files_in(root / "svhn") == ["MD5SUMS", "test_32x32.mat", "train_32x32.mat"]  # no temporary file left
    assert (root / "svhn" / "test_32x32.mat").read_bytes() == (served / "test_32x32.mat").read_bytes()
    # the rule's output lists each file with its MD5, as `md5sum -c` reads it
    assert (root / "svhn" / "MD5SUMS").read_text() == "".join(f"{md5s[n]}  {n}\n" for n in sources.FILES["svhn"])
    check = subprocess.run(["md5sum", "-c", "MD5SUMS"], cwd=root / "svhn", capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    download("svhn", root)  # in place and checked: nothing fetched again
    # the server now has a different (e.g. truncated) file: named, with the expected MD5; nothing kept
    (root / "svhn" / "test_32x32.mat").unlink()
    (served / "test_32x32.mat").write_bytes(b"truncated")
    with pytest.raises(
        ChecksumError,
        match=rf"\.test_32x32\.mat\.\d+\.tmp: MD5 is \w+, expected {md5s['test_32x32.mat']} "
        r"\(the published checksum of test_32x32\.mat\)",
    ):
        download("svhn", root)
    assert files_in(root / "svhn") == ["MD5SUMS", "train_32x32.mat"]  # (the first download's record)


def test_a_rerun_keeps_what_is_verified_and_replaces_only_a_bad_file(tmp_path, monkeypatch, http_folder):
    """Issue 19, item 1: a rerun of the download step (forced, or its MD5SUMS deleted) checks the
    files in place and keeps them; offline, a verified file is never lost; a file failing its MD5
    stays until a checked download replaces it."""
    served, md5s, root = _svhn_served(tmp_path, monkeypatch, http_folder)
    download("svhn", root)
    train, test = root / "svhn" / "train_32x32.mat", root / "svhn" / "test_32x32.mat"
    before = {p: p.stat().st_ino for p in (train, test)}
    (root / "svhn" / "MD5SUMS").unlink()  # what Snakemake does before it reruns the job
    for name in md5s:
        (served / name).unlink()  # offline from now on: nothing can be fetched
    download("svhn", root)
    assert {p: p.stat().st_ino for p in (train, test)} == before  # the same files, not fetched again
    assert files_in(root / "svhn") == ["MD5SUMS", "test_32x32.mat", "train_32x32.mat"]
    test.write_bytes(b"cut short")  # a damaged file: offline, the error says where to put a good one
    with pytest.raises(DownloadError, match=r"could not download dataset 'svhn'.*test_32x32\.mat"):
        download("svhn", root)
    assert test.read_bytes() == b"cut short" and train.stat().st_ino == before[train]
    fakes.make("svhn", served)  # online again: only the bad file is fetched
    download("svhn", root)
    assert md5sum(test) == md5s["test_32x32.mat"] and train.stat().st_ino == before[train]


def test_no_network_names_dataset_url_and_manual_place(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # port 9: nothing listens, like a node without internet
    monkeypatch.setitem(sources.FILES["cifar10"], "cifar-10-python.tar.gz", (url, "0" * 32))
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError) as err:
        download("cifar10", root)
    message = str(err.value)
    assert "could not download dataset 'cifar10'" in message and url in message
    assert f"{url}  ->  {root / 'manual' / 'cifar-10-python.tar.gz'}" in message
    assert "download.existing.cifar10" in message
    assert files_in(root / "cifar10") == []


def test_existing_copy_and_manual_download_are_linked(tmp_path, monkeypatch):
    shared = tmp_path / "shared"  # a torchvision root: archives at the top, GTSRB's under gtsrb/
    make_raw("cifar10", shared, monkeypatch)
    make_raw("gtsrb", shared / "gtsrb", monkeypatch)
    root = tmp_path / "datasets"
    make_raw("tinyimagenet", root / "manual", monkeypatch)  # downloaded by hand
    download("cifar10", root, existing=shared)
    download("gtsrb", root, existing=shared)
    download("tinyimagenet", root)
    for kind, folder in (("cifar10", shared), ("gtsrb", shared / "gtsrb"), ("tinyimagenet", root / "manual")):
        for path in map(Path, sources.raw_files(kind, root)):
            assert path.is_symlink() and path.resolve() == (folder / path.name).resolve()
    # a wrong existing copy is named with its expected MD5, and not linked
    root2 = tmp_path / "other"
    (shared / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    expected = sources.FILES["cifar10"]["cifar-10-python.tar.gz"][1]
    with pytest.raises(
        ChecksumError, match=rf"{shared / 'cifar-10-python.tar.gz'}: MD5 is \w+, expected {expected}"
    ):
        download("cifar10", root2, existing=shared)
    assert files_in(root2 / "cifar10") == []
