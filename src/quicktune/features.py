"""Dataset descriptors and per-(model, dataset) transferability features.

Two layers:

* Pure functions on arrays (numpy float64; torch tensors are accepted and converted):
  `emd_similarity` (Cui et al. 2018), `logme` (You et al. 2021), `leep` (Nguyen et al. 2020),
  `class_means`, `stratified_sample`, `dataset_descriptors`.
* `domain_features(model_name, data, ...)`: runs a hub model over a seeded, stratified sample of
  the target data and returns {emd_sim, emd_distance, logme, leep, source_confidence, logme_gain,
  leep_gain} (FEATURE_NAMES), cached as
  JSON per (model, dataset fingerprint, options). `features_to_rows` turns them into
  metadataset FEATURE_SCHEMA rows for `MetaDatasetStore.append_features`.

Making source prototypes and target class means comparable (EMD)
-----------------------------------------------------------------
Cui et al. compare raw penultimate class-mean features of source and target images (gamma=0.01).
Here the source images are usually unavailable, so the source side is the classifier's weight rows
(K x D). Those are not feature means: their scale is arbitrary, softmax is unchanged when the same
vector is added to every row (so only centred rows mean anything), and by the neural-collapse
geometry of a trained classifier (Papyan et al. 2020) a weight row points along the *globally
centred* class mean (w_k ~ mu_k - mu_global), while raw ReLU features all share a large common
offset. So by default (`center=True, normalize="l2"`) each side is centred by its own weighted mean
and every prototype / class mean is L2-normalised: the ground distance is then a chordal distance
on the unit sphere, d = sqrt(2 - 2 cos), in [0, 2], and the same transform applies to real source
class means, so both kinds of prototype give comparable numbers. On the CIFAR-10 ResNets, whose
source images are available, the classifier-weight EMD ranks (model, task) pairs like the
source-class-mean EMD (Spearman 0.99; 0.87 without centring; benchmarks/feature_sanity.py).
`center=False, normalize="none", gamma=0.01` reproduces Cui et al.'s raw setting.

Caveat: with uniform weights over K source prototypes the EMD must move mass to every source
class, so a 1001-class ImageNet model sits near d = 1.3 for every target while a 10-class CIFAR
model spans 0.3 to 1.1: compare emd_sim across tasks for one model, or give the surrogate the
model's num_source_classes alongside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


# ---------------------------------------------------------------------------------------------
# Running a hub model over a dataset
# ---------------------------------------------------------------------------------------------
# Bump when anything below changes the numbers, so stale cache entries are not reused.
FEATURES_VERSION = 1


def _images_labels(data: Any) -> tuple[Any, np.ndarray]:
    """The (N x C x H x W) uint8 images and (N,) labels of a loaded dataset (duck-typed).

    A `quicktune.data.TaskData` contributes its training split: the images fine-tuning learns from.
    """
    if hasattr(data, "train") and hasattr(data.train, "images"):
        data = data.train
    if not (hasattr(data, "images") and hasattr(data, "labels")):
        raise TypeError(
            f"`data` must have `images` (N x C x H x W uint8) and `labels` (N,), but got {type(data).__name__}"
        )
    images, labels = data.images, _np(data.labels, np.int64)
    if len(images) != len(labels):
        raise ValueError(
            f"`data.images` and `data.labels` must have the same length, but got {len(images)} and {len(labels)}"
        )
    return images, labels


def dataset_fingerprint(data: Any) -> str:
    """A content hash identifying a loaded dataset (its own `fingerprint` when it has one)."""
    own = getattr(data, "fingerprint", None)
    if own is None and hasattr(data, "train"):
        return dataset_fingerprint(data.train)  # a TaskData: features use its training split
    if callable(own):
        own = own()
    if isinstance(own, str) and own:
        return own
    import hashlib

    images, labels = _images_labels(data)
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(labels).tobytes())
    for img in images if isinstance(images, (list, tuple)) else [images]:
        arr = _np(img, None) if hasattr(img, "detach") else np.asarray(img)
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _preprocess(batch: Any, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """uint8 (n x C x H x W) -> float (n x 3 x size x size), normalised with the model's mean/std."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(batch)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    x = x.float() / 255.0
    if x.shape[1] == 1:  # grayscale: the same intensity on all three channels
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 4:  # RGBA: drop alpha
        x = x[:, :3]
    elif x.shape[1] != 3:
        raise ValueError(f"images must have 1, 3 or 4 channels, but got {x.shape[1]}")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def classifier_prototypes(model: Any) -> np.ndarray | None:
    """The source classifier's weight rows, a (K x D) array, or None when the model has none."""
    import torch.nn as nn

    clf = model.get_classifier() if hasattr(model, "get_classifier") else None
    weight = getattr(clf, "weight", None)
    if not isinstance(clf, (nn.Linear, nn.Conv2d)) or weight is None or weight.shape[0] == 0:
        return None
    return _np(weight.reshape(weight.shape[0], -1))


def extract(
    model: Any,
    data: Any,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    image_size: int,
    n_samples: int = 500,
    seed: int = 0,
    batch_size: int = 50,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Penultimate features and source-class probabilities of a stratified sample of `data`.

    Returns (features: an (n x D) array, probs: an (n x K) softmax array or None when the model
    has no source classifier, labels: the (n,) labels), n = min(n_samples, N).
    """
    import torch

    images, labels = _images_labels(data)
    idx = stratified_sample(labels, n_samples, seed)
    has_classifier = classifier_prototypes(model) is not None
    clf = model.get_classifier() if has_classifier else None
    model.eval()
    feats, probs = [], []
    with torch.inference_mode():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            if isinstance(images, (list, tuple)):
                batch = torch.cat([_preprocess(images[i], image_size, mean, std) for i in chunk])
            else:
                batch = _preprocess(images[torch.as_tensor(chunk)] if hasattr(images, "detach") else images[chunk],
                                    image_size, mean, std)
            pre = model.forward_head(model.forward_features(batch), pre_logits=True)
            pre = pre.reshape(pre.shape[0], -1)
            feats.append(pre.double().numpy())
            if clf is not None:
                # The background class of the Coral 1001-way classifiers is kept: it is just a class.
                probs.append(torch.softmax(clf(pre).double(), dim=1).numpy())
    return np.concatenate(feats), (np.concatenate(probs) if probs else None), labels[idx]


def transfer_features(
    features: np.ndarray,
    probs: np.ndarray | None,
    labels: np.ndarray,
    prototypes: np.ndarray | None,
    prototype_weights: np.ndarray | None = None,
    gamma: float = DEFAULT_GAMMA,
    center: bool = True,
    normalize: Literal["l2", "none"] = "l2",
) -> dict[str, float]:
    """The FEATURE_NAMES values from extracted arrays.

    features: (N x D), probs: (N x K) or None, labels: (N,), prototypes: (K' x D) or None.
    Quantities that need what is missing (no classifier, no prototypes) are NaN.

    LogME and LEEP rank models on one task but drift with the task's number of classes (a
    one-vs-rest target of 20 classes is easier to regress than one of 10; the label prior alone
    scores log(1/C) in LEEP). For comparisons across tasks, as the surrogate makes, two baselined
    versions are added: logme_gain = logme(features) - logme(a constant feature), a per-sample log
    Bayes factor of the features against an intercept-only model, and leep_gain = leep - mean log
    P(y) (>= 0: the EEP's P(y|z) is one EM step from the prior predictor, which cannot lower the
    likelihood).
    """
    nan = float("nan")
    y = _np(labels, np.int64)
    score = logme(features, y)
    prior = np.unique(y, return_counts=True)[1] / len(y)
    prior_loglik = float(np.mean(np.log(prior[np.unique(y, return_inverse=True)[1]])))
    lp = leep(probs, y) if probs is not None else nan
    if prototypes is not None:
        sim, dist = emd_similarity(features, labels, prototypes, prototype_weights, gamma, center, normalize)
    else:
        sim, dist = nan, nan
    return {
        "emd_sim": sim,
        "emd_distance": dist,
        "logme": score,
        "leep": lp,
        # How sure the source model is on target images: high when they look like source images.
        "source_confidence": float(probs.max(axis=1).mean()) if probs is not None else nan,
        "logme_gain": score - logme(np.ones((len(y), 1)), y),
        "leep_gain": lp - prior_loglik,
    }


def default_cache_dir() -> Any:
    """$QUICKTUNE_FEATURES_CACHE, else ~/.cache/quicktune/features."""
    import os
    from pathlib import Path

    env = os.environ.get("QUICKTUNE_FEATURES_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "quicktune" / "features"


def _weights_identity(model_name: str, weights_dir: Any) -> str:
    """Which weights `model_name` resolves to (file name, size, mtime), so new weights miss the cache."""
    from quicktune import hub

    try:
        p = hub.weights_file(model_name, weights_dir)
    except (hub.HubError, AttributeError):
        return f"timm:{model_name}"
    st = p.stat()
    return f"{p.name}:{st.st_size}:{st.st_mtime_ns}"


def _compute_domain_features(
    model_name: str,
    data: Any,
    weights_dir: Any,
    n_samples: int,
    seed: int,
    image_size: int | None,
    source_data: Any | None,
    gamma: float,
    center: bool,
    normalize: Literal["l2", "none"],
    pretrained: bool,
) -> dict[str, float]:
    from quicktune import hub

    info = hub.model_info(model_name, weights_dir)
    model = hub.create_model(model_name, num_classes=None, weights_dir=weights_dir, pretrained=pretrained)
    size = int(image_size or info.input_size)
    feats, probs, labels = extract(model, data, info.mean, info.std, size, n_samples, seed)
    if source_data is not None:
        # Real source images: their class-mean features, weighted by source class frequency.
        src_feats, _, src_labels = extract(model, source_data, info.mean, info.std, size, n_samples, seed)
        prototypes, proto_weights, _ = class_means(src_feats, src_labels)
    else:
        prototypes, proto_weights = classifier_prototypes(model), None
    return transfer_features(feats, probs, labels, prototypes, proto_weights, gamma, center, normalize)


def domain_features(
    model_name: str,
    data: Any,
    weights_dir: Any = None,
    n_samples: int = 500,
    seed: int = 0,
    cache_dir: Any = None,
    source_data: Any | None = None,
    image_size: int | None = None,
    gamma: float = DEFAULT_GAMMA,
    center: bool = True,
    normalize: Literal["l2", "none"] = "l2",
    pretrained: bool = True,
    refresh: bool = False,
) -> dict[str, float]:
    """Transferability features of hub model `model_name` for the target dataset `data`.

    `data` is a `quicktune.data.TaskData` (its training split is used) or anything with `images`
    (an (N x C x H x W) uint8 tensor or a list of (C x H x W) ones) and `labels` (N,). A seeded,
    class-stratified sample of `n_samples` images is resized to `image_size` (default: the model's
    native input size) and normalised with the model's mean/std; the penultimate features give
    LogME and the EMD similarity, the source classifier's softmax gives LEEP and
    source_confidence (the mean top-1 probability); logme_gain / leep_gain are those two
    baselined against the label prior (see `transfer_features`).
    EMD prototypes: the source classifier's weight rows (uniform weights), or, when `source_data`
    (the source images, e.g. CIFAR-10 for the CIFAR ResNets) is given, its class-mean features
    weighted by class frequency. Keys: FEATURE_NAMES; NaN where the model has no classifier.

    Results are cached as JSON under `cache_dir` (default `default_cache_dir()`) per (model,
    weights file, dataset fingerprint, options); a repeated call returns the cached dict without
    loading the model. `refresh=True` recomputes.
    """
    import hashlib
    import json
    import os
    import tempfile
    import time
    from pathlib import Path

    options = {
        "version": FEATURES_VERSION,
        "model": model_name,
        "weights": _weights_identity(model_name, weights_dir) if pretrained else "random-init",
        "dataset": dataset_fingerprint(data),
        "source": dataset_fingerprint(source_data) if source_data is not None else None,
        "n_samples": int(n_samples),
        "seed": int(seed),
        "image_size": image_size,
        "gamma": float(gamma),
        "center": bool(center),
        "normalize": normalize,
    }
    key = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:24]
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"{model_name.replace('/', '_')}-{key}.json"
    if path.is_file() and not refresh:
        try:
            return {k: float(v) for k, v in json.loads(path.read_text())["features"].items()}
        except (ValueError, KeyError, TypeError):
            pass  # a damaged entry is simply recomputed and overwritten
    t0 = time.perf_counter()
    feats = _compute_domain_features(
        model_name, data, weights_dir, n_samples, seed, image_size, source_data, gamma, center, normalize,
        pretrained,
    )
    record = {"options": options, "features": feats, "seconds": time.perf_counter() - t0}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)  # NaN is written as NaN, which json.loads reads back
        os.replace(tmp, path)  # atomic: a concurrent reader sees no entry or the whole entry
    except OSError:
        pass  # an unwritable cache only costs a recomputation next time
    return feats


def features_to_rows(
    dataset: str, model: str, feats: Mapping[str, float], written_at: float | None = None
) -> list[dict[str, Any]]:
    """FEATURE_SCHEMA rows (dataset, model, name, value, written_at) for
    `MetaDatasetStore.append_features`; model="" for dataset-level features such as
    `dataset_descriptors(data)`."""
    import time

    t = time.time() if written_at is None else float(written_at)
    return [
        {"dataset": str(dataset), "model": str(model), "name": str(k), "value": float(v), "written_at": t}
        for k, v in feats.items()
    ]
