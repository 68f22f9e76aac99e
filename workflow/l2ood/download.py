"""Fetch the published files of a raw dataset kind and check them against their MD5s.

Where a file comes from, first match wins (``download``):
  1. already in place (checked; one that fails its MD5 is replaced by the next source found);
  2. ``existing``: a folder holding the file, e.g. a shared torchvision root (linked, not copied);
  3. ``{root}/manual/``: where to put a file downloaded by hand (linked);
  4. the network, with torchvision's ``download_url`` into a temporary file, renamed once checked.

Which files a kind has, and their published MD5s, are declared in ``l2ood.sources``.
"""

import hashlib
import logging
import os
from pathlib import Path

from .fileio import atomic_path
from .sources import VERIFIED, ChecksumError, DownloadError, files

log = logging.getLogger(__name__)


def md5sum(path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # an integrity check, not security
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path, expected: str, name: str | None = None) -> None:
    """Raise ``ChecksumError`` naming ``path`` and the expected MD5 unless they match.

    ``name``: the published file the checksum belongs to, when ``path`` is a temporary download.
    """
    actual = md5sum(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: MD5 is {actual}, expected {expected} (the published checksum of {name or Path(path).name}). "
            "The file is truncated, corrupt or another version: delete it (or replace it with a good copy) "
            "and run again."
        )


def _copies(kind: str, name: str, root, existing) -> list[Path]:
    """Places a copy of ``name`` may already be: ``existing`` (or its torchvision subfolder), then manual/."""
    places = []
    if existing:
        places += [Path(existing) / name, Path(existing) / kind / name]  # e.g. a torchvision root's gtsrb/
    return places + [Path(root) / "manual" / name]


def _link(target: Path, dest: Path) -> None:
    """Symlink ``dest`` -> ``target`` atomically (a temporary link renamed over ``dest``)."""
    with atomic_path(dest) as tmp:
        os.symlink(target.resolve(), tmp)


def _fetch(url: str, dest: Path, md5: str) -> None:
    """torchvision's ``download_url`` into a temporary file; renamed to ``dest`` only once its MD5 matches."""
    from torchvision.datasets.utils import download_url

    with atomic_path(dest) as tmp:
        tmp.unlink(missing_ok=True)  # download_url would take a stale file (a killed run's) for a finished download
        download_url(url, str(dest.parent), tmp.name, md5=None)
        check_md5(tmp, md5, name=dest.name)


def download(kind: str, root, existing=None, md5: dict | None = None) -> None:
    """Put every published file of ``kind`` at ``{root}/{kind}/``, each checked against its MD5, then
    list them with their MD5s in ``{root}/{kind}/MD5SUMS`` (``sources.verified_file``, the rule's output).

    A file already in place is checked and kept (run again, nothing is fetched twice); one that
    fails its MD5 is replaced by a checked copy or download, and stays until then.

    ``existing``: a folder that may hold the files already (a shared cluster copy, a torchvision
    root); a copy found there or in ``{root}/manual/`` is checked and symlinked, never fetched.
    ``md5``: {file name: MD5} replacing published checksums (config ``download.md5``).
    Raises ``DownloadError`` (no network) naming the dataset, each URL and where to put a manual
    download; ``ChecksumError`` for a file that is there but wrong.
    """
    if existing and not Path(existing).is_dir():
        # a typo in the path would otherwise be skipped, and the download error ask for this very key
        raise DownloadError(
            f"download.existing.{kind} is {str(existing)!r}, which is not a folder here: correct the path "
            f"(a folder holding the {kind} files) or remove the key to download them."
        )
    dest_dir = Path(root) / kind
    dest_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    published = files(kind, md5)
    for name, (_, digest) in published.items():
        dest = dest_dir / name
        if dest.exists():
            try:
                check_md5(dest, digest)
            except ChecksumError as err:  # kept until a checked copy or download is renamed over it
                log.warning("%s: %s\nLooking for a good copy or downloading it again.", kind, err)
            else:
                log.info("%s: %s already in place, MD5 ok", kind, dest)
                continue
        copy = next((p for p in _copies(kind, name, root, existing) if p.is_file()), None)
        if copy is not None:
            check_md5(copy, digest)
            _link(copy, dest)
            log.info("%s: linked %s -> %s (MD5 ok)", kind, dest, copy.resolve())
        else:
            missing.append(name)
    for i, name in enumerate(missing):
        url, digest = published[name]
        log.info("%s: downloading %s", kind, url)
        try:
            _fetch(url, dest_dir / name, digest)
        except ChecksumError:
            raise
        except Exception as err:  # no network, proxy, HTTP error, disk: the fix is the same manual step
            todo = "\n".join(f"  {published[n][0]}  ->  {Path(root) / 'manual' / n}" for n in missing[i:])
            raise DownloadError(
                f"could not download dataset {kind!r} from {url}: {err}\n"
                f"Without network access here, download these files on another machine and put them at:\n{todo}\n"
                f"(or set download.existing.{kind} in config.yaml to a folder holding them), then run again."
            ) from err
        log.info("%s: %s downloaded, %d bytes, MD5 %s ok", kind, name, (dest_dir / name).stat().st_size, digest)
    with atomic_path(dest_dir / VERIFIED) as tmp:  # the rule's output: every file is in place and checked
        tmp.write_text("".join(f"{digest}  {name}\n" for name, (_, digest) in published.items()))
