"""Fitting the surrogate: meta-training on a meta-dataset, and the cheap refit on a target.

Free functions (botorch style): the `Surrogate` only predicts; these change its weights.

meta_train follows DyHPO / Quick-Tune: every step samples a batch of (config, budget t, curve
prefix up to t - 1) -> accuracy at t rows from ONE dataset, uses them as the GP's training data
and takes a gradient step on the negative exact marginal log-likelihood (net and GP
hyperparameters together); the cost net is trained on the same batch with a squared error on log
seconds. Held-out datasets score the surrogate the way the optimizer uses it (condition on some
partial curves, predict the next epoch): the checkpoint with the best validation NLL is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gpytorch
import numpy as np
import torch
from torch import Tensor

from quicktune.metadataset.tabular import CurveTable, TaskCurves
from quicktune.space import SearchSpace
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import DTYPE, NetConfig

_NUMERIC_ERRORS = (gpytorch.utils.errors.NotPSDError, RuntimeError, ValueError)


@dataclass
class TaskArrays:
    """One dataset prepared for sampling: static inputs and dense curves.

    static: (n x static_dim) tensor; perf: (n x T) accuracies (NaN inside the recording -> 0, a
    diverged epoch counts as a failure); lengths: (n,) recorded epochs; log_cost: (n x T) log
    seconds (NaN where unknown).
    """

    dataset: str
    static: Tensor
    perf: np.ndarray
    lengths: np.ndarray
    log_cost: np.ndarray

    @property
    def runs(self) -> np.ndarray:
        """Indices of runs with at least one recorded epoch."""
        return np.flatnonzero(self.lengths >= 1)


def task_arrays(surrogate: Surrogate, task: TaskCurves) -> TaskArrays:
    """Encode every run of `task` for `surrogate` (features scaled with the surrogate's scaler)."""
    T = surrogate.max_epochs
    perf = np.full((task.n_runs, T), np.nan)
    cost = np.full((task.n_runs, T), np.nan)
    w = min(T, task.max_epochs)
    perf[:, :w] = task.perf[:, :w]
    cost[:, :w] = task.cost[:, :w]
    lengths = np.minimum(np.asarray(task.lengths, dtype=int), T)
    inside = np.arange(T)[None, :] < lengths[:, None]
    perf = np.where(inside, np.nan_to_num(perf, nan=0.0), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_cost = np.where(inside & (cost > 0), np.log(cost), np.nan)
    static = surrogate.static_inputs(task.configs, task.dataset_features, task.pair_features)
    return TaskArrays(task.dataset, static, perf, lengths, log_cost)


def sample_rows(
    surrogate: Surrogate,
    arrays: TaskArrays,
    rng: np.random.Generator,
    batch_size: int,
    prefix_dropout: float = 0.0,
    model_dropout: float = 0.0,
    early_bias: float = 0.0,
    feature_dropout: float = 0.0,
) -> tuple[Tensor, Tensor, np.ndarray, np.ndarray]:
    """A batch of rows from one dataset: (x: (B x width), y: (B,), runs: (B,), t: (B,)).

    Each row is a run at a uniformly drawn recorded epoch t, with its curve up to t - 1 (or, with
    probability `prefix_dropout`, a shorter prefix, so the surrogate can also extrapolate from
    few epochs). With probability `model_dropout` the model identity is hidden (index -1), which
    trains the shared "unknown model" embedding. With probability `feature_dropout` per row and
    feature group (the scaler's groups: dataset descriptors, (model, dataset) domain features),
    the group is hidden (values and presence 0) exactly as a target lacking it is encoded.
    """
    runs_all = arrays.runs
    replace = len(runs_all) < batch_size
    runs = rng.choice(runs_all, size=batch_size, replace=replace)
    t = rng.integers(1, arrays.lengths[runs] + 1)
    if early_bias > 0:
        # Log-uniform epochs for a share of the rows: the first epochs, where curves move most
        # and where a time-boxed search spends its decisions, would otherwise be rare.
        log_t = np.floor((arrays.lengths[runs] + 1.0) ** rng.random(batch_size)).astype(int)
        t = np.where(rng.random(batch_size) < early_bias, np.clip(log_t, 1, arrays.lengths[runs]), t)
    k = t - 1
    if prefix_dropout > 0:
        short = rng.random(batch_size) < prefix_dropout
        k = np.where(short, rng.integers(0, t), k)
    L = surrogate.layout.curve_len
    T = surrogate.max_epochs
    cols = np.arange(L)
    mask = cols[None, :] < k[:, None]
    values = np.where(mask, np.nan_to_num(arrays.perf[runs, :L], nan=0.0), 0.0)
    static = arrays.static[torch.as_tensor(runs)]
    if model_dropout > 0:
        hide = torch.as_tensor(rng.random(batch_size) < model_dropout)
        static = static.clone()
        col = surrogate.layout.model_col
        static[:, col] = torch.where(hide, torch.full_like(static[:, col], -1.0), static[:, col])
    if feature_dropout > 0 and surrogate.scaler.dim:
        static = mask_feature_groups(surrogate, static, rng, feature_dropout)
    x = surrogate.layout.pack(
        static,
        torch.as_tensor(t / T, dtype=DTYPE),
        torch.as_tensor(values, dtype=DTYPE),
        torch.as_tensor(mask, dtype=DTYPE),
    )
    y = torch.as_tensor(arrays.perf[runs, t - 1], dtype=DTYPE)
    return x, y, runs, t


def zero_shot_rows(
    surrogate: Surrogate, arrays: TaskArrays, x: Tensor, runs: np.ndarray, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """The zero-shot version of a batch: the same runs (x's static inputs, so the same hidden model
    and feature groups) with an empty prefix at an epoch t drawn uniformly from 1..max_epochs, and
    the accuracy the run had reached by then: (x0: (B x width), y0: (B,)).

    A run recorded for fewer than t epochs keeps its last accuracy: in the Quick-Tune
    meta-dataset a third of the runs stop after one epoch near chance (diverged or crashed, in a
    few seconds), and a zero-shot prediction "after N epochs" that only ever saw the runs that
    survived to N would rank exactly those configs first. Time-limited runs, cut while still
    improving, are slightly underestimated by the same rule.
    """
    T = surrogate.max_epochs
    t = rng.integers(1, T + 1, size=len(runs))
    reached = np.minimum(t, arrays.lengths[runs])
    y0 = torch.as_tensor(arrays.perf[runs, reached - 1], dtype=DTYPE)
    L = surrogate.layout.curve_len
    empty = torch.zeros(len(runs), L, dtype=DTYPE)
    x0 = surrogate.layout.pack(x[:, : surrogate.layout.static_dim], torch.as_tensor(t / T, dtype=DTYPE), empty, empty)
    return x0, y0


def mask_feature_groups(surrogate: Surrogate, static: Tensor, rng: np.random.Generator, p: float) -> Tensor:
    """A copy of static inputs (n x static_dim) with each feature group of each row hidden with
    probability p: its standardised values and its presence indicators set to 0."""
    static = static.clone()
    k, start = surrogate.scaler.dim, surrogate.layout.meta_start
    for cols in surrogate.scaler.group_columns().values():
        hide = torch.as_tensor(rng.random(static.shape[0]) < p)
        idx = torch.as_tensor([start + j for j in cols] + [start + k + j for j in cols])
        block = static[:, idx]
        static[:, idx] = torch.where(hide[:, None], torch.zeros_like(block), block)
    return static


@dataclass
class Episode:
    """A validation episode: the surrogate sees `context` rows and predicts `query` rows."""

    dataset: str
    context_x: Tensor
    context_y: Tensor
    query_x: Tensor
    query_y: Tensor


def make_episodes(
    surrogate: Surrogate, arrays: TaskArrays, rng: np.random.Generator, n_episodes: int = 3, n_curves: int = 24,
    max_context: int = 128,
) -> list[Episode]:
    """Episodes that mimic a search: some runs trained to a random epoch k (context: all their
    epochs 1..k, subsampled to `max_context`), query: each of those runs at epoch k + 1 (k = 0 is
    an unstarted run at epoch 1)."""
    out: list[Episode] = []
    L, T = surrogate.layout.curve_len, surrogate.max_epochs
    runs_all = arrays.runs
    for _ in range(n_episodes):
        runs = rng.choice(runs_all, size=min(n_curves, len(runs_all)), replace=False)
        ks = rng.integers(0, arrays.lengths[runs])  # observed epochs, 0..len-1, so k + 1 is recorded
        ctx_runs = np.concatenate([np.full(k, r) for r, k in zip(runs, ks)]).astype(int)
        ctx_t = np.concatenate([np.arange(1, k + 1) for k in ks]).astype(int)
        if len(ctx_runs) > max_context:
            keep = np.sort(rng.choice(len(ctx_runs), size=max_context, replace=False))
            ctx_runs, ctx_t = ctx_runs[keep], ctx_t[keep]

        def rows(r: np.ndarray, t: np.ndarray) -> tuple[Tensor, Tensor]:
            k = t - 1
            mask = np.arange(L)[None, :] < k[:, None]
            values = np.where(mask, np.nan_to_num(arrays.perf[r, :L], nan=0.0), 0.0)
            x = surrogate.layout.pack(
                arrays.static[torch.as_tensor(r, dtype=torch.long)],
                torch.as_tensor(t / T, dtype=DTYPE),
                torch.as_tensor(values, dtype=DTYPE),
                torch.as_tensor(mask, dtype=DTYPE),
            )
            return x, torch.as_tensor(arrays.perf[r, t - 1], dtype=DTYPE)

        cx, cy = rows(ctx_runs, ctx_t)
        qx, qy = rows(runs.astype(int), (ks + 1).astype(int))
        out.append(Episode(arrays.dataset, cx, cy, qx, qy))
    return out


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (scipy's rankdata, without importing scipy.stats: it is slow)."""
    _, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
    start = np.cumsum(cnt) - cnt
    return (start + (cnt - 1) / 2.0)[inv]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 0 when it is undefined (fewer than 3 points, a constant side)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    r = np.corrcoef(_ranks(a), _ranks(b))[0, 1]
    return float(r) if np.isfinite(r) else 0.0


def evaluate(surrogate: Surrogate, episodes: Sequence[Episode]) -> dict[str, float]:
    """Mean predictive NLL (lower is better) and Spearman rank correlation of the next-epoch
    predictions over `episodes`. Leaves the surrogate conditioned on nothing."""
    nlls, rhos = [], []
    for ep in episodes:
        try:
            surrogate.condition(ep.context_x if len(ep.context_x) else None, ep.context_y)
            mu, var = surrogate.posterior(ep.query_x)
        except _NUMERIC_ERRORS:
            nlls.append(math.inf)
            rhos.append(0.0)
            continue
        s2 = var + surrogate.gp.noise
        nll = 0.5 * (torch.log(2 * math.pi * s2) + (ep.query_y - mu) ** 2 / s2)
        nlls.append(float(nll.mean()))
        rhos.append(_spearman(mu.numpy(), ep.query_y.numpy()))
    surrogate.condition(None, None)
    return {"nll": float(np.mean(nlls)) if nlls else math.nan, "spearman": float(np.mean(rhos)) if rhos else math.nan}


def cost_rmse(surrogate: Surrogate, arrays: Sequence[TaskArrays]) -> float:
    """Root mean squared error of predicted log seconds per epoch over every recorded epoch."""
    errs = []
    for a in arrays:
        obs = np.nanmean(np.where(np.isfinite(a.log_cost), a.log_cost, np.nan), axis=1)  # per-run mean
        ok = np.isfinite(obs)
        if ok.any():
            pred = surrogate.log_cost(a.static[torch.as_tensor(np.flatnonzero(ok))]).numpy()
            errs.append((pred - obs[ok]) ** 2)
    return float(np.sqrt(np.concatenate(errs).mean())) if errs else math.nan


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
        surrogate.cost_net.log_mean.fill_(float(all_log_cost.mean()))
        surrogate.cost_net.log_std.fill_(float(max(all_log_cost.std(), 1e-3)))

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
            x, y, runs, t = sample_rows(surrogate, arrays, rng, batch_size, prefix_dropout, model_dropout, early_bias,
                                        feature_dropout)
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
                lc = torch.as_tensor(arrays.log_cost[runs, t - 1], dtype=DTYPE)
                ok = torch.isfinite(lc)
                if cost_weight > 0 and bool(ok.any()):
                    pred = surrogate.cost_net(x[ok][:, : surrogate.layout.static_dim])
                    loss = loss + cost_weight * (((pred - lc[ok]) / surrogate.cost_net.log_std) ** 2).mean()
                loss.backward()
                opt.step()
                value = float(loss.detach())
                running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            except _NUMERIC_ERRORS:
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


def _status(record: Mapping[str, float], best: tuple) -> str:
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


def _progress(enabled: bool, total: int):
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
    except (*_NUMERIC_ERRORS, FloatingPointError):
        surrogate.load_weights(before)
        value = math.nan
    gp.eval()
    surrogate.condition(x, y)
    return value
