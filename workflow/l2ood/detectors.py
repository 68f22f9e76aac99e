"""Post-hoc OoD detectors on stored features: pure numpy, float64 inside, "higher = more in-distribution".

Every detector reads the same things about one model (docs/detectors.md has the table with sources):

* ``features`` z, (N, d): the encoder's penultimate features *before* any L2 normalization;
* a ``Head``: the classifier's weight W (C, d), bias b (C,) and ``head_normalized``, which says how
  the head turns a feature into logits:

  - ``head_normalized=False``: logits = W z + b, the "normalization turned off at test time" of the
    paper's Appendix A.2; for a No-L2 model this is exactly what the model computes;
  - ``head_normalized=True``: logits = W z/||z|| + b, what an L2-head model computes.

  For a No-L2 model only False is the model's own head; True asks "what if this head read unit
  features". The caller decides; nothing here guesses from the run name.
* for fitted detectors, the training split's features and labels (``fit``).

What ``head_normalized`` changes: everything built from the head, i.e. the logits and the detectors
on them (MSP, MaxLogit, energy, GEN, logit norm), and the detectors that rework the head's input
h = phi(z) (phi = z/||z|| or identity): ReAct clips z and feeds the clipped feature through the head
(normalizing it again when the head does: ReAct inserted in front of the head); DICE sparsifies W
with the mean training h; ViM and fDBD work in the space W acts on, h. What it does not change: the
feature-space detectors Mahalanobis, RMDS and KNN read z (KNN normalizes it anyway), and the feature
norm is ||z||.

Usage::

    head = Head(W, b, head_normalized=False)
    scores = score_all(head, {"cifar10": z_id, "svhn": z_svhn}, train_features, train_labels)
    scores["knn"]["svhn"]                      # (N_svhn,) float64, higher = more ID

or one detector: ``DETECTORS["vim"]().fit(head, train_features, train_labels).score(z)``.

Saturation: MSP and GEN are computed in log space as strictly increasing transforms of the
published scores (log-odds of the MSP, minus the log of GEN's sum), so logit gaps of 40, 100 or
1000 still give distinct scores where the softmax itself has rounded to exactly 1. A strictly
increasing transform leaves AUROC and FPR95 unchanged wherever the original has no ties.
"""

from dataclasses import dataclass

import numpy as np

#: eps of z / max(||z||, eps): the L2 head's value (models/heads.py L2_EPS, F.normalize's default).
L2_EPS = 1e-12
#: elements (float64) of one block of test x training distances in KNN: 2**24 * 8 B = 128 MiB.
KNN_BLOCK = 2**24


# --------------------------------------------------------------------------------------------
# inputs


def _as_features(z, d: int | None = None, what: str = "features") -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (images x feature dimensions), got shape {z.shape}")
    if d is not None and z.shape[1] != d:
        raise ValueError(f"{what} have {z.shape[1]} dimensions but the head's weight has {d}: wrong model?")
    if not np.isfinite(z).all():
        raise ValueError(f"{what} contain {int(np.sum(~np.isfinite(z)))} NaN or infinite values")
    return z


def _as_labels(y, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"train_labels must have shape ({n},), one per training feature; got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"train_labels must be integers (class indices), got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"train_labels must be in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def unit(z: np.ndarray) -> np.ndarray:
    """z / max(||z||, eps) row by row, as the L2 head (a zero feature stays zero)."""
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), L2_EPS)


@dataclass(frozen=True, eq=False)
class Head:
    """The classifier: ``weight`` W (C, d), ``bias`` b (C,) and how it reads the feature.

    ``head_normalized``: True, logits = W z/||z|| + b (an L2-head model as trained); False,
    logits = W z + b (the raw feature; a No-L2 model as trained). No default: the caller decides.
    """

    weight: np.ndarray
    bias: np.ndarray
    head_normalized: bool

    def __post_init__(self):
        w = np.asarray(self.weight, dtype=np.float64)
        b = np.asarray(self.bias, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] < 2:
            raise ValueError(f"weight must be (classes >= 2, feature dimensions), got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"bias must have shape ({w.shape[0]},) to match weight {w.shape}, got {b.shape}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError("weight or bias contain NaN or infinite values")
        if not isinstance(self.head_normalized, (bool, np.bool_)):
            raise TypeError(f"head_normalized must be True or False, got {self.head_normalized!r}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "head_normalized", bool(self.head_normalized))

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def head_input(self, z: np.ndarray) -> np.ndarray:
        """h = phi(z), what the linear layer multiplies: z/||z|| or z."""
        return unit(z) if self.head_normalized else z

    def logits(self, z: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """W h + b for raw features z (``weight`` replaces W, e.g. DICE's sparsified one)."""
        return self.head_input(z) @ (self.weight if weight is None else weight).T + self.bias


# --------------------------------------------------------------------------------------------
# numerics


def logsumexp(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """log sum exp along ``axis``, shifted by the max (finite for any finite input)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def msp_log_odds(logits: np.ndarray) -> np.ndarray:
    """log(MSP / (1 - MSP)) = -logsumexp_{j != argmax}(l_j - l_max), so MSP = sigmoid(this).

    Computed from the logit gaps, never from probabilities: a gap of 1000 gives about 1000, not
    log(1/0). Two tied top logits give <= 0 (MSP <= 1/2).
    """
    s = -np.sort(-logits, axis=1)  # descending
    return -logsumexp(s[:, 1:] - s[:, :1])


def gen_log(logits: np.ndarray, gamma: float, m: int) -> np.ndarray:
    """log G, G = sum over the top-m softmax probabilities p of p^gamma (1 - p)^gamma (GEN's sum).

    In log space: log p_j = l_j - lse(l); log(1 - p_j) = log1p(-p_j), except for the top class
    (the only one that can exceed 1/2, where 1 - p cancels), whose 1 - p is the others' mass,
    lse(l_{j != top}) - lse(l).
    """
    ranked = -np.sort(-logits, axis=1)  # descending
    lse = logsumexp(ranked)[:, None]
    log_p = ranked[:, :m] - lse
    log_1mp = np.empty_like(log_p)
    log_1mp[:, 0] = logsumexp(ranked[:, 1:]) - lse[:, 0]
    log_1mp[:, 1:] = np.log1p(-np.exp(log_p[:, 1:]))
    return logsumexp(gamma * (log_p + log_1mp))


class _Gaussian:
    """Squared Mahalanobis distances to a set of means under one shared covariance.

    The covariance is the maximum-likelihood estimate (divided by N, as sklearn's
    EmpiricalCovariance, which OpenOOD uses) and is inverted by the pseudo-inverse: eigenvalues
    at or below rtol * the largest, rtol = d * float64 eps (scipy.linalg.pinvh's default, the one
    sklearn's precision_ uses), are dropped, so a singular covariance (fewer images than
    dimensions, a dead feature, duplicate images) gives finite distances that ignore the
    directions the training data never varied in. All-identical training features (zero
    covariance) give distance 0 everywhere.
    """

    def __init__(self, centered: np.ndarray, means: np.ndarray, origin: np.ndarray):
        cov = centered.T @ centered / len(centered)
        lam, vec = np.linalg.eigh(cov)
        keep = lam > cov.shape[0] * np.finfo(np.float64).eps * max(lam.max(), 0.0)  # none if cov = 0
        self.origin = origin  # subtracted first: smaller numbers, less cancellation below
        self.whiten = vec[:, keep] / np.sqrt(lam[keep])  # (d, rank)
        self.means = (means - origin) @ self.whiten  # (K, rank)
        self.mean_sq = np.sum(self.means**2, axis=1)

    def distances(self, z: np.ndarray) -> np.ndarray:
        """(N, K) squared distances (z - mu_k)^T Sigma^+ (z - mu_k)."""
        y = (z - self.origin) @ self.whiten
        d = np.sum(y**2, axis=1)[:, None] - 2 * y @ self.means.T + self.mean_sq[None, :]
        return np.maximum(d, 0.0)


# --------------------------------------------------------------------------------------------
# detectors


class Detector:
    """Base: ``fit(head, train_features, train_labels)`` once, then ``score(features)`` per test set."""

    label = ""
    #: whether ``fit`` reads the training split (False: only the head)
    uses_train = False
    #: whether the scores depend on the head (W, b, head_normalized); False: on z alone
    uses_head = True

    def fit(self, head: Head, train_features=None, train_labels=None) -> "Detector":
        if not isinstance(head, Head):
            raise TypeError(f"fit needs a Head(weight, bias, head_normalized), got {type(head).__name__}")
        self.head = head
        if self.uses_train:
            if train_features is None or train_labels is None:
                raise ValueError(f"{type(self).__name__} is fitted on the training split: pass its features and labels")
            z = _as_features(train_features, head.dim, "train_features")
            if len(z) == 0:
                raise ValueError("train_features are empty")
            self._fit(z, _as_labels(train_labels, len(z), head.num_classes))
        return self

    def _fit(self, z: np.ndarray, y: np.ndarray) -> None:
        pass

    def score(self, features) -> np.ndarray:
        if not hasattr(self, "head"):
            raise RuntimeError(f"{type(self).__name__}.score before fit: call fit(head, ...) first")
        return self._score(_as_features(features, self.head.dim))

    def _score(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MSP(Detector):
    """Maximum softmax probability (Hendrycks & Gimpel 2017), as its log-odds log(MSP/(1-MSP))."""

    label = "MSP"

    def _score(self, z):
        return msp_log_odds(self.head.logits(z))


class MaxLogit(Detector):
    """Largest logit (Hendrycks et al. 2022)."""

    label = "MaxLogit"

    def _score(self, z):
        return self.head.logits(z).max(axis=1)


class Energy(Detector):
    """Negative energy T logsumexp(l / T), T = 1 (Liu et al. 2020; OpenOOD ebo.yml temperature 1)."""

    label = "Energy"

    def _score(self, z):
        return logsumexp(self.head.logits(z))


class GEN(Detector):
    """Generalized entropy (Liu et al. 2023): -log sum_{top M} p^g (1-p)^g, g = 0.1, M = 100 (OpenOOD gen.yml)."""

    label = "GEN"

    def __init__(self, gamma: float = 0.1, m: int = 100):
        self.gamma, self.m = gamma, m

    def _score(self, z):
        return -gen_log(self.head.logits(z), self.gamma, self.m)


class ReAct(Detector):
    """Energy after clipping features at the 90th percentile of training activations (Sun et al. 2021)."""

    label = "ReAct"
    uses_train = True

    def __init__(self, percentile: float = 90.0):
        self.percentile = percentile

    def _fit(self, z, y):
        self.threshold = float(np.percentile(z, self.percentile))  # over all N x d activations

    def _score(self, z):
        return logsumexp(self.head.logits(np.minimum(z, self.threshold)))


class DICE(Detector):
    """Energy with the weights whose contribution W * mean training h is in the lowest 90% zeroed (Sun & Li 2022)."""

    label = "DICE"
    uses_train = True

    def __init__(self, sparsity: float = 90.0):
        self.sparsity = sparsity  # percent of weights dropped

    def _fit(self, z, y):
        contribution = self.head.weight * self.head.head_input(z).mean(axis=0)[None, :]
        threshold = np.percentile(contribution, self.sparsity)
        self.masked_weight = np.where(contribution > threshold, self.head.weight, 0.0)

    def _score(self, z):
        return logsumexp(self.head.logits(z, self.masked_weight))


class Mahalanobis(Detector):
    """-min_c (z - mu_c)^T Sigma^+ (z - mu_c), class means, shared covariance (Lee et al. 2018), no preprocessing."""

    label = "Mahalanobis"
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


class RMDS(Detector):
    """Relative Mahalanobis (Ren et al. 2021): -min_c [MD_c(z) - MD_0(z)], MD_0 a Gaussian fitted to all training features."""

    label = "RMDS"
    uses_head = False
    uses_train = True

    def _fit(self, z, y):
        self.gaussian = _class_gaussian(z, y, self.head.num_classes)
        mean = z.mean(axis=0)
        self.background = _Gaussian(z - mean, mean[None, :], mean)

    def _score(self, z):
        return -(self.gaussian.distances(z) - self.background.distances(z)).min(axis=1)


class KNN(Detector):
    """-distance of z/||z|| to its k-th nearest normalized training feature, k = 50 (Sun et al. 2022, CIFAR-10)."""

    label = "KNN"
    uses_head = False
    uses_train = True

    def __init__(self, k: int = 50):
        self.k = k

    def _fit(self, z, y):
        if len(z) < self.k:
            raise ValueError(f"KNN with k={self.k} needs at least {self.k} training features, got {len(z)}")
        self.bank = unit(z)
        self.bank_sq = np.sum(self.bank**2, axis=1)  # 1, or 0 for a zero feature

    def _score(self, z):
        q = unit(z)
        q_sq = np.sum(q**2, axis=1)
        out = np.empty(len(q))
        rows = max(1, KNN_BLOCK // len(self.bank))
        for i in range(0, len(q), rows):
            d2 = q_sq[i : i + rows, None] + self.bank_sq[None, :] - 2 * q[i : i + rows] @ self.bank.T
            kth = np.partition(d2, self.k - 1, axis=1)[:, self.k - 1]
            out[i : i + rows] = -np.sqrt(np.maximum(kth, 0.0))
        return out


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


class FeatureNorm(Detector):
    """The paper's score: ||z||, the feature's L2 norm before normalization."""

    label = "Feature norm"
    uses_head = False

    def _score(self, z):
        return np.linalg.norm(z, axis=1)


class LogitNorm(Detector):
    """||W h + b||, the L2 norm of the logits (the paper's Table 3)."""

    label = "Logit norm"

    def _score(self, z):
        return np.linalg.norm(self.head.logits(z), axis=1)


#: name -> detector class (constructed with its cited defaults); the first docstring line says what it is.
DETECTORS: dict[str, type[Detector]] = {
    "msp": MSP,
    "max_logit": MaxLogit,
    "energy": Energy,
    "gen": GEN,
    "react": ReAct,
    "dice": DICE,
    "mahalanobis": Mahalanobis,
    "rmds": RMDS,
    "knn": KNN,
    "vim": ViM,
    "fdbd": FDBD,
    "feature_norm": FeatureNorm,
    "logit_norm": LogitNorm,
}

#: name -> printed name of the method (``label`` below adds which logits it read)
LABELS = {name: cls.label for name, cls in DETECTORS.items()}

#: which logits a score read -> what its printed name adds: the one naming rule every table, figure, CSV
#: and caption follows (l2ood.scores, l2ood.tables, l2ood.figures). "head": the model's own head, W z/||z||
#: + b for an L2 model and W z + b for No L2 (nothing added: "MSP" is that number everywhere); "raw":
#: W z + b, the classifier on the unnormalized feature for both heads (paper A.2), "MSP (Wz+b)".
LOGITS_LABELS = {"head": "", "raw": " (Wz+b)"}


def label(name: str, logits: str = "head") -> str:
    """The printed name of a score or detector ``name`` (a key of ``DETECTORS``) on ``logits`` (a key of
    ``LOGITS_LABELS``); a detector that does not read the head (Mahalanobis, KNN, ...) gets no suffix."""
    if logits not in LOGITS_LABELS:
        raise ValueError(f"unknown logits {logits!r}; use one of {sorted(LOGITS_LABELS)}")
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(DETECTORS)}")
    return LABELS[name] + (LOGITS_LABELS[logits] if DETECTORS[name].uses_head else "")


def score_all(
    head: Head,
    features: dict[str, np.ndarray],
    train_features=None,
    train_labels=None,
    names=None,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit each detector once and score every test set: ``{detector: {test set: (N,) scores}}``.

    ``features``: test set name -> raw features (N, d), any float dtype (float16 as stored is fine).
    ``names``: detectors to run (default: all of ``DETECTORS``); the training split is needed when
    one of them is fitted on it.
    """
    names = list(DETECTORS) if names is None else list(names)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise KeyError(f"unknown detectors {unknown}; known: {sorted(DETECTORS)}")
    # convert once (float16 -> float64), not once per detector
    features = {dataset: _as_features(z, head.dim, f"features of {dataset}") for dataset, z in features.items()}
    if train_features is not None:
        train_features = _as_features(train_features, head.dim, "train_features")
    out = {}
    for name in names:
        detector = DETECTORS[name]().fit(head, train_features, train_labels)
        out[name] = {dataset: detector.score(z) for dataset, z in features.items()}
    return out
