"""Per-(model, dataset) domain features, cached on disk, and their store rows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from quicktune.atomic import atomic_write
from quicktune.features.estimators import DEFAULT_GAMMA, class_means
from quicktune.features.extraction import (
    FEATURES_VERSION,
    classifier_prototypes,
    dataset_fingerprint,
    extract,
    transfer_features,
)
from quicktune.metadataset.schema import FeatureSettings


def default_cache_dir() -> Path:
    """$QUICKTUNE_FEATURES_CACHE, else `features/` in the quicktune cache root (quicktune.cachedir)."""
    from quicktune.cachedir import cache_dir

    return cache_dir("features", "QUICKTUNE_FEATURES_CACHE")


def _weights_identity(model_name: str, weights_dir: str | os.PathLike[str] | None) -> str:
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
    weights_dir: str | os.PathLike[str] | None,
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
    prototypes: Any
    proto_weights: Any
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
    weights_dir: str | os.PathLike[str] | None = None,
    n_samples: int = 500,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    source_data: Any | None = None,
    image_size: int | None = None,
    gamma: float = DEFAULT_GAMMA,
    center: bool = True,
    normalize: Literal["l2", "none"] = "l2",
    pretrained: bool = True,
    refresh: bool = False,
    settings: FeatureSettings | None = None,
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
    `settings` (a `FeatureSettings`), when given, sets the sample size and seed (and must not be
    combined with other `n_samples` / `seed` values): the way `collect` and `suggest` call it.
    """
    import hashlib
    import json
    import time
    from pathlib import Path

    if settings is not None:
        if (n_samples, seed) not in ((500, 0), (settings.n_samples, settings.seed)):
            raise ValueError(f"give either settings={settings} or n_samples/seed, but got n_samples={n_samples}, seed={seed} too")
        n_samples, seed = settings.n_samples, settings.seed
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
        # atomic: a concurrent reader sees no entry or the whole entry
        with atomic_write(path, "w") as f:
            json.dump(record, f, indent=1)  # NaN is written as NaN, which json.loads reads back
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
