"""Detectors on distances in feature space: Mahalanobis, RMDS, KNN, ViM, fDBD."""

import numpy as np

from .base import L2_EPS, Detector, _Gaussian, logsumexp, unit

#: elements of one block of test x training distances in KNN: 2**24 * 4 B = 64 MiB in float32.
KNN_BLOCK = 2**24
#: candidates beyond k that KNN's float32 search keeps for the exact float64 pass (knn_distances)
KNN_MARGIN = 16


def knn_distances(bank: np.ndarray, queries: np.ndarray, k: int, device="cpu") -> np.ndarray:
    """Distance of each query row to its k-th nearest bank row, exact search, float64 result.

    The search is float32 blocked matrix products with ``torch.topk`` (on ``device``: "cpu" or a CUDA
    device): it ranks the bank by ||b||^2 - 2 q.b and keeps the k + KNN_MARGIN nearest; their
    distances are then computed again in float64, so the k-th is the float64 one whenever the true k
    nearest are among the candidates (float32 misranks only rows within ~1e-6 of each other in squared
    distance, and then the k-th distance moves by no more than that). 1.3 to 3x faster than float64 on
    a loaded 2-core CPU (benchmarks/bench_knn.py); ``knn_distances_float64`` is the all-float64 reference.
    """
    import torch  # here, not at import: the detectors package is numpy, and most detectors need no torch

    m = min(k + KNN_MARGIN, len(bank))
    bank_sq = np.sum(bank**2, axis=1)
    bank32 = torch.from_numpy(bank).to(device, torch.float32)
    bank_sq32 = torch.from_numpy(bank_sq).to(device, torch.float32)
    out = np.empty(len(queries))
    rows = max(1, KNN_BLOCK // len(bank))
    for i in range(0, len(queries), rows):
        q = queries[i : i + rows]
        key = torch.addmm(bank_sq32, torch.from_numpy(q).to(device, torch.float32), bank32.T, alpha=-2)
        idx = torch.topk(key, m, dim=1, largest=False).indices.cpu().numpy()  # (rows, m) candidates
        dots = np.einsum("rd,rmd->rm", q, bank[idx])  # float64, the gathered (rows, m, d) candidates
        d2 = np.sum(q**2, axis=1)[:, None] + bank_sq[idx] - 2 * dots
        out[i : i + rows] = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0))
    return out


def knn_distances_float64(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """``knn_distances`` all in float64 with numpy (KNN's search before issue 23): the reference of its
    test and benchmark."""
    bank_sq = np.sum(bank**2, axis=1)
    q_sq = np.sum(queries**2, axis=1)
    out = np.empty(len(queries))
    rows = max(1, KNN_BLOCK // 2 // len(bank))  # float64: the same 128 MiB as before
    for i in range(0, len(queries), rows):
        d2 = q_sq[i : i + rows, None] + bank_sq[None, :] - 2 * queries[i : i + rows] @ bank.T
        out[i : i + rows] = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0))
    return out


class Mahalanobis(Detector):
    """-min_c (z - mu_c)^T Sigma^+ (z - mu_c), class means, shared covariance (Lee et al. 2018), no preprocessing."""

    label = "Mahalanobis"
    family = "distance"
    uses_head = False
    uses_train = True

    def _fit(self, z, y):
        self.gaussian = _class_gaussian(z, y, self.head.num_classes)

    def _score(self, z):
        return -self.gaussian.distances(z).min(axis=1)


def _class_gaussian(z: np.ndarray, y: np.ndarray, num_classes: int) -> _Gaussian:
    counts = np.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"classes {missing} have no training features: a class mean needs at least one image")
    means = np.stack([z[y == c].mean(axis=0) for c in range(num_classes)])
    return _Gaussian(z - means[y], means, z.mean(axis=0))


class RMDS(Mahalanobis):
    """Relative Mahalanobis (Ren et al. 2021): -min_c [MD_c(z) - MD_0(z)], MD_0 a Gaussian fitted to all training features."""

    label = "RMDS"

    def _fit(self, z, y):
        super()._fit(z, y)  # the class Gaussians, as Mahalanobis
        mean = z.mean(axis=0)
        self.background = _Gaussian(z - mean, mean[None, :], mean)

    def _score(self, z):
        return -(self.gaussian.distances(z) - self.background.distances(z)).min(axis=1)


class KNN(Detector):
    """-distance of z/||z|| to its k-th nearest normalized training feature, k = 50 (Sun et al. 2022, CIFAR-10)."""

    label = "KNN"
    family = "distance"
    uses_head = False
    uses_train = True

    def __init__(self, k: int = 50):
        self.k = k

    def _fit(self, z, y):
        if len(z) < self.k:
            raise ValueError(f"KNN with k={self.k} needs at least {self.k} training features, got {len(z)}")
        self.bank = unit(z)

    def _score(self, z):
        return -knn_distances(self.bank, unit(z), self.k)


def vim_dim(d: int) -> int:
    """ViM's principal-subspace dimension D for d-dimensional features.

    1000 for d >= 2048 and 512 for d >= 768 (the ViM authors' benchmark.py: ResNet-50/BiT, ViT-B);
    otherwise d // 2 (OpenOOD v1.5 vim.yml: 256 of ResNet18's 512 on CIFAR).
    """
    if d >= 2048:
        return 1000
    if d >= 768:
        return 512
    return d // 2


class ViM(Detector):
    """Virtual-logit matching (Wang et al. 2022): energy - alpha ||residual of h - u off the top-D principal space||."""

    label = "ViM"
    family = "distance"
    uses_train = True

    def __init__(self, dim: int | None = None):
        self.dim = dim  # None: vim_dim(d)

    def _fit(self, z, y):
        w, b = self.head.weight, self.head.bias
        d = self.head.dim
        self.principal_dim = vim_dim(d) if self.dim is None else self.dim
        if not 0 <= self.principal_dim < d:
            raise ValueError(
                f"ViM's principal dimension must be in [0, {d}) for {d}-d features, got {self.principal_dim}"
            )
        self.origin = -np.linalg.pinv(w) @ b  # u: the point the logits see as W u + b = 0 (least squares)
        x = self.head.head_input(z) - self.origin
        lam, vec = np.linalg.eigh(x.T @ x / len(x))  # covariance about u, not about the mean (as the paper)
        self.residual_basis = vec[:, np.argsort(-lam)[self.principal_dim :]]
        vlogit = np.linalg.norm(x @ self.residual_basis, axis=1).mean()
        max_logit = self.head.logits(z).max(axis=1).mean()
        # training features in the principal space (residuals zero up to rounding): no scale to
        # match the virtual logit to, so alpha = 0 and ViM is the energy
        zero = vlogit <= 1e-12 * np.linalg.norm(x, axis=1).mean()
        self.alpha = 0.0 if zero else float(max_logit / vlogit)

    def _score(self, z):
        residual = np.linalg.norm((self.head.head_input(z) - self.origin) @ self.residual_basis, axis=1)
        return logsumexp(self.head.logits(z)) - self.alpha * residual


class FDBD(Detector):
    """Mean distance of h to the predicted class's decision boundaries over ||h - mean training h|| (Liu & Qin 2024)."""

    label = "fDBD"
    family = "distance"
    uses_train = True

    def _fit(self, z, y):
        self.train_mean = self.head.head_input(z).mean(axis=0)
        w = self.head.weight
        gap = np.linalg.norm(w[:, None, :] - w[None, :, :], axis=2)
        # identical weight vectors (and the diagonal) have no boundary between them: the term is 0
        self.boundary_norm = np.where(gap > 0, gap, np.inf)

    def _score(self, z):
        logits = self.head.logits(z)
        pred = logits.argmax(axis=1)
        top = logits[np.arange(len(logits)), pred][:, None]
        boundary = np.sum((top - logits) / self.boundary_norm[pred], axis=1) / (self.head.num_classes - 1)
        spread = np.linalg.norm(self.head.head_input(z) - self.train_mean, axis=1)
        return boundary / np.maximum(spread, L2_EPS)
