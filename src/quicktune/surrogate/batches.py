"""Meta-training data: one dataset's runs as dense arrays, the training batches sampled from them,
and the validation episodes that mimic a search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from quicktune.metadataset.tabular import TaskCurves
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import DTYPE


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
