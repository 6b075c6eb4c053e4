"""The replay clock with N simulated workers: an event queue on recorded epoch times.

Each worker trains one trial at a time. When a worker is free the optimizer is asked (with the
other workers' trials still pending); the replay objective answers at once, but the observation
is *delivered* (told) only when the simulated clock reaches the end of the trial's last recorded
epoch, and each of its epochs is stamped at the worker's start time plus the recorded seconds so
far. Completions are processed in time order (ties: in the order the trials were started), so
results are deterministic. A worker that finds nothing to do (`ask()` returns None while trials
are pending: synchronous successive halving waiting for its rung) idles until the next
completion. With one worker this is exactly the sequential replay loop: ask, train, tell.

The optimizer's own wall time (ask + tell) is measured but, as in the one-worker replay, not
charged to the simulated clock. No trial is started at or after `budget_s`; epochs of trials still
running at the budget that end after it are not part of the trajectory.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

from quicktune.protocol import Objective, Observation, Optimizer


@dataclass
class Simulation:
    """times: (k,) simulated seconds at the end of each trained epoch within the budget, sorted;
    incumbents: (k,) best finite accuracy up to that time (NaN before the first finite one);
    overhead: (steps,) wall seconds of ask + tell per trial; simulated_s: end of the last
    started trial (may pass the budget); stop: "budget" | "exhausted" | "stalled";
    selected: (config_id, epoch) of the incumbent at the budget (its first epoch to reach it)."""

    times: np.ndarray
    incumbents: np.ndarray
    overhead: np.ndarray
    n_trials: int
    simulated_s: float
    stop: str
    selected: tuple[int, int] | None = None


def simulate(opt: Optimizer, objective: Objective, budget_s: float, workers: int = 1,
             stall_steps: int = 10_000) -> Simulation:
    """Replay `opt` against `objective` with `workers` asynchronous workers until the clock
    reaches `budget_s` or the optimizer has nothing left (see the module docstring).
    `stall_steps` consecutive trials that train no new epoch end the job (an optimizer stuck
    re-asking finished epochs would otherwise never advance the clock)."""
    if workers < 1:
        raise ValueError(f"`workers >= 1` must hold, but got {workers=}")
    now, free = 0.0, workers
    running: list[tuple[float, int, Observation, float]] = []  # (end time, start order, obs, ask seconds)
    stamps: list[tuple[float, int, float, int, int]] = []  # (time, start order, accuracy, config, epoch) per epoch
    overhead: list[float] = []
    n_trials, idle, stop, end = 0, 0, "budget", 0.0
    while True:
        exhausted = False
        while free > 0 and now < budget_s:
            t0 = time.perf_counter()
            trial = opt.ask()
            ask_s = time.perf_counter() - t0
            if trial is None:
                exhausted = True
                break
            obs = objective.evaluate(trial)
            first_new = len(obs.curve) - len(obs.epoch_seconds)
            t = now
            for j, sec in enumerate(obs.epoch_seconds):
                t += sec
                stamps.append((t, n_trials, obs.curve[first_new + j], trial.config_id, first_new + j + 1))
            heapq.heappush(running, (t, n_trials, obs, ask_s))
            end = max(end, t)
            free -= 1
            n_trials += 1
            idle = 0 if obs.epoch_seconds else idle + 1
            if idle >= stall_steps:
                stop = "stalled"
                break
        if stop == "stalled":
            break
        if not running:
            if exhausted:
                stop = "exhausted"
            break
        if now >= budget_s:
            break
        now, _, obs, ask_s = heapq.heappop(running)
        t0 = time.perf_counter()
        opt.tell(obs)
        overhead.append(ask_s + time.perf_counter() - t0)
        free += 1
    stamps.sort(key=lambda s: (s[0], s[1]))
    times = np.array([s[0] for s in stamps], dtype=float)
    acc = np.array([s[2] for s in stamps], dtype=float)
    best = np.fmax.accumulate(acc) if len(acc) else acc  # fmax: NaN (diverged) never wins
    within = int(np.searchsorted(times, budget_s, side="right"))
    finite = [i for i in range(within) if np.isfinite(acc[i])]
    top = max(finite, key=lambda i: (acc[i], -i)) if finite else None  # the first epoch at the maximum
    selected = (stamps[top][3], stamps[top][4]) if top is not None else None
    return Simulation(times[:within], best[:within], np.asarray(overhead, dtype=float), n_trials,
                      float(end) if n_trials else 0.0, stop, selected)


__all__ = ["Simulation", "simulate"]
