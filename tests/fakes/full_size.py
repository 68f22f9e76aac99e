"""Full-size fakes (the real image counts) to measure prepare's peak memory for docs/datasets.md.

    export PYTHONPATH=workflow:tests
    python tests/fakes/full_size.py make cifar10 /tmp/full
    /usr/bin/time -v python tests/fakes/full_size.py prepare cifar10 /tmp/full train /tmp/out.npz

``make`` writes CIFAR-10 (50,000 + 10,000 random images) or TinyImageNet (200 classes x 500
train images, 10,000 val images, 64 x 64 JPEGs) in the real layout under ``DIR/{kind}/``;
``prepare`` runs ``l2ood.data.prepare_raw`` with the fake's MD5s in place of the published ones.
"""

import sys
from pathlib import Path

from fakes import raw_datasets as fakes
from l2ood import data, sources
from l2ood.download import md5sum

SIZES = {
    "cifar10": dict(per_batch=10_000, n_test=10_000),
    "tinyimagenet": dict(wnids=tuple(f"n{i:08d}" for i in range(200)), per_class=500, n_val=10_000),
}

if __name__ == "__main__":
    command, kind, root = sys.argv[1:4]
    if command == "make":
        fakes.make(kind, Path(root) / kind, **SIZES[kind])
    else:
        paths = sources.raw_files(kind, root)
        md5 = {Path(p).name: md5sum(p) for p in paths}  # the fake's, in place of the published ones
        split, out = sys.argv[4:6]
        data.prepare_raw(kind, paths, split, out, md5=md5)
