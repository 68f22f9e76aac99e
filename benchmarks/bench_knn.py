"""KNN's exact search: float32 blocked matrix products with top-k (``l2ood.detectors.knn_distances``)
against the float64 search it replaced (``knn_distances_float64``), timed in the same run.

The CIFAR-sized case of issue 23: ``--n-train`` training features (50,000) and ``--n-test`` test
features (10,000) of ``--dim`` dimensions (512: ResNet18), stored float16 as the features job stores
them, L2-normalized in float64 as KNN does, k = 50. The features are random around 10 class centres
(the structure of a trained network's features; the timings do not depend on it). Prints both times
(timed in turns, a chunk of 1,000 test features each), the ratio, the largest score difference and
whether the ranking of the test images is the same.

    PYTHONPATH=workflow python benchmarks/bench_knn.py             # about 2 minutes on 2 loaded cores
    PYTHONPATH=workflow python benchmarks/bench_knn.py --smoke     # seconds: small sizes, checks it runs
"""

import argparse
import os
import platform
import time

import numpy as np
import torch

from l2ood.detectors import knn_distances, unit
from l2ood.detectors.distance import knn_distances_float64


def features(rng, centres, n):
    z = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, centres.shape[1]))
    return np.abs(z).astype(np.float16)  # post-ReLU, as stored


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1000, help="test features per turn of the interleaved timing")
    p.add_argument("--smoke", action="store_true", help="5,000 x 1,000 x 64: checks that it runs")
    a = p.parse_args()
    if a.smoke:
        a.n_train, a.n_test, a.dim = 5_000, 1_000, 64
    torch.set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, a.dim))
    bank = unit(features(rng, centres, a.n_train).astype(np.float64))
    queries = unit(features(rng, centres, a.n_test).astype(np.float64))
    # interleaved, a chunk of test features each in turn, so that the other jobs' load hits both alike
    ref, new, t64, t32 = [], [], 0.0, 0.0
    with threadpool_limits(a.threads):
        for i in range(0, a.n_test, a.chunk):
            q = queries[i : i + a.chunk]
            t0 = time.perf_counter()
            ref.append(knn_distances_float64(bank, q, a.k))
            t1 = time.perf_counter()
            new.append(knn_distances(bank, q, a.k))
            t64, t32 = t64 + t1 - t0, t32 + time.perf_counter() - t1
    ref, new = np.concatenate(ref), np.concatenate(new)
    same = np.array_equal(np.argsort(-new, kind="stable"), np.argsort(-ref, kind="stable"))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"{a.n_train} x {a.dim} training, {a.n_test} test features (float16 stored), k = {a.k}")
    print(f"float64 (numpy matmul + partition): {t64:.2f} s  (interleaved in chunks of {a.chunk} test features)")
    print(f"float32 (torch addmm + topk, float64 on {a.k}+16 candidates): {t32:.2f} s")
    print(f"ratio float32 / float64: {t32 / t64:.3f}")
    print(f"largest score difference: {np.abs(new - ref).max():.2e}; same ranking: {same}")
    if not same or np.abs(new - ref).max() > 1e-5:
        raise SystemExit("the float32 search disagrees with float64")


if __name__ == "__main__":
    main()
