"""The domain features of a collection: per (model, task), the EMD similarity, LogME, LEEP and
their gains, computed at the resolution the model trains at with the store's `FeatureSettings`,
exactly as `suggest` computes them for a target (so `collect` -> `metatrain` gives a surrogate
equal in kind to the shipped one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quicktune.metadataset.schema import DEFAULT_FEATURE_SETTINGS, FeatureSettings
from quicktune.metadataset.storage import MetaDatasetStore

if TYPE_CHECKING:
    from quicktune.collect.plan import Plan
    from quicktune.data import TaskSpec


@dataclass(frozen=True)
class FeatureJob:
    """Domain features of `model` on the task `spec` seen at `image_size`, stored under `dataset`."""

    spec: TaskSpec
    model: str
    image_size: int
    dataset: str
    pretrained: bool = True


def missing_features(store: MetaDatasetStore, jobs: list[FeatureJob]) -> list[FeatureJob]:
    """The jobs whose (dataset, model) has no domain feature row in `store` yet."""
    have = store.read_features()
    done = set(zip(have["dataset"], have["model"])) if len(have) else set()
    return [j for j in jobs if (j.dataset, j.model) not in done]


def collect_features(
    plan: Plan,
    settings: FeatureSettings = DEFAULT_FEATURE_SETTINGS,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Compute and append the plan's missing domain features; returns how many (model, task)
    pairs were computed. The store records `settings` and refuses features of another setting."""
    from quicktune.data import load_task
    from quicktune.features import domain_features, features_to_rows

    store = MetaDatasetStore(plan.store)
    store.record_feature_settings(settings)
    todo = missing_features(store, plan.feature_jobs)
    for i, job in enumerate(todo):
        if on_event is not None:
            on_event({"kind": "features", "model": job.model, "dataset": job.dataset, "index": i, "total": len(todo)})
        data = load_task(job.spec, job.image_size, skip_unreadable=plan.skip_unreadable)
        feats = domain_features(job.model, data, weights_dir=plan.weights_dir, settings=settings,
                                image_size=job.image_size, pretrained=job.pretrained)
        store.append_features(features_to_rows(job.dataset, job.model, feats))
    return len(todo)
