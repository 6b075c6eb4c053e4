"""Fitting the surrogate: meta-training on a meta-dataset, and the cheap refit on a target.

Free functions (botorch style): the `Surrogate` only predicts; these change its weights.

meta_train follows DyHPO / Quick-Tune: every step samples a batch of (config, budget t, curve
prefix up to t - 1) -> accuracy at t rows from ONE dataset, uses them as the GP's training data
and takes a gradient step on the negative exact marginal log-likelihood (net and GP
hyperparameters together); the cost net is trained on the same batch with a squared error on log
seconds. Held-out datasets score the surrogate the way the optimizer uses it (condition on some
partial curves, predict the next epoch): the checkpoint with the best validation NLL is kept.
The batches and episodes come from `surrogate.batches`, their scores from `surrogate.scoring`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import gpytorch
import numpy as np
import torch
from torch import Tensor

from quicktune.metadataset.tabular import CurveTable
from quicktune.space import SearchSpace
from quicktune.surrogate.batches import make_episodes, sample_rows, task_arrays, zero_shot_rows
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import DTYPE, NetConfig
from quicktune.surrogate.scoring import NUMERIC_ERRORS, cost_rmse, evaluate


def split_datasets(
    datasets: Sequence[str], holdout: Sequence[str] | None, val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(train, validation) dataset names: `holdout` if given, else a seeded `val_fraction` of them."""
    datasets = list(datasets)
    if holdout:
        unknown = sorted(set(holdout) - set(datasets))
        if unknown:
            raise ValueError(f"holdout datasets {unknown} are not in the meta-dataset; known: {datasets}")
        val = [d for d in datasets if d in set(holdout)]
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"`0 <= val_fraction < 1` must hold, but got val_fraction={val_fraction}")
        n_val = int(round(val_fraction * len(datasets)))
        if val_fraction > 0 and len(datasets) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, len(datasets) - 1)
        perm = np.random.default_rng(seed).permutation(len(datasets))
        val = sorted(datasets[i] for i in perm[:n_val])
    train = [d for d in datasets if d not in set(val)]
    if not train:
        raise ValueError(f"no dataset left to meta-train on after holding out {val}")
    return train, val


@dataclass
class MetaTrainResult:
    surrogate: Surrogate
    train_datasets: list[str]
    val_datasets: list[str]
    best_step: int
    val_metrics: dict[str, float]
    untrained_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def meta_train(
    table: CurveTable,
    *,
    steps: int = 4000,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    datasets: Sequence[str] | None = None,
    holdout: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    val_every: int = 250,
    net: NetConfig | None = None,
    kernel: str = "matern",
    mean: str = "residual",
    prefix_dropout: float = 0.2,
    model_dropout: float = 0.1,
    early_bias: float = 0.5,
    feature_dropout: float = 0.2,
    cost_weight: float = 1.0,
    mean_weight: float = 1.0,
    zero_shot_weight: float = 1.0,
    model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> MetaTrainResult:
    """Meta-train a surrogate on `table` (restricted to `datasets` if given).

    Validation datasets (`holdout`, else a seeded `val_fraction` of the datasets) are never
    trained on; the weights with the best validation NLL are kept (the last ones when there is
    no validation dataset). Same arguments and seed -> the same weights.

    Each step: a batch of `batch_size` rows from one dataset (`sample_rows`), loss = -MLL of the
    GP on the batch + `mean_weight` * the prior mean's squared error (normalised by the batch
    variance: the prior mean alone is the zero-shot prediction) + `cost_weight` * the cost net's
    squared error in standardised log seconds + `zero_shot_weight` * the Gaussian NLL of the same
    rows with their curve prefixes removed (`DeepKernelGP.zero_shot`: the prediction for a dataset
    with no observation yet, at every epoch; without it only the rare rows with an empty prefix
    teach the zero-shot level, and nothing teaches its dataset-shift variance). Adam with a
    cosine-decayed learning rate.
    early_bias: share of rows whose epoch is drawn log-uniformly (early epochs are where a
    time-boxed search decides, and where curves move most); prefix_dropout / model_dropout /
    feature_dropout: see `sample_rows`. Defaults are the settings the replay benchmark validated.
    """
    if steps < 1:
        raise ValueError(f"`steps >= 1` must hold, but got steps={steps}")
    if batch_size < 2:
        raise ValueError(f"`batch_size >= 2` must hold, but got batch_size={batch_size}")
    start = time.perf_counter()
    names = list(datasets) if datasets is not None else list(table.datasets)
    train_names, val_names = split_datasets(names, holdout, val_fraction, seed)
    train_tasks = [table.task(d) for d in train_names]
    val_tasks = [table.task(d) for d in val_names]

    dataset_names, pair_names = table.dataset_feature_names(), table.pair_feature_names()
    feature_names = [*dataset_names, *pair_names]
    feature_groups = ["dataset"] * len(dataset_names) + ["pair"] * len(pair_names)
    feature_rows = []
    for t in train_tasks:
        feature_rows.extend([{**t.dataset_features, **p} for p in t.pair_features.values()] or [t.dataset_features])
    space = SearchSpace([c for t in train_tasks for c in t.configs])
    surrogate = Surrogate.build(
        space, table.max_epochs, feature_rows, feature_names, model_descriptors, net=net, kernel=kernel, mean=mean,
        seed=seed, feature_groups=feature_groups,
    )
    rng = np.random.default_rng(seed)
    train_arrays = [a for a in (task_arrays(surrogate, t) for t in train_tasks) if len(a.runs)]
    val_arrays = [a for a in (task_arrays(surrogate, t) for t in val_tasks) if len(a.runs)]
    if not train_arrays:
        raise ValueError(f"the training datasets {train_names} hold no recorded epochs")
    episodes = [ep for a in val_arrays for ep in make_episodes(surrogate, a, np.random.default_rng([seed, 1]))]

    # Standardise the cost net's targets once, from the training datasets.
    all_log_cost = np.concatenate([a.log_cost[np.isfinite(a.log_cost)] for a in train_arrays])
    if len(all_log_cost):
        cast(Tensor, surrogate.cost_net.log_mean).fill_(float(all_log_cost.mean()))
        cast(Tensor, surrogate.cost_net.log_std).fill_(float(max(all_log_cost.std(), 1e-3)))

    untrained = evaluate(surrogate, episodes) if episodes else {}
    gp = surrogate.gp
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(gp.likelihood, gp)
    params = list(gp.parameters()) + list(surrogate.cost_net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    # Cosine decay to 5% of lr: late steps refine instead of jumping around, so the checkpoint
    # kept depends less on where validation happened to look.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))

    best = (math.inf, 0, surrogate.weights(), dict(untrained))
    history: list[dict[str, float]] = []
    bar = _progress(progress, steps)
    running = math.nan
    skipped = 0  # steps whose batch failed numerically (recorded: many would mean a broken setup)
    with bar:
        task_id = bar.add_task("meta-training", total=steps, status="") if bar else None
        for step in range(1, steps + 1):
            arrays = train_arrays[int(rng.integers(len(train_arrays)))]
            x, y, runs, epochs = sample_rows(surrogate, arrays, rng, batch_size, prefix_dropout, model_dropout,
                                             early_bias, feature_dropout)
            gp.train()
            surrogate.cost_net.train()
            gp.condition(x, y)
            opt.zero_grad()
            try:
                prior = gp(x)
                loss = -mll(prior, y)
                if mean_weight > 0:
                    # The prior mean alone is the zero-shot prediction (no target data yet): fit
                    # it directly too, or the kernel absorbs what the mean should learn.
                    loss = loss + mean_weight * ((prior.mean - y) ** 2).mean() / y.var().clamp_min(1e-4)
                if zero_shot_weight > 0:
                    x0, y0 = zero_shot_rows(surrogate, arrays, x, runs, rng)
                    m0, v0 = gp.zero_shot(x0)
                    loss = loss + zero_shot_weight * 0.5 * ((y0 - m0) ** 2 / v0 + torch.log(v0)).mean()
                lc = torch.as_tensor(arrays.log_cost[runs, epochs - 1], dtype=DTYPE)
                ok = torch.isfinite(lc)
                if cost_weight > 0 and bool(ok.any()):
                    pred = surrogate.cost_net(x[ok][:, : surrogate.layout.static_dim])
                    loss = loss + cost_weight * (((pred - lc[ok]) / surrogate.cost_net.log_std) ** 2).mean()
                loss.backward()
                opt.step()
                value = float(loss.detach())
                running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            except NUMERIC_ERRORS:
                opt.zero_grad()  # a rare ill-conditioned batch: skip it rather than stop
                skipped += 1
            sched.step()
            if step % val_every == 0 or step == steps:
                record: dict[str, float] = {"step": float(step), "train_loss": running}
                if episodes:
                    record.update({f"val_{k}": v for k, v in evaluate(surrogate, episodes).items()})
                    if record["val_nll"] < best[0]:
                        best = (record["val_nll"], step, surrogate.weights(), {"nll": record["val_nll"],
                                                                              "spearman": record["val_spearman"]})
                history.append(record)
                if callback is not None:
                    callback(step, record)
                if bar:
                    bar.update(task_id, status=_status(record, best))
            if bar:
                bar.advance(task_id)
    gp.condition(None, None)
    if episodes:
        surrogate.load_weights(best[2])
        best_step, val_metrics = best[1], dict(best[3])
        val_metrics["cost_rmse"] = cost_rmse(surrogate, val_arrays)
    else:
        best_step, val_metrics = steps, {}
    seconds = time.perf_counter() - start
    surrogate.info.update(
        {
            "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "best_step": best_step,
            "feature_dropout": feature_dropout, "zero_shot_weight": zero_shot_weight, "skipped_steps": skipped,
            "train_datasets": train_names, "val_datasets": val_names, "val_metrics": val_metrics,
            "untrained_val_metrics": untrained, "seconds": seconds,
        }
    )
    return MetaTrainResult(surrogate, train_names, val_names, best_step, val_metrics, untrained, history, seconds)


def _status(record: Mapping[str, float], best: tuple[Any, ...]) -> str:
    s = f"loss {record['train_loss']:.3f}"
    if "val_nll" in record:
        s += f" val nll {record['val_nll']:.3f} rho {record['val_spearman']:.2f} (best @ {best[1]})"
    return s


class _NoBar:
    def __bool__(self) -> bool:
        return False

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _progress(enabled: bool, total: int) -> Any:  # a rich Progress, or a falsy stand-in when disabled
    if not enabled:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
    )


def refit(
    surrogate: Surrogate,
    x: Tensor,
    y: Tensor,
    *,
    steps: int = 10,
    lr: float = 1e-3,
    start: Mapping[str, Mapping[str, Tensor]] | None = None,
    scope: str = "all",
) -> float:
    """A few gradient steps of the GP marginal likelihood on the target's observations.

    x: (n x width) rows, y: (n,) accuracies. `start`: weights to begin from (the meta-trained
    ones, so refits never drift across BO steps); None continues from the current weights (the
    from-scratch, DyHPO-like variant). `scope`: "all" trains the net and the GP
    hyperparameters; "gp" only the GP hyperparameters (noise, output scale, lengthscale, mean),
    which cannot overfit a handful of target points the way the net can. Leaves the surrogate
    conditioned on (x, y). Returns the final loss (NaN when no step ran). A numerically failed
    step restores the starting weights.
    """
    if scope not in ("all", "gp"):
        raise ValueError(f"`scope` must be 'all' or 'gp', but got {scope!r}")
    if start is not None:
        surrogate.load_weights(start)
    surrogate.condition(x, y)
    if steps <= 0 or len(x) < 2:
        return math.nan
    gp = surrogate.gp
    before = surrogate.weights() if start is None else start
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(gp.likelihood, gp)
    params = (
        list(gp.parameters()) if scope == "all"
        else [*gp.likelihood.parameters(), *gp.covar_module.parameters(), *gp.mean_module.parameters()]
    )
    opt = torch.optim.Adam(params, lr=lr)
    gp.train()
    value = math.nan
    try:
        for _ in range(steps):
            opt.zero_grad()
            loss = -mll(gp(x), y)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            # A step can fail without raising: a NaN loss or gradient leaves NaN weights, and the
            # next posterior's Cholesky fails on every entry. Same failure, same remedy.
            if not math.isfinite(value) or not all(bool(torch.isfinite(p).all()) for p in params):
                raise FloatingPointError(f"refit step gave loss {value}")
    except (*NUMERIC_ERRORS, FloatingPointError):
        surrogate.load_weights(before)
        value = math.nan
    gp.eval()
    surrogate.condition(x, y)
    return value
