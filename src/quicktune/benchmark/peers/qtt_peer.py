"""`qtt`: automl/quicktunetool 0.0.4, the official Quick-Tune successor. Its `PerfPredictor` (deep
kernel GP over pipeline features + the learning curve so far) and `CostPredictor` (MLP) are
meta-trained with their own `.fit` (no download) on the fold's training datasets, once per fold;
then `QuickOptimizer` (cost-aware EI, one epoch per step) asks and is told over the target's
candidates. Pause/resume: it continues runs epoch by epoch and pays only the new epochs.

Features qtt sees per candidate (a pandas frame, as qtt wants): the model and categorical extras
as strings, log10 ELR, log10 weight decay (floored at 1e-6), momentum, the numeric extras as
recorded, and the dataset's meta-features (the table's dataset features: size, classes, image
size, channels). Candidates are shuffled by the seed before `setup_pandas`, because qtt's initial
"random" steps take the lowest indices.

Settings (`FIT`): qtt's defaults except where 2 shared cores forced a change, each said in
`CHANGED`: its default meta-training (up to 100 epochs over every (run, epoch) point, batch 2048,
4 data-loader processes) did not finish in 35 min here; `QuickOptimizer` runs with its defaults
(no refit, EI, explore factor 0, 3 initial random steps) plus `cost_aware=True`. Two shims
(`_contained`) let it run on this project's pinned scikit-learn and a shared machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quicktune.benchmark.methods import FoldContext, MethodContext
from quicktune.benchmark.peers.base import Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import Config, SearchSpace

FIT: dict[str, dict[str, Any]] = {
    "perf": {"max_iter": 10, "batch_size": 512},
    "cost": {"max_iter": 20},
}
CHANGED = (
    "meta-training: PerfPredictor 10 epochs of mini-batches of 512 (qtt's default: up to 100 epochs of 2048, "
    "early-stopped after 5 without gain; one epoch of 2048 costs ~50 s of one core here, as its exact GP "
    "marginal likelihood is cubic in the batch), CostPredictor 20 epochs (default 100); data loaders "
    "in-process (qtt hard-codes 4 worker processes); predictions with gpytorch's fast_pred_var (LOVE) "
    "variances instead of exact ones"
)
OPTIMIZER: dict[str, Any] = {"cost_aware": True}
CACHE_VERSION = 1


def configure(fit: dict[str, dict[str, Any]] | None = None, changed: str | None = None) -> None:
    """Change the meta-training settings (before run_benchmark forks its workers)."""
    global CHANGED
    for k, v in (fit or {}).items():
        FIT.setdefault(k, {}).update(v)
    if changed is not None:
        CHANGED = changed


def features(configs: Sequence[Config], dataset_features: dict[str, float]) -> pd.DataFrame:
    """One row per config: what qtt's predictors see (string columns have object dtype, the only
    ones qtt one-hot encodes)."""
    rows = []
    for c in configs:
        row: dict[str, Any] = {"model": c.model, "log10_elr": math.log10(c.elr),
                               "log10_weight_decay": math.log10(max(c.weight_decay, 1e-6)), "momentum": c.momentum}
        for k, v in c.extra_items():
            row[k] = v if isinstance(v, str) else float(v)
        row.update({f"meta_{k}": float(v) for k, v in dataset_features.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].astype(object)
    return df


def _curves(perf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(n, T) accuracies with a diverged epoch inside the recording as 0 (qtt's curve encoder can
    not take NaN there); NaN after the recording, as qtt expects."""
    out = perf.copy()
    inside = np.arange(perf.shape[1])[None, :] < np.asarray(lengths)[:, None]
    out[inside & np.isnan(out)] = 0.0
    curves: np.ndarray = out
    return curves


def cache_path(fold: FoldContext) -> Path:
    blob = json.dumps({"v": CACHE_VERSION, **FIT}, sort_keys=True).encode()
    return Path(fold.cache_dir) / f"qtt-{fold.key}-{hashlib.sha256(blob).hexdigest()[:8]}"


@contextlib.contextmanager
def _contained(home: Path) -> Iterator[None]:
    """Run qtt's fitting with in-process data loaders (it hard-codes num_workers=4: four forked
    processes per epoch on a shared 2-core machine) and with HOME inside our cache (its
    CostPredictor keeps a temporary checkpoint under ~/.cache/qtt, which parallel folds would race
    on). Also drops the `force_int_remainder_cols` argument qtt passes to scikit-learn's
    ColumnTransformer: scikit-learn 1.9 removed it, and qtt's value (False) is 1.9's behaviour."""
    import qtt.predictors.data as data_module
    import qtt.predictors.perf as perf_module
    from sklearn.compose import ColumnTransformer
    from torch.utils.data import DataLoader

    def loader(*args: Any, **kwargs: Any) -> DataLoader[Any]:
        kwargs["num_workers"] = 0
        return DataLoader(*args, **kwargs)

    def transformer(*args: Any, **kwargs: Any) -> ColumnTransformer:
        if kwargs.get("force_int_remainder_cols") is False:
            kwargs.pop("force_int_remainder_cols")
        return ColumnTransformer(*args, **kwargs)

    saved_home, saved_loader, saved_ct = os.environ.get("HOME"), perf_module.DataLoader, data_module.ColumnTransformer
    os.environ["HOME"] = str(home)
    perf_module.DataLoader = loader
    data_module.ColumnTransformer = transformer
    try:
        yield
    finally:
        perf_module.DataLoader = saved_loader
        data_module.ColumnTransformer = saved_ct
        if saved_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved_home


def _quiet() -> None:
    logging.getLogger("qtt").setLevel(logging.ERROR)


def prepare(fold: FoldContext) -> None:
    """Meta-train qtt's predictors on the fold's training datasets (once; cached)."""
    path = cache_path(fold)
    if (path / "done.json").exists():
        return
    if not fold.train_datasets:
        raise ValueError(f"fold {fold.fold}: no training datasets to meta-train qtt on (use more than one fold)")
    import time

    import torch
    from qtt.predictors import CostPredictor, PerfPredictor

    _quiet()
    torch.set_num_threads(1)
    tasks = [fold.train.task(d) for d in fold.train_datasets]
    X = pd.concat([features(t.configs, t.dataset_features) for t in tasks], ignore_index=True)
    for col in X.columns:  # concat may turn a mixed column back into a non-object dtype
        if not pd.api.types.is_numeric_dtype(X[col]):
            X[col] = X[col].astype(object)
    curve = np.vstack([_curves(t.perf, t.lengths) for t in tasks])
    # Its cost target must be 2-D: mean recorded seconds per epoch of each run.
    cost = np.concatenate([np.nanmean(np.where(np.isfinite(t.cost), t.cost, np.nan), axis=1) for t in tasks])[:, None]
    keep = np.isfinite(cost[:, 0])
    path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _contained(path):
        perf = PerfPredictor(fit_params=FIT["perf"], path=str(path / "perf"), seed=0, verbosity=0)
        perf.fit(X.copy(), curve)
        cost_model = CostPredictor(fit_params=FIT["cost"], path=str(path / "cost"), seed=0, verbosity=0)
        try:
            cost_model.fit(X[keep].reset_index(drop=True).copy(), cost[keep])
        except ZeroDivisionError:  # its progress logger divides by (mini-batches // 10)
            raise ValueError(f"fold {fold.fold}: qtt's CostPredictor needs at least 10 mini-batches of training "
                             f"runs (about 360 runs), but the fold has {int(keep.sum())}") from None
        perf.save(str(path / "perf"), verbose=False)
        cost_model.save(str(path / "cost"), verbose=False)
    info = {"seconds": time.perf_counter() - t0, "points": int(np.isfinite(curve).sum()), "runs": len(X),
            "fit": FIT, "changed": CHANGED, "columns": list(X.columns)}
    (path / "done.json").write_text(json.dumps(info, indent=1))


class QTTPeer(PeerOptimizer):
    stop_only = False

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int, model_dir: Path,
                 dataset_features: dict[str, float]) -> None:
        super().__init__(space, max_epochs, seed)
        from qtt.optimizers import QuickOptimizer
        from qtt.predictors import CostPredictor, PerfPredictor

        _quiet()
        # qtt pickles its predictors (its only save format); the files are this benchmark's own cache.
        perf = PerfPredictor.load(str(model_dir / "perf"), verbose=False)
        cost = CostPredictor.load(str(model_dir / "cost"), verbose=False)
        columns = json.loads((model_dir / "done.json").read_text())["columns"]
        self._tmp = tempfile.TemporaryDirectory(prefix="quicktune-qtt-")
        self.qtt = QuickOptimizer(self.domain.configspace(seed), max_epochs, perf, cost, path=self._tmp.name,
                                  seed=seed, verbosity=0, **OPTIMIZER)
        self.perm = np.random.default_rng(seed).permutation(len(space))
        frame = features([space[int(i)] for i in self.perm], dataset_features)
        # The columns qtt was fitted on, in its order (a column the target lacks is missing: NaN).
        frame = frame.reindex(columns=columns)
        for col in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[col]):
                frame[col] = frame[col].astype(object)
        self.qtt.setup_pandas(frame)
        _quiet()

    def propose(self) -> Job | None:
        import gpytorch

        self.qtt.ante()
        # LOVE predictive variances: the exact ones re-solve the 4,096-point GP (2.8 s a step on
        # one core here); LOVE takes 0.05 s, with a max relative change of the std of 5e-4 (measured).
        with gpytorch.settings.fast_pred_var():
            r = self.qtt.ask()
        if r is None:
            return None
        return Job(int(self.perm[r["config-id"]]), int(r["fidelity"]), token=r)

    def observe(self, job: Job, observation: Observation) -> None:
        r = job.token
        self.qtt.tell({"config-id": r["config-id"], "fidelity": job.epoch, "score": self.value_at(observation, job.epoch),
                       "cost": observation.seconds, "status": True, "config": r["config"]})
        if observation.finished:  # the recording ends here: qtt must not ask for a next epoch of it
            self.qtt.stoped.add(r["config-id"])
            self.qtt.finished = self.qtt._check_is_finished()
        self.qtt.post()


def make(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> QTTPeer:
    return QTTPeer(space, max_epochs, seed, cache_path(context.fold), context.task.dataset_features)
