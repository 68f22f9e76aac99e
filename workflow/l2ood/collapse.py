"""Neural-collapse measures (paper Eqs. 2-4) and feature-norm probes (Eq. 8, Figure 3).

Shapes: ``features`` (N, d) float, ``labels`` (N,) int in 0..C-1; every class must be present.
"""

import numpy as np


def class_means(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, d) class means and the (d,) global mean of class means (u_G in the paper)."""
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"neural-collapse measures need at least 2 classes, got {len(classes)}")
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    return means, means.mean(axis=0)


def nc1(features: np.ndarray, labels: np.ndarray) -> float:
    """Eq. 2: Tr(Sigma_W Sigma_B^+) / C, within-class variability relative to between-class.

    0 when every image sits on its class mean (complete variability collapse). Computed without
    the d x d pseudo-inverse: with B the (C, d) centred class means, Sigma_B = B^T B / C and
    (B^T B)^+ = B^+ B^+T, so Tr(Sigma_W Sigma_B^+) / C = ||X B^+||_F^2 / N for the (N, d)
    class-centred features X (a C x d pinv instead of d x d: 2048-d features every epoch).
    """
    f = np.asarray(features, dtype=np.float64)
    means, mu_g = class_means(f, labels)
    classes = np.unique(labels)
    centred = f - means[np.searchsorted(classes, labels)]
    b_pinv = np.linalg.pinv(means - mu_g, rcond=1e-10)  # (d, C)
    return float(np.sum((centred @ b_pinv) ** 2) / len(f))


def equinormality(features: np.ndarray, labels: np.ndarray) -> float:
    """Eq. 3: coefficient of variation of ||u_c - u_G|| over classes; 0 when equinormal.

    std_c is the sample standard deviation (ddof=1), as Papyan et al.'s code computes it
    (``torch.std(M_norms) / torch.mean(M_norms)``, torch's default unbiased std); the paper's Eq. 3
    says only "standard deviation". For C classes it is sqrt(C / (C - 1)) times the ddof=0 value
    (1.054 for CIFAR-10, 1.005 for CIFAR-100)."""
    means, mu_g = class_means(np.asarray(features, dtype=np.float64), labels)
    norms = np.linalg.norm(means - mu_g, axis=1)
    return float(norms.std(ddof=1) / norms.mean())


def equiangularity(features: np.ndarray, labels: np.ndarray) -> float:
    """Eq. 4 with the sign fixed: mean over c != c' of |cos(u_c - u_G, u_c' - u_G) + 1/(C-1)|.

    0 at a simplex equiangular tight frame, where every pair has cosine -1/(C-1).
    """
    means, mu_g = class_means(np.asarray(features, dtype=np.float64), labels)
    m = means - mu_g
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    c = len(m)
    gram = m @ m.T
    off = ~np.eye(c, dtype=bool)
    return float(np.abs(gram[off] + 1.0 / (c - 1)).mean())


def collapse_measures(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "nc1": nc1(features, labels),
        "equinormality": equinormality(features, labels),
        "equiangularity": equiangularity(features, labels),
    }


def norm_variability(norms: np.ndarray) -> np.ndarray:
    """Coefficient of variation (std / mean) of feature norms per row; (E, N) -> (E,).

    Scale-free, so the growth of L2 models' norms alone does not read as variability.
    """
    norms = np.asarray(norms, dtype=np.float64)
    return norms.std(axis=1) / norms.mean(axis=1)


def change_by_norm_group(sq_change: np.ndarray, final_norms: np.ndarray, edges=None, groups: int = 4):
    """Eq. 8: mean squared feature change per epoch for images grouped by their final norm.

    ``sq_change`` (E, N): ||z_i - z_{i-1}||^2 per image between consecutive epochs.
    ``edges``: the paper's fixed norm boundaries (e.g. [0, 10, 20, 30, inf]); default: quantile
    groups of equal size, since norm ranges differ between models. Returns (labels, (G, E) array).
    """
    final_norms = np.asarray(final_norms, dtype=np.float64)
    if edges is None:
        edges = np.quantile(final_norms, np.linspace(0, 1, groups + 1))
        edges[-1] = np.inf
    edges = np.asarray(edges, dtype=np.float64)
    which = np.clip(np.searchsorted(edges, final_norms, side="right") - 1, 0, len(edges) - 2)
    labels, rows = [], []
    for g in range(len(edges) - 1):
        sel = which == g
        if not sel.any():
            continue
        hi = "inf" if np.isinf(edges[g + 1]) else f"{edges[g + 1]:.3g}"
        labels.append(f"[{edges[g]:.3g}, {hi}) n={sel.sum()}")
        rows.append(np.asarray(sq_change)[:, sel].mean(axis=1))
    return labels, np.stack(rows)
