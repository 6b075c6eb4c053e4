"""The user's task (target) and its features in the surrogate's terms."""

from __future__ import annotations

import os

import numpy as np
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quicktune.data import TaskData, TaskSpec, load_task
from quicktune.design import training_size
from quicktune.metadataset.schema import DEFAULT_FEATURE_SETTINGS, FeatureSettings
from quicktune.suggest.errors import SuggestError

if TYPE_CHECKING:
    from quicktune.surrogate.gp import Surrogate

# The v1 campaign's feature settings (kept as names; the rule is `FeatureSettings`).
FEATURE_SAMPLES = DEFAULT_FEATURE_SETTINGS.n_samples
FEATURE_SEED = DEFAULT_FEATURE_SETTINGS.seed
# Without a test/ folder, this share of each class of the training images is held out as the test
# split (seeded by the task's seed): the search never sees it (TaskSpec.test_fraction; `test=F`).
DEFAULT_TEST_FRACTION = 0.2


# ------------------------------------------------------------------------------------------------
# The user's task and its features
# ------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """The user's task: where it is and at which resolution each model sees it."""

    spec: TaskSpec
    weights_dir: str | None = None
    max_image_size: int | None = None
    skip_unreadable: bool = False
    _loaded: dict[int, TaskData] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.task_name

    def size_for(self, model: str) -> int:
        """The resolution `model` trains at (the spec's size, else its input size capped)."""
        from quicktune.hub import model_info

        return int(self.spec.size or training_size(model_info(model, self.weights_dir).input_size, self.max_image_size))

    def data(self, size: int) -> TaskData:
        """The task loaded at `size` (decoded once per size; `load_task` caches on disk too)."""
        if size not in self._loaded:
            self._loaded[size] = load_task(self.spec, size, skip_unreadable=self.skip_unreadable)
        return self._loaded[size]

    def release(self) -> None:
        self._loaded.clear()


def open_target(
    data: str | os.PathLike[str],
    models: Sequence[str],
    weights_dir: str | os.PathLike[str] | None = None,
    max_image_size: int | None = None,
    skip_unreadable: bool = False,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> Target:
    """Validate the data folder (DataError with one line on bad input) by loading it once.

    The task holds out a test split (its test/ folder, else `test_fraction` of train) unless the
    spec sets `test=` itself (`test=0`: no test split)."""
    if max_image_size is not None and not 4 <= max_image_size <= 4096:
        raise SuggestError(f"`4 <= max_image_size <= 4096` must hold, but got {max_image_size}")
    spec = TaskSpec.parse(str(data))
    spec = replace(spec, path=str(Path(spec.path).expanduser().resolve()),
                   test_fraction=spec.test_fraction if spec.test_fraction is not None else test_fraction)
    target = Target(spec, str(weights_dir) if weights_dir is not None else None, max_image_size, skip_unreadable)
    if not models:
        raise SuggestError("no models to consider")
    target.data(target.size_for(models[0]))
    return target


@dataclass
class TaskFeatures:
    """What the surrogate sees of the task: dataset descriptors, per-model domain features and
    model descriptors (all by name; the surrogate's scaler scales them)."""

    dataset: dict[str, float]
    pairs: dict[str, dict[str, float]]
    models: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "pairs": self.pairs, "models": self.models}


def task_features(
    target: Target,
    models: Sequence[str],
    *,
    settings: FeatureSettings,
    pretrained: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_model: Callable[[str, int, int], None] | None = None,
) -> TaskFeatures:
    """Dataset descriptors + domain features of every model (cached) + hub model descriptors.

    `settings` are the surrogate's (`feature_settings(surrogate)`): features computed any other way
    would not be the ones it learned from, so there is no default.
    on_model(model, i, n) is called before model i (0-based) of n, and once more with i == n.
    """
    from quicktune.features import dataset_descriptors, domain_features
    from quicktune.hub import model_info

    models = list(models)
    ds = dataset_descriptors(target.data(target.size_for(models[0])))
    pairs: dict[str, dict[str, float]] = {}
    descs: dict[str, dict[str, float]] = {}
    for i, m in enumerate(models):
        if on_model is not None:
            on_model(m, i, len(models))
        size = target.size_for(m)
        pairs[m] = domain_features(m, target.data(size), weights_dir=target.weights_dir, settings=settings,
                                   cache_dir=cache_dir, image_size=size, pretrained=pretrained)
        descs[m] = model_info(m, target.weights_dir).descriptors()
    if on_model is not None:
        on_model("", len(models), len(models))
    return TaskFeatures(ds, pairs, descs)


def out_of_range(surrogate: Surrogate, features: TaskFeatures, limit: float = 3.0) -> list[tuple[str, str, float]]:
    """The target's features that lie more than `limit` meta-training standard deviations from the
    meta-training mean: [(model or "", feature, z)], largest |z| first. The surrogate sees them
    clipped to its scaler's limit (3 SDs), so predictions there are "as at the edge of the
    meta-dataset", not extrapolations."""
    scaler = surrogate.scaler
    found: dict[tuple[str, str], float] = {}
    for m, pair in features.pairs.items():
        z = scaler.zscores([{**features.dataset, **pair}])[0]
        for name, v in zip(scaler.names, z):
            if np.isfinite(v) and abs(v) > limit:
                key = ("" if name in features.dataset else m, name)
                found[key] = max(found.get(key, 0.0), float(v), key=abs)
    return sorted(((m, n, v) for (m, n), v in found.items()), key=lambda t: -abs(t[2]))
