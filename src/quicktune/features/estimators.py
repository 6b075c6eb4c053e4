"""Transferability estimators on arrays (EMD similarity, LogME, LEEP) and dataset descriptors."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from quicktune.metadataset.schema import DATASET_DESCRIPTORS

FEATURE_NAMES = ("emd_sim", "emd_distance", "logme", "leep", "source_confidence", "logme_gain", "leep_gain")

# With centred, L2-normalised prototypes the EMD lies in [0, 2] (0: the same class directions;
# sqrt(2): orthogonal, i.e. unrelated). gamma=1 maps it to sim in [0.14, 1], unrelated near 0.24.
# Measured on the real hub models x 3 tasks (benchmarks/feature_sanity.py) d spans 0.30 to 1.37,
# i.e. sim in 0.25 to 0.74: the middle of (0, 1), where gamma=2 would squeeze most pairs to ~0.07.
DEFAULT_GAMMA = 1.0


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy array from a numpy array, a list or a (possibly grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check_features_labels(features: np.ndarray, labels: np.ndarray, name: str = "features") -> None:
    if features.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-d (N x D) array, but got shape {features.shape}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"`labels` must be a 1-d array of length N={features.shape[0]}, but got shape {labels.shape}")
    if features.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one sample, but got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` must be finite, but got {int((~np.isfinite(features)).sum())} non-finite values")


# ---------------------------------------------------------------------------------------------
# Domain similarity (Cui et al. 2018)
# ---------------------------------------------------------------------------------------------
def class_means(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class mean features and class frequencies.

    features: an (N x D) array; labels: an (N,) integer array.
    Returns (means: a (C x D) array, weights: a (C,) array summing to 1, classes: the (C,) sorted labels).
    """
    f = _np(features)
    y = _np(labels, np.int64)
    _check_features_labels(f, y)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), f.shape[1]))
    np.add.at(sums, inverse, f)
    return sums / counts[:, None], counts / counts.sum(), classes


def _prepare_prototypes(points: np.ndarray, weights: np.ndarray, center: bool, normalize: str) -> np.ndarray:
    if center:
        # Centre by the weighted mean so the result does not depend on the classes' frequencies.
        points = points - weights @ points
    if normalize == "l2":
        norms = np.linalg.norm(points, axis=1, keepdims=True)
        # A zero row (e.g. a single target class after centring) has no direction; leave it at 0.
        points = points / np.where(norms > 1e-12, norms, 1.0)
    return points


def _import_pot_numpy_only() -> None:
    """Import POT without its optional TensorFlow/JAX/CuPy backends (numpy is all we use here):
    when TensorFlow is installed, POT's backend probing alone imports it, which takes seconds."""
    import os
    import sys

    if "ot" not in sys.modules:
        for key in ("POT_BACKEND_DISABLE_TENSORFLOW", "POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_CUPY"):
            os.environ.setdefault(key, "1")
    import ot  # noqa: F401


def emd_similarity(
    target_features: Any,
    target_labels: Any,
    source_prototypes: Any,
    source_weights: Any | None = None,
    gamma: float = DEFAULT_GAMMA,
    center: bool = True,
    normalize: Literal["l2", "none"] = "l2",
) -> tuple[float, float]:
    """Earth Mover's domain similarity of Cui et al. (2018).

    target_features: an (N x D) array of penultimate features of target images;
    target_labels: an (N,) integer array; source_prototypes: a (K x D) array (source class-mean
    features, or classifier weight rows); source_weights: a (K,) non-negative array (source class
    frequencies; uniform when None).

    The target side is the target class means weighted by class frequency. Before the ground
    distances are taken, each side is optionally centred by its own weighted mean (`center`) and
    each row L2-normalised (`normalize="l2"`); see the module docstring for why. The ground distance
    is Euclidean, the EMD is solved exactly (POT's network simplex, `ot.emd2`) and
    similarity = exp(-gamma * distance).

    Returns (similarity in (0, 1], distance >= 0).
    """
    _import_pot_numpy_only()
    import ot
    from scipy.spatial.distance import cdist

    if gamma < 0:
        raise ValueError(f"`gamma >= 0` must hold, but got {gamma=}")
    if normalize not in ("l2", "none"):
        raise ValueError(f"`normalize` must be 'l2' or 'none', but got {normalize!r}")
    means, tw, _ = class_means(target_features, target_labels)
    protos = _np(source_prototypes)
    if protos.ndim != 2 or protos.shape[1] != means.shape[1] or protos.shape[0] == 0:
        raise ValueError(
            f"`source_prototypes` must be a (K x D) array with D={means.shape[1]} (the feature width), "
            f"but got shape {protos.shape}"
        )
    if source_weights is None:
        sw = np.full(protos.shape[0], 1.0 / protos.shape[0])
    else:
        sw = _np(source_weights)
        if sw.shape != (protos.shape[0],) or (sw < 0).any() or sw.sum() <= 0:
            raise ValueError(
                f"`source_weights` must be a non-negative ({protos.shape[0]},) array with a positive sum, "
                f"but got shape {sw.shape} and sum {float(sw.sum()) if sw.size else 0.0}"
            )
        sw = sw / sw.sum()
    a = _prepare_prototypes(means, tw, center, normalize)
    b = _prepare_prototypes(protos, sw, center, normalize)
    # cdist computes each distance directly (exactly 0 for equal rows), unlike the |a|^2 + |b|^2 - 2ab
    # expansion, whose round-off would make identical domains look ~1e-8 apart.
    cost = cdist(a, b, metric="euclidean")
    # emd2 needs both marginals to sum to exactly the same value; renormalise in float64.
    distance = float(ot.emd2(tw / tw.sum(), sw / sw.sum(), cost))
    distance = max(distance, 0.0)  # tiny negative values from round-off
    return math.exp(-gamma * distance), distance


# ---------------------------------------------------------------------------------------------
# LogME (You et al. 2021)
# ---------------------------------------------------------------------------------------------
def _logme_evidence_from_svd(
    u: np.ndarray, sigma: np.ndarray, n_features: int, y: np.ndarray, max_iter: int = 100, tol: float = 1e-6
) -> tuple[float, float, float]:
    """Maximised log evidence of Bayesian linear regression y = F w + eps for one target vector.

    u: the (N x k) left singular vectors of F (N x D), sigma: the (k,) squared singular values
    (eigenvalues of F^T F), y: an (N,) target. Prior w ~ N(0, I/alpha), noise eps ~ N(0, I/beta);
    alpha and beta are found by MacKay's fixed-point updates, all in the SVD basis, so each
    iteration costs O(k) instead of a D x D solve.
    Returns (log evidence, alpha, beta) (total, not per sample).
    """
    n = y.shape[0]
    k = sigma.shape[0]
    x2 = (u.T @ y) ** 2  # squared coordinates of y in the column space of F
    res_perp = max(float(y @ y - x2.sum()), 0.0)  # the part of y no w can fit
    eps = 1e-10

    def fit(t: float) -> tuple[float, float, float]:
        # Posterior mean m = beta A^-1 F^T y with A = alpha I + beta F^T F, in the SVD basis.
        gamma = float((sigma / (sigma + t)).sum())  # effective number of parameters
        m2 = float((sigma * x2 / (sigma + t) ** 2).sum())  # ||m||^2
        res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + res_perp  # ||y - F m||^2
        return gamma, m2, res2

    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma, m2, res2 = fit(t)
        alpha = gamma / (m2 + eps)
        beta = (n - gamma) / (res2 + eps)
        if abs(alpha / beta - t) / t < tol:
            break
    # Evaluate at the final (alpha, beta), with m recomputed for them.
    _, m2, res2 = fit(alpha / beta)
    # log|A| over all D eigenvalues: the D - k zero eigenvalues of F^T F contribute log(alpha) each.
    logdet = float(np.log(alpha + beta * sigma).sum()) + (n_features - k) * math.log(alpha)
    evidence = (
        0.5 * n_features * math.log(alpha)
        + 0.5 * n * math.log(beta)
        - 0.5 * logdet
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * n * math.log(2 * math.pi)
    )
    return evidence, alpha, beta


def logme(features: Any, labels: Any, max_iter: int = 100, tol: float = 1e-6) -> float:
    """LogME (You et al. 2021): the mean per-sample log marginal evidence of a linear model.

    features: an (N x D) array; labels: an (N,) integer array with at least 2 distinct values.
    Each class gives a one-vs-rest regression target (y == c) as a {0, 1} vector; its evidence
    under Bayesian linear regression on the features is maximised over the prior precision alpha
    and the noise precision beta by the fast fixed-point algorithm with one thin SVD of the
    features shared by all classes. Returns the mean over classes of evidence / N (higher means
    the features make the labels easier to predict linearly). Typical range: about -1 to 2.
    """
    f = _np(features)
    y = _np(labels, np.int64)
    _check_features_labels(f, y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"LogME needs at least 2 classes, but got {len(classes)} ({classes.tolist()})")
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = [
        _logme_evidence_from_svd(u, sigma, d, (y == c).astype(np.float64), max_iter, tol)[0] / n for c in classes
    ]
    return float(np.mean(evidences))


# ---------------------------------------------------------------------------------------------
# LEEP (Nguyen et al. 2020)
# ---------------------------------------------------------------------------------------------
def leep(source_probs: Any, labels: Any) -> float:
    """Log Expected Empirical Prediction (Nguyen et al. 2020).

    source_probs: an (N x K) array of the source classifier's predicted probabilities (softmax)
    on the target images; labels: an (N,) integer array of target labels.
    Empirical joint P(y, z) = (1/N) sum_{i: y_i = y} theta_z(x_i); conditional P(y|z) = P(y, z)/P(z);
    LEEP = (1/N) sum_i log sum_z P(y_i|z) theta_z(x_i). Always <= 0; closer to 0 is better.
    """
    p = _np(source_probs)
    y = _np(labels, np.int64)
    _check_features_labels(p, y, "source_probs")
    if (p < 0).any():
        raise ValueError(f"`source_probs` must be non-negative, but got min {float(p.min())}")
    row_sums = p.sum(axis=1)
    if not np.allclose(row_sums, 1.0, atol=1e-4):
        raise ValueError(
            "`source_probs` rows must sum to 1 (softmax outputs), but got sums in "
            f"[{float(row_sums.min()):.6f}, {float(row_sums.max()):.6f}]"
        )
    p = p / row_sums[:, None]
    n = p.shape[0]
    classes, inverse = np.unique(y, return_inverse=True)
    joint = np.zeros((len(classes), p.shape[1]))  # (C x K)
    np.add.at(joint, inverse, p)
    joint /= n
    marginal = joint.sum(axis=0)  # P(z), (K,)
    # A source class that gets (numerically) no mass contributes nothing to the sum below.
    cond = joint / np.where(marginal > 0, marginal, 1.0)  # P(y|z), (C x K)
    eep = np.einsum("ik,ik->i", p, cond[inverse])  # expected empirical prediction of the true label
    return float(np.mean(np.log(np.clip(eep, 1e-300, None))))


# ---------------------------------------------------------------------------------------------
# Sampling and dataset descriptors
# ---------------------------------------------------------------------------------------------
def stratified_sample(labels: Any, n_samples: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified sample of about `n_samples` items.

    labels: an (N,) integer array. Every class keeps its share (largest-remainder rounding) and at
    least one item while n_samples >= the number of classes; all N indices when n_samples >= N.
    """
    y = _np(labels, np.int64)
    if n_samples < 1:
        raise ValueError(f"`n_samples >= 1` must hold, but got {n_samples=}")
    n = y.shape[0]
    if n_samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n_samples / n)
    take = np.floor(quota).astype(int)
    if n_samples >= len(classes):
        take = np.maximum(take, 1)
    # Hand out what rounding left over to the largest remainders (ties by a seeded shuffle).
    leftover = n_samples - int(take.sum())
    if leftover > 0:
        order = np.lexsort((rng.random(len(classes)), -(quota - np.floor(quota))))
        for i in order:
            if leftover == 0:
                break
            if take[i] < counts[i]:
                take[i] += 1
                leftover -= 1
    picked = [rng.choice(np.flatnonzero(y == c), size=int(t), replace=False) for c, t in zip(classes, take) if t > 0]
    return np.sort(np.concatenate(picked))


def dataset_descriptors(data: Any) -> dict[str, float]:
    """The dataset-level meta-features (schema.DATASET_DESCRIPTORS) of a loaded dataset.

    `data` is anything with a `descriptors()` method returning those keys (quicktune.data's loaded
    datasets), or with `images` (an (N x C x H x W) uint8 tensor/array) and `labels` (N,).
    Returns {n_samples, n_classes, image_size, channels} as floats; image_size is max(H, W).
    """
    if hasattr(data, "descriptors") and callable(data.descriptors):
        raw = dict(data.descriptors())
    elif hasattr(data, "images") and hasattr(data, "labels"):
        shape = tuple(data.images.shape)
        if len(shape) != 4:
            raise ValueError(f"`data.images` must be an (N x C x H x W) array, but got shape {shape}")
        raw = {
            "n_samples": shape[0],
            "n_classes": len(np.unique(_np(data.labels, np.int64))),
            "image_size": max(shape[2], shape[3]),
            "channels": shape[1],
        }
    else:
        raise TypeError(
            f"`data` must have a descriptors() method or `images` and `labels`, but got {type(data).__name__}"
        )
    missing = [k for k in DATASET_DESCRIPTORS if k not in raw]
    if missing:
        raise ValueError(f"dataset descriptors must include {list(DATASET_DESCRIPTORS)}, but {missing} are missing")
    return {k: float(raw[k]) for k in DATASET_DESCRIPTORS}
