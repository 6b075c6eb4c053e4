"""Benchmark methods by name: name -> factory(space, max_epochs, seed, context) -> Optimizer.

A method is a `Method(name, factory, prepare=None)`:

- `factory(space, max_epochs, seed, context) -> Optimizer` builds a fresh optimizer for one
  (dataset, seed) job. `context` is a `MethodContext`: the held-out target `context.task` (use its
  features, never its curves: the replay objective answers those), `context.fold.train` (a
  `CurveTable` holding only the datasets of the *other* folds: meta-train on it),
  `context.fold.cache_dir` and `context.fold.key` (name cached artefacts with the key, which
  changes whenever the training datasets do).
- `prepare(fold) -> None`, optional, runs once per fold before any job of that fold, in one worker,
  so that expensive per-fold work (meta-training a surrogate) happens once and is cached in
  `fold.cache_dir` instead of being raced by parallel jobs. The factory then loads the cache.

Either may be given as a callable or as a lazy "module:attribute" string, imported only when the
method is used: the registry stays cheap to import and the benchmark never imports torch models
for the baselines.

Adding a method (e.g. a meta-learned optimizer), one line in `METHODS` below:

    "quicktune": Method("quicktune", "quicktune.benchmark.qt:make", prepare="quicktune.benchmark.qt:prepare"),

where quicktune/benchmark/qt.py holds

    def prepare(fold: FoldContext) -> None:
        path = fold.cache_dir / f"quicktune-{fold.key}.pt"
        if not path.exists():
            model = meta_train(fold.train, seed=0); save(model, path)    # atomic write

    def make(space, max_epochs, seed, context: MethodContext) -> Optimizer:
        model = load(context.fold.cache_dir / f"quicktune-{context.fold.key}.pt")
        return QuickTuneOptimizer(space, max_epochs, seed, model, context.task.dataset_features)

(or call `register_method(Method(...))` at run time, before `run_benchmark`; workers are forked
so they see it.) The benchmark CLI offers every name in the registry.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from quicktune.asha import ASHA, AsyncHyperband
from quicktune.baselines import GridSearch, Hyperband, RandomSearch, SuccessiveHalving
from quicktune.metadataset.tabular import CurveTable, TaskCurves
from quicktune.protocol import Optimizer
from quicktune.space import SearchSpace


@dataclass(frozen=True)
class FoldContext:
    """One leave-datasets-out fold: its held-out datasets and what a method may learn from."""

    fold: int
    n_folds: int
    train: CurveTable  # restricted to `train_datasets`
    train_datasets: tuple[str, ...]
    test_datasets: tuple[str, ...]
    cache_dir: Path

    @property
    def key(self) -> str:
        """A short stable id of the training datasets, for naming cached artefacts."""
        blob = "\n".join(sorted(self.train_datasets)).encode()
        return f"fold{self.fold}of{self.n_folds}-{hashlib.sha256(blob).hexdigest()[:10]}"


@dataclass(frozen=True)
class MethodContext:
    """What a factory gets besides (space, max_epochs, seed)."""

    task: TaskCurves  # the held-out target dataset
    fold: FoldContext
    seed: int

    @property
    def dataset(self) -> str:
        return self.task.dataset


Factory = Callable[[SearchSpace, int, int, MethodContext], Optimizer]
Prepare = Callable[[FoldContext], None]


_T = TypeVar("_T")


def _resolve(ref: _T | str) -> _T:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"a lazy reference looks like 'package.module:attribute', but got {ref!r}")
    resolved: _T = getattr(importlib.import_module(module), attr)
    return resolved


@dataclass(frozen=True)
class Method:
    name: str
    factory: Factory | str
    prepare: Prepare | str | None = None
    description: str = field(default="", compare=False)

    def make(self, space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> Optimizer:
        return _resolve(self.factory)(space, max_epochs, seed, context)

    def prepare_fold(self, fold: FoldContext) -> None:
        if self.prepare is not None:
            _resolve(self.prepare)(fold)


@dataclass(frozen=True)
class _Baseline:
    """Factory of a baseline that ignores the context (a class, not a closure: picklable, so
    methods can be sent to worker processes)."""

    cls: type[Optimizer]

    def __call__(self, space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> Optimizer:
        return self.cls(space, max_epochs, seed)


_PEERS = "quicktune.benchmark.peers"
METHODS: dict[str, Method] = {
    "random": Method("random", _Baseline(RandomSearch), description="random search, full runs"),
    "grid": Method("grid", _Baseline(GridSearch), description="grid over ELR x weight decay, model by model, full runs"),
    "hyperband": Method("hyperband", _Baseline(Hyperband), description="Hyperband, eta=3, freeze-thaw"),
    "sh": Method("sh", _Baseline(SuccessiveHalving), description="successive halving, eta=3, freeze-thaw"),
    "asha": Method("asha", _Baseline(ASHA), description="asynchronous successive halving (ASHA), eta=3, freeze-thaw"),
    "hyperband-async": Method("hyperband-async", _Baseline(AsyncHyperband),
                              description="asynchronous Hyperband (ASHA brackets), eta=3, freeze-thaw"),
    # Quick-Tune and its ablations (adapters in quicktune/benchmark/qt_method.py; meta-trained once per fold).
    "quicktune": Method("quicktune", "quicktune.benchmark.qt_method:quicktune", prepare="quicktune.benchmark.qt_method:prepare",
                        description="Quick-Tune: meta-learned deep-kernel GP, cost-aware freeze-thaw BO"),
    "quicktune-no-meta": Method("quicktune-no-meta", "quicktune.benchmark.qt_method:quicktune_no_meta",
                                description="Quick-Tune without meta-training (DyHPO-like)"),
    "quicktune-no-cost": Method("quicktune-no-cost", "quicktune.benchmark.qt_method:quicktune_no_cost",
                                prepare="quicktune.benchmark.qt_method:prepare",
                                description="Quick-Tune without the cost model (plain EI)"),
    "quicktune-no-zs": Method("quicktune-no-zs", "quicktune.benchmark.qt_method:quicktune_no_zero_shot",
                              prepare="quicktune.benchmark.qt_method:prepare_no_zero_shot",
                              description="Quick-Tune meta-trained without the zero-shot loss"),
    # Real peers (adapters in quicktune/benchmark/peers/, each package imported lazily; the `peers` extra).
    **{m.name: m for m in (
        Method("qtt", f"{_PEERS}.qtt_peer:make", prepare=f"{_PEERS}.qtt_peer:prepare",
               description="Quick-Tune-Tool 0.0.4: meta-trained PerfPredictor + CostPredictor, QuickOptimizer"),
        Method("optuna", f"{_PEERS}.optuna_peer:make", description="Optuna TPESampler + HyperbandPruner (stop-only)"),
        Method("smac", f"{_PEERS}.smac_peer:make", description="SMAC3 MultiFidelityFacade, Hyperband intensifier"),
        Method("dehb", f"{_PEERS}.dehb_peer:make", description="DEHB 0.1.2"),
        Method("synetune-asha", f"{_PEERS}.synetune_peer:make_asha", description="Syne Tune 0.16 ASHA (stop-only)"),
        Method("synetune-bohb", f"{_PEERS}.synetune_peer:make_bohb",
               description="Syne Tune 0.16 BOHB on ASHA (stop-only)"),
        Method("best-default", f"{_PEERS}.best_default:make", prepare=f"{_PEERS}.best_default:prepare",
               description="largest model at AdamW defaults for the full horizon, then the next"),
    )},
}


def register_method(method: Method, overwrite: bool = False) -> Method:
    """Add `method` to the registry (by its name)."""
    if method.name in METHODS and not overwrite:
        raise ValueError(f"method {method.name!r} is already registered; pass overwrite=True to replace it")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}") from None
