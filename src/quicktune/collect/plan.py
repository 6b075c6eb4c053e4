"""The collection plan: configs (sampled or a grid) x tasks x seeds, minus what the store holds."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from quicktune.collect.features import FeatureJob
from quicktune.data import TaskSpec
from quicktune.design import (  # re-exported: the collection's space lives in design
    ELR_RANGE as ELR_RANGE,
    MOMENTA as MOMENTA,
    P_ZERO_WEIGHT_DECAY as P_ZERO_WEIGHT_DECAY,
    WEIGHT_DECAY_RANGE as WEIGHT_DECAY_RANGE,
    sample_hyperparameters as sample_hyperparameters,
    training_size as training_size,
)
from quicktune.finetune.recipe import Recipe
from quicktune.metadataset.schema import DATASET_DESCRIPTORS
from quicktune.metadataset.storage import MetaDatasetStore
from quicktune.space import Config

TERMINAL_STATUSES = ("diverged",)


class CollectError(ValueError):
    """Bad collection input (configs, grid file, executor, models)."""


def load_grid(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Configs from a JSON file: a list of objects {"elr", "weight_decay"?, "momentum"?,
    "model"?, any extra hyperparameter}, or one object of lists {"elr": [...], "weight_decay":
    [...], "momentum": [...]} meaning their full factorial grid. Entries without "model" are
    crossed with the collection's models."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise CollectError(f"{p}: no such grid file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CollectError(f"{p}: not a readable JSON grid ({str(e).splitlines()[0]})") from None
    if isinstance(raw, dict):
        keys = ["elr", "weight_decay", "momentum"]
        if "elr" not in raw or not all(isinstance(raw.get(k, []), list) for k in keys):
            raise CollectError(f"{p}: a grid object maps elr (and optionally weight_decay, momentum) to lists of values")
        raw = [{"elr": e, "weight_decay": w, "momentum": m} for e in raw["elr"]
               for w in raw.get("weight_decay", [0.0]) for m in raw.get("momentum", [0.9])]
    if not isinstance(raw, list) or not raw or not all(isinstance(c, dict) and "elr" in c for c in raw):
        raise CollectError(f"{p}: the grid must be a non-empty list of objects, each with at least an 'elr'")
    return raw


def make_configs(models: Sequence[str], hyperparams: Sequence[Mapping[str, Any]]) -> list[Config]:
    """models x hyperparameters (entries that name a model are kept as they are), de-duplicated."""
    out: list[Config] = []
    for hp in hyperparams:
        hp = dict(hp)
        elr, wd, mom = hp.pop("elr"), hp.pop("weight_decay", 0.0), hp.pop("momentum", 0.9)
        named = hp.pop("model", None)
        extras = hp.pop("extras", {}) or {}
        extras.update(hp)
        for m in [named] if named else models:
            try:
                cfg = Config(m, float(elr), float(wd), float(mom), extras)
                Recipe.from_config(cfg)  # the fine-tuner's extras, checked before any job starts
                out.append(cfg)
            except (TypeError, ValueError) as e:
                raise CollectError(f"bad config {dict(elr=elr, weight_decay=wd, momentum=mom)}: {e}") from None
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------------
# Plan
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One run to (continue to) train. `stored` are the epochs already in the store."""

    spec: TaskSpec  # the task, with `size` set when the collection fixes the resolution
    config: Config
    seed: int
    max_epochs: int
    dataset: str
    run_key: str
    image_size: int  # resolution the run trains at
    stored: tuple[int, ...] = ()
    batch_size: int = 64
    pretrained: bool = True

    def describe(self) -> str:
        return f"{self.dataset} {self.config.describe()}"


@dataclass
class Plan:
    store: Path
    work_dir: Path
    jobs: list[Job]
    n_runs: int  # runs planned in all (complete ones included)
    n_complete: int  # skipped: already complete in the store
    descriptors: dict[str, dict[str, float]]  # task name -> dataset descriptors
    weights_dir: str | None = None
    skip_unreadable: bool = False
    feature_jobs: list[FeatureJob] = field(default_factory=list)  # one per (task, model)

    @property
    def epochs_to_train(self) -> int:
        return sum(j.max_epochs - len(j.stored) for j in self.jobs)


def default_work_dir(store: str | os.PathLike[str]) -> Path:
    """The store's own checkpoint folder: `<store>/../.checkpoints/<store name>-<hash>/`, where the
    hash is of the store's resolved path.

    Beside the store, never inside it (checkpoints are large, the store may be committed or
    shared), and one folder per store: sibling stores in the same parent folder must not see each
    other's checkpoints (a run continued from another store's checkpoint would skip epochs).
    """
    import hashlib

    root = Path(store).resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return root.parent / ".checkpoints" / f"{root.name}-{digest}"


def _store_state(store: MetaDatasetStore) -> dict[str, tuple[set[int], bool]]:
    """run_key -> (epochs stored, ended early: a terminal status such as diverged)."""
    df = store.read()
    out: dict[str, tuple[set[int], bool]] = {}
    for key, g in df.groupby("run_key"):
        out[str(key)] = (set(int(e) for e in g["epoch"]), bool(g["status"].isin(TERMINAL_STATUSES).any()))
    return out


def _check_models(models: Sequence[str], weights_dir: str | None, pretrained: bool) -> None:
    from quicktune import hub

    for m in models:
        hub.model_info(m, weights_dir)  # HubError (a ValueError) for unknown names
        if pretrained and m in hub.registered_models():
            hub.weights_file(m, weights_dir)  # HubError when the weights are not there


def plan_collection(
    specs: Sequence[TaskSpec | str],
    models: Sequence[str],
    hyperparams: Sequence[Mapping[str, Any]],
    max_epochs: int,
    store: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int | None = None,
    max_image_size: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    pretrained: bool = True,
    skip_unreadable: bool = False,
    write_descriptors: bool = True,
) -> Plan:
    """Validate the inputs, cache every task's decoded data, and list the runs still to train.

    Resolution: a task spec's own `size` wins, then `image_size` for every task, else each model
    trains at its input size capped at `max_image_size` (e.g. 64 px on a CPU: the task name stays
    the same for every model and the resolution joins the run key).

    Raises DataError / HubError / CollectError (all ValueErrors) on bad input, before anything
    is trained. Dataset descriptors are appended to the store's features (model "").
    """
    from quicktune.data import load_task
    from quicktune.finetune import run_identity
    from quicktune.hub import model_info

    if max_epochs < 1:
        raise CollectError(f"`epochs >= 1` must hold, but got epochs={max_epochs}")
    if not models:
        raise CollectError("give at least one model")
    wd = str(weights_dir) if weights_dir is not None else None
    _check_models(models, wd, pretrained)
    configs = make_configs(models, hyperparams)
    st = MetaDatasetStore(store)
    state = _store_state(st)
    # Absolute paths: workers (spawned processes, Ray workers) need not share our working directory.
    tasks = [s if isinstance(s, TaskSpec) else TaskSpec.parse(s) for s in specs]
    tasks = [replace(t, path=str(Path(t.path).expanduser().resolve())) for t in tasks]
    if not tasks:
        raise CollectError("give at least one dataset (a task spec PATH[:options])")
    jobs: list[Job] = []
    feature_jobs: dict[tuple[str, str], FeatureJob] = {}
    descriptors: dict[str, dict[str, float]] = {}
    n_runs = n_complete = 0
    for spec in tasks:
        spec = spec.with_size(image_size)
        loaded: dict[int, Any] = {}
        for config in configs:
            size = spec.size or training_size(model_info(config.model, wd).input_size, max_image_size)
            if size not in loaded:
                loaded[size] = load_task(spec, size, skip_unreadable=skip_unreadable)  # validates + caches
            data = loaded[size]
            dataset, key = run_identity(data, config, max_epochs, seed, batch_size=batch_size, pretrained=pretrained,
                                        weights_dir=wd)
            descriptors.setdefault(data.name, data.descriptors())
            feature_jobs.setdefault((dataset, config.model), FeatureJob(spec, config.model, int(size), dataset, bool(pretrained)))
            n_runs += 1
            stored, ended = state.get(key, (set(), False))
            if ended or len(stored) >= max_epochs:
                n_complete += 1
                continue
            jobs.append(Job(spec, config, int(seed), int(max_epochs), dataset, key, int(size),
                            tuple(sorted(stored)), int(batch_size), bool(pretrained)))
        loaded.clear()  # free the tensors: workers read the disk cache
    if write_descriptors:
        _write_descriptors(st, descriptors)
    return Plan(Path(store).resolve(), Path(work_dir).resolve() if work_dir else default_work_dir(store), jobs, n_runs,
                n_complete, descriptors, str(Path(wd).expanduser().resolve()) if wd else None, skip_unreadable,
                list(feature_jobs.values()))


def _write_descriptors(store: MetaDatasetStore, descriptors: Mapping[str, Mapping[str, float]]) -> None:
    have = store.read_features()
    known = {(r.dataset, r.model, r.name): r.value for r in have.itertuples()} if len(have) else {}
    rows = [
        {"dataset": d, "model": "", "name": n, "value": float(v[n])}
        for d, v in descriptors.items() for n in DATASET_DESCRIPTORS
        if known.get((d, "", n)) != float(v[n])
    ]
    if rows:
        store.append_features(rows)
