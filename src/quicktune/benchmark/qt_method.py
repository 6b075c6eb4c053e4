"""Quick-Tune and its ablations as replay-benchmark methods.

- "quicktune":         meta-trained surrogate, cost-aware EI.
- "quicktune-no-cost": the same meta-trained surrogate, plain EI (cost ignored).
- "quicktune-no-zs":   meta-trained without the zero-shot loss (`meta_train(zero_shot_weight=0)`),
                       cost-aware EI: what the zero-shot loss costs or buys the search.
- "quicktune-no-meta": no meta-training (a fresh surrogate trained on the target's observations
                       only, DyHPO-like), cost-aware EI with an observed-cost model.

`prepare(fold)` meta-trains one surrogate per leave-datasets-out fold on the OTHER folds'
datasets only (validation datasets for checkpoint selection are drawn from those too) and caches
it in the fold's cache dir under a name that includes the fold key and the settings, written
atomically; both meta-trained methods load the same file. Settings are module-level so a
benchmark script can `configure(...)` them before the worker processes are forked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quicktune.benchmark.methods import FoldContext, MethodContext
from quicktune.protocol import Optimizer
from quicktune.space import SearchSpace

# Meta-training settings (see quicktune.surrogate.fit.meta_train).
META_TRAIN: dict[str, Any] = {
    "steps": 4000, "lr": 3e-3, "batch_size": 64, "mean": "residual", "early_bias": 0.5, "val_fraction": 0.2,
    "val_every": 250, "seed": 0,
}
# Optimizer settings shared by the three methods (see quicktune.optimizer.QuickTune). Cheaper than
# the library defaults (10 refit steps on up to 256 points): the committed benchmark replays ~80,000
# optimizer steps on a shared 2-core machine and has to finish in well under two hours.
OPTIMIZER: dict[str, Any] = {"refit_steps": 5, "max_train_points": 128}


def configure(meta_train: dict[str, Any] | None = None, optimizer: dict[str, Any] | None = None) -> None:
    """Change the settings (before run_benchmark forks its workers)."""
    META_TRAIN.update(meta_train or {})
    OPTIMIZER.update(optimizer or {})


# Bump when meta-training code changes what it produces, so stale cached checkpoints are not reused.
CACHE_VERSION = 4  # 3: surrogate checkpoint format 2 (feature masking, clipping; issue 10); 4: zero-shot loss, dataset shift


# The meta-training change of the "quicktune-no-zs" ablation.
NO_ZERO_SHOT: dict[str, Any] = {"zero_shot_weight": 0.0}


def meta_train_settings(meta_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """META_TRAIN with a method's overrides: what `prepare` meta-trains with and the cache key hashes."""
    return {**META_TRAIN, **(meta_overrides or {})}


def surrogate_path(fold: FoldContext, meta_overrides: dict[str, Any] | None = None) -> Path:
    blob = json.dumps({"v": CACHE_VERSION, **meta_train_settings(meta_overrides)}, sort_keys=True,
                      default=str).encode()
    tag = hashlib.sha256(blob).hexdigest()[:8]
    return Path(fold.cache_dir) / f"quicktune-{fold.key}-{tag}.pt"


def prepare(fold: FoldContext, meta_overrides: dict[str, Any] | None = None) -> None:
    """Meta-train this fold's surrogate once (skipped when the cached checkpoint exists)."""
    path = surrogate_path(fold, meta_overrides)
    if path.exists():
        return
    if not fold.train_datasets:
        raise ValueError(f"fold {fold.fold}: no training datasets to meta-train on (use more than one fold)")
    import torch

    from quicktune.surrogate.fit import meta_train

    torch.set_num_threads(1)
    result = meta_train(fold.train, **meta_train_settings(meta_overrides))
    result.surrogate.save(path)


def prepare_no_zero_shot(fold: FoldContext) -> None:
    """`prepare` for the "quicktune-no-zs" ablation."""
    prepare(fold, NO_ZERO_SHOT)


@dataclass(frozen=True)
class QuickTuneFactory:
    """Builds a QuickTune optimizer for one (dataset, seed) job (picklable: a dataclass)."""

    meta: bool = True
    cost_aware: bool = True
    zero_shot_loss: bool = True
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __call__(self, space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> Optimizer:
        from quicktune.optimizer.quicktune import QuickTune
        from quicktune.surrogate.gp import Surrogate

        meta_overrides = None if self.zero_shot_loss else NO_ZERO_SHOT
        surrogate = Surrogate.load(surrogate_path(context.fold, meta_overrides)) if self.meta else None
        return QuickTune(
            space, max_epochs, seed,
            surrogate=surrogate,
            dataset_features=context.task.dataset_features,
            pair_features=context.task.pair_features,
            cost_aware=self.cost_aware,
            **{**OPTIMIZER, **self.overrides},
        )


quicktune = QuickTuneFactory(meta=True, cost_aware=True)
quicktune_no_cost = QuickTuneFactory(meta=True, cost_aware=False)
quicktune_no_meta = QuickTuneFactory(meta=False, cost_aware=True)
quicktune_no_zero_shot = QuickTuneFactory(meta=True, cost_aware=True, zero_shot_loss=False)
