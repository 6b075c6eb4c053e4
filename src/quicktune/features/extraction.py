"""The model forward pass: penultimate features and source predictions of a task's images."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from quicktune.features.estimators import (
    DEFAULT_GAMMA,
    _np,
    emd_similarity,
    leep,
    logme,
    stratified_sample,
)

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
