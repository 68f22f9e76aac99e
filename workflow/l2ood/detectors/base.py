"""What every detector shares: the inputs' checks, the ``Head``, the numerics (log-sum-exp, MSP
log-odds, GEN, one shared-covariance Gaussian) and the ``Detector`` base class (l2ood.detectors
describes the conventions)."""

from dataclasses import dataclass

import numpy as np

#: eps of z / max(||z||, eps): the L2 head's value (models/heads.py L2_EPS, F.normalize's default).
L2_EPS = 1e-12


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

#: what a detector reads, in the order tables and figures show them (``Detector.family``): the logits
#: (MSP, energy, ...), a reshaped head input or weight (ReAct, DICE), distances in feature space
#: (Mahalanobis, KNN, ...), a norm (the paper's feature norm, the logit norm), or the network itself
#: (scores that need a forward or backward pass, like ODIN: the GPU features job).
FAMILIES = ("logits", "shaping", "distance", "norm", "network")


class Detector:
    """Base: ``fit(head, train_features, train_labels)`` once, then ``score(features)`` per test set."""

    label = ""
    #: one of ``FAMILIES``: how tables and figures group the detectors
    family = ""
    #: whether ``fit`` reads the training split (False: only the head)
    uses_train = False
    #: whether the scores depend on the head (W, b, head_normalized); False: on z alone
    uses_head = True
    #: True: scored by the features job from the network (ODIN), read with ``score_stored``, not ``score``
    stored = False

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
