"""`best-default`: a static baseline, what a practitioner does without a tuner. The largest model at
its default hyperparameters, trained for the full horizon; then the next largest, and so on.

- Size: the parameter count timm reports for the model name (built on the meta device: no
  weights, no memory), else, for names timm does not know, the mean recorded seconds per epoch
  of that model on the fold's training datasets (never the target's).
- Defaults: PyTorch's AdamW defaults (lr 1e-3, weight decay 0.01) with a cosine schedule; each
  model's run is the candidate nearest to that point (rule 1 of the base, over the
  hyperparameters the default names; the others are ignored).
The order is the same for every seed.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

import numpy as np

from quicktune.atomic import atomic_write
from quicktune.benchmark.methods import FoldContext, MethodContext
from quicktune.benchmark.peers.base import MODEL, Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import Config, SearchSpace

class _Default(TypedDict):
    optimizer: str
    elr: float
    weight_decay: float
    sched: str


DEFAULT: _Default = {"optimizer": "adamw", "elr": 1e-3, "weight_decay": 0.01, "sched": "cosine"}


@lru_cache(maxsize=None)
def timm_params(name: str) -> int | None:
    """Parameter count of timm model `name` (None when timm can not build it)."""
    try:
        import timm
        import torch

        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            logging.getLogger("timm").setLevel(logging.ERROR)
            model = timm.create_model(name, pretrained=False)
        return int(sum(p.numel() for p in model.parameters()))
    except Exception:  # noqa: BLE001 - any failure means "timm does not know this name"
        return None


def model_sizes(fold: FoldContext, models: Sequence[str]) -> dict[str, float]:
    """model -> size: log10 of timm's parameter count when known; else a value in (-1, 0], below
    every known count, growing with the model's mean recorded seconds per epoch on the fold's
    training datasets."""
    sizes: dict[str, float] = {}
    secs: dict[str, list[float]] = {}
    for d in fold.train_datasets:
        t = fold.train.task(d)
        for c, row in zip(t.configs, t.cost):
            if np.isfinite(row).any():
                secs.setdefault(c.model, []).append(float(np.nanmean(row)))
    for m in models:
        n = timm_params(m)
        if n is not None:
            sizes[m] = math.log10(max(n, 1))
        else:
            s = float(np.mean(secs[m])) if m in secs else 0.0
            sizes[m] = -1.0 / (1.0 + s)  # in (-1, 0]: below any known count, more seconds = larger
    return sizes


def sizes_path(fold: FoldContext) -> Path:
    return Path(fold.cache_dir) / f"best-default-sizes-{fold.key}.json"


def prepare(fold: FoldContext) -> None:
    """Model sizes of every model the fold's table holds (once; cached)."""
    path = sizes_path(fold)
    if not path.exists():
        # The fold's view holds only its training datasets; a model only a target has is sized
        # when its factory runs.
        models = sorted({c.model for d in fold.train_datasets for c in fold.train.task(d).configs})
        path.parent.mkdir(parents=True, exist_ok=True)
        sizes = model_sizes(fold, models)
        with atomic_write(path, "w") as f:  # parallel benchmark processes may prepare the same fold
            f.write(json.dumps(sizes, indent=1))


class BestDefault(PeerOptimizer):
    stop_only = False

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int, sizes: dict[str, float]) -> None:
        super().__init__(space, max_epochs, seed)
        models = sorted({c.model for c in space.configs}, key=lambda m: (-sizes.get(m, -2.0), m))
        probe = space.encode([Config(models[0], DEFAULT["elr"], DEFAULT["weight_decay"])])[0].numpy()
        names = space.hp_names
        point: dict[str, object] = {n: float(probe[names.index(n)]) for n in ("log_elr", "log_weight_decay")
                                    if n in self.candidates.numeric_names}
        point.update({k: v for k, v in DEFAULT.items() if k in self.domain.categorical})
        model_of = np.array([c.model for c in space.configs])
        self.order = [self.candidates.nearest({**point, MODEL: m}, allowed=model_of == m) for m in models]
        self._next = 0

    def propose(self) -> Job | None:
        while self._next < len(self.order):
            cid = self.order[self._next]
            self._next += 1
            if self.can_continue(cid):
                return Job(cid, self.max_epochs)
        return None

    def observe(self, job: Job, observation: Observation) -> None:
        return None


def make(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> BestDefault:
    path = sizes_path(context.fold)
    sizes = json.loads(path.read_text()) if path.exists() else {}
    missing = sorted({c.model for c in space.configs} - set(sizes))
    if missing:  # models only the target has: sized now (timm, or the training-fold seconds)
        sizes.update(model_sizes(context.fold, missing))
    return BestDefault(space, max_epochs, seed, sizes)
