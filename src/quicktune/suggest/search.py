"""The timed search: Quick-Tune's ask/tell loop over real fine-tuning runs."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicktune.protocol import Observation, Trial
from quicktune.space import Config
from quicktune.stopping import StopMonitor, StopRule
from quicktune.suggest.candidates import candidates_fingerprint
from quicktune.suggest.errors import SuggestError
from quicktune.suggest.loading import FALLBACK_BATCH_SIZE
from quicktune.suggest.results import SearchResults
from quicktune.suggest.session import (
    SESSION_FILE,
    SESSION_FORMAT,
    SESSION_VERSION,
    StepRecord,
    _atomic_json,
    lock_workdir,
    read_session,
)
from quicktune.suggest.target import Target, TaskFeatures


SHUTDOWN_RESERVE = 3.0  # the CLI's reserve for its shut-down before one was measured (seconds)


def _check_limits(budget_seconds: float, max_epochs: int) -> None:
    if not budget_seconds > 0:
        raise SuggestError(f"a timed search needs `budget > 0`, but got {budget_seconds}s")
    if max_epochs < 1:
        raise SuggestError(f"`max_epochs >= 1` must hold, but got {max_epochs}")


class Search(SearchResults):
    """A resumable, wall-clock-budgeted Quick-Tune search that really fine-tunes.

    budget_seconds: the total wall-clock of the search over all its sessions (time spent before
                    an interruption counts). `clock_start` (a time.perf_counter() value) lets the
                    caller count its own set-up (data loading, features) too.
    The work dir holds `runs/` (the objective's checkpoints) and `session.json`; a work dir of a
    search with other identity settings (data, candidates, epochs, seed, batch size,
    resolution) is refused with a SuggestError rather than mixed.
    stop_rule: a `stopping.StopRule` (default: `DEFAULT_STOP_WHEN`), checked before every step;
               not part of the identity, so a rerun may pass another one (e.g. "none") to go on.
    Each run keeps its best epoch's weights, so the model handed back (`save_best_model`) and
    measured on the test split (`test_estimate`) is the one of the epoch the report calls best.
    `Search.open` is the way in: it locks the work dir and reads its session, then builds the
    search. The constructor itself does no I/O (`session`: the state `session.read_session`
    returned, None for a fresh search).
    """

    def __init__(
        self,
        surrogate: Any,
        configs: Sequence[Config],
        target: Target,
        features: TaskFeatures,
        *,
        budget_seconds: float,
        max_epochs: int,
        workdir: str | os.PathLike[str],
        seed: int = 0,
        batch_size: int = FALLBACK_BATCH_SIZE,
        threads: int | None = None,
        pretrained: bool = True,
        refit_steps: int = 10,
        clock_start: float | None = None,
        reserve_seconds: float | None = None,
        on_event: Callable[[str, Search], None] | None = None,
        stop_rule: StopRule | None = None,
        session: Mapping[str, Any] | None = None,
    ) -> None:
        from quicktune.objective import FinetuneObjective
        from quicktune.optimizer.quicktune import QuickTune
        from quicktune.space import SearchSpace

        _check_limits(budget_seconds, max_epochs)
        self.configs = list(configs)
        self.target = target
        self.features = features
        self.budget = float(budget_seconds)
        self.max_epochs = int(max_epochs)
        self.workdir = Path(workdir)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.stop_rule = stop_rule if stop_rule is not None else StopRule.parse(None)
        self.monitor = StopMonitor(self.stop_rule)
        self._max_ei: dict[int, float | None] = {}  # config id -> max EI of the ask that chose its running step
        self.on_event = on_event
        self._t0 = clock_start if clock_start is not None else time.perf_counter()
        self._frozen: float | None = None
        self.identity = {
            "data": target.spec.to_string(),
            "candidates": candidates_fingerprint(self.configs),
            "n_candidates": len(self.configs),
            "max_epochs": self.max_epochs,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "max_image_size": target.max_image_size,
            "pretrained": bool(pretrained),
        }
        self.session_path = self.workdir / SESSION_FILE
        self.elapsed_before = 0.0
        self.steps: list[StepRecord] = []
        self.trace: list[dict[str, Any]] = []
        self.sessions = 0
        self.shutdown_seconds: float | None = None  # what the last session's shut-down took
        self._lock: Any = None  # the work dir's lock (`open` takes it; held until this process exits)
        self.restart: list[Trial] = []
        if session is not None:
            self._apply_session(session)  # refuses a work dir of another search before anything is written
        # Time kept for the shut-down (report, plot, saving the model), so the whole command ends
        # within the budget: `reserve_seconds`, or more when the last session measured more.
        self.reserve = max(float(reserve_seconds or 0.0), 1.25 * float(self.shutdown_seconds or 0.0))

        if threads:
            torch.set_num_threads(int(threads))
        # Model identity is kept apart from hyperparameters; hyperparameters are encoded with the
        # surrogate's saved extra spec so they match meta-training (the surrogate re-encodes them
        # itself from its space state; this space lists the candidates and their models).
        self.space = SearchSpace(self.configs, extra_spec=surrogate.space_state["extra_spec"])
        # Kept so that worker processes (`objective_factory`) build the very same objective.
        self._objective_args: dict[str, Any] = dict(
            space=self.space, data=target.spec, max_epochs=self.max_epochs, workdir=self.workdir, seed=self.seed,
            max_image_size=target.max_image_size, batch_size=self.batch_size, num_threads=threads,
            weights_dir=target.weights_dir, pretrained=pretrained, skip_unreadable=target.skip_unreadable,
            keep_finished_models=True, keep_best_weights=True,
        )
        # The user's data is loaded once: the objective trains on the target's loaded tensors.
        self.objective = FinetuneObjective(**self._objective_args, loader=target.data)
        self.optimizer = QuickTune(
            self.space, self.max_epochs, self.seed, surrogate=surrogate, dataset_features=features.dataset,
            pair_features=features.pairs, model_descriptors=features.models, refit_steps=refit_steps,
        )
        self.stop_reason: str | None = None
        self.current: dict[str, Any] | None = None  # the step in progress (for a live display)
        self.resumed_epochs = 0
        self._predicted: dict[int, float] = {}  # config id -> predicted seconds of its running step

    @classmethod
    def open(
        cls,
        surrogate: Any,
        configs: Sequence[Config],
        target: Target,
        features: TaskFeatures,
        *,
        budget_seconds: float,
        max_epochs: int,
        workdir: str | os.PathLike[str],
        **options: Any,
    ) -> Search:
        """The search in `workdir`, continuing the session saved there (if any): the work dir is
        locked for this process first (one search per work dir, released on exit, even kill -9),
        then its session read; `options` are the constructor's. A session of another search, or
        an unreadable one, is a SuggestError."""
        _check_limits(budget_seconds, max_epochs)
        lock = lock_workdir(Path(workdir))
        session = read_session(Path(workdir) / SESSION_FILE)
        search = cls(surrogate, configs, target, features, budget_seconds=budget_seconds, max_epochs=max_epochs,
                     workdir=workdir, session=session, **options)
        search._lock = lock
        return search

    # -- the clock --------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds of budget used: earlier sessions plus this one so far (frozen once run() ends)."""
        if self._frozen is not None:
            return self._frozen
        return self.elapsed_before + (time.perf_counter() - self._t0)

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed)

    # -- session persistence ----------------------------------------------------------------------
    def _apply_session(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved session (`session.read_session`), refusing one of another search."""
        old = state.get("identity", {})
        diff = [k for k in self.identity if old.get(k) != self.identity[k]]
        if diff:
            shown = ", ".join(f"{k}: was {old.get(k)!r}, now {self.identity[k]!r}" for k in diff)
            raise SuggestError(
                f"{self.workdir} holds a search with other settings ({shown}); rerun with the original options, "
                f"pass another --workdir, or delete {self.workdir} to start over"
            )
        self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
        self.steps = [StepRecord(**s) for s in state.get("steps", [])]
        self.trace = list(state.get("trace", []))
        self.sessions = int(state.get("sessions", 0))
        self.shutdown_seconds = state.get("shutdown_seconds")
        # Trials that were running when the last session ended (a kill): restarted first.
        self.restart = [Trial(int(c), int(e)) for c, e in state.get("pending", [])]

    def save_session(self) -> None:
        _atomic_json(
            {
                "format": SESSION_FORMAT, "version": SESSION_VERSION, "identity": self.identity,
                "budget_seconds": self.budget, "elapsed_seconds": self.elapsed, "sessions": self.sessions,
                "steps": [vars(s) for s in self.steps], "trace": self.trace,
                "stop_reason": self.stop_reason, "shutdown_seconds": self.shutdown_seconds, "saved_at": time.time(),
                "pending": sorted([t.config_id, t.epoch] for t in self.optimizer.pending.values()),
            },
            self.session_path,
        )

    # -- the loop ---------------------------------------------------------------------------------
    def _emit(self, kind: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, self)

    def resume(self) -> int:
        """Tell the optimizer every epoch already trained in the work dir; returns how many.

        The objective replays its own Observations (curve and every epoch's recorded seconds, so
        the cost model calibrates on this machine at once). Epochs a kill left in a checkpoint
        but out of the session (killed between the checkpoint write and the session save) join
        the step log as recovered steps, and their seconds are charged to the budget.
        """
        n = 0
        logged = {(s.config_id, s.epoch) for s in self.steps}
        for obs in self.objective.history():
            self.optimizer.tell(obs)
            n += len(obs.curve)
            for e in range(1, obs.epochs + 1):
                if (obs.trial.config_id, e) in logged:
                    continue
                secs = float(obs.epoch_seconds[e - 1]) if len(obs.epoch_seconds) >= e else 0.0
                if self.steps:  # (a work dir with checkpoints but no session charges nothing: unknown)
                    self.elapsed_before += secs
                self.steps.append(StepRecord(len(self.steps) + 1, obs.trial.config_id, e, float(obs.curve[e - 1]),
                                             secs, self.elapsed_before, 0.0, recovered=True))
        self.resumed_epochs = n
        for st in self.steps:  # the stop rule sees the earlier sessions' steps again
            self.monitor.observe([st.accuracy], st.max_ei)
        if n and not self.trace:  # checkpoints without a session: the best so far at time 0
            self._update_trace(step=0)
        return n

    def _update_trace(self, step: int) -> None:
        inc = self.incumbent()
        if inc is None:
            return
        last = self.trace[-1] if self.trace else None
        if last is None or inc["accuracy"] > last["accuracy"]:
            self.trace.append({"elapsed": self.elapsed, "step": step, **inc})

    def predicted_step_seconds(self, config_id: int) -> float:
        """The optimizer's cost model for the next epoch of `config_id` (observed seconds for a
        started run, the calibrated cost net for a new one)."""
        log_cost = self.optimizer.log_step_cost(np.array([config_id]))
        return float(np.exp(log_cost[0]))

    # -- one step, shared by the one-worker loop (`run`) and the pool (`suggest.parallel`) ----------
    def stop_before_ask(self) -> str | None:
        """Why no further step may start now (the stop rule's reason, or "budget"), or None. Until
        one epoch is trained the search goes on whatever the set-up cost: a search that reports
        nothing helps no one. `reserve` seconds are kept for the shut-down."""
        if self.monitor.reason is not None:  # the stop rule held after the last step
            return self.monitor.reason
        if self.elapsed + self.reserve >= self.budget and self.epochs_trained > 0:
            return "budget"
        return None

    def next_trial(self) -> tuple[Trial | None, float]:
        """(the next trial, optimizer seconds): first the runs that were in flight when the last
        session was killed (continued from their last checkpointed epoch), then the optimizer's
        choice; the trial is pending in the optimizer from here on."""
        while self.restart:
            t = self.restart.pop(0)
            if self.optimizer.can_propose(t.config_id) and self.optimizer.epochs_done(t.config_id) < t.epoch:
                self.optimizer.add_pending(t)
                return t, 0.0
        t0 = time.perf_counter()
        trial = self.optimizer.ask()
        if trial is not None:
            self._max_ei[trial.config_id] = getattr(self.optimizer, "last_max_ei", None)
        return trial, time.perf_counter() - t0

    def refuse(self, trial: Trial) -> str | None:
        """Why `trial` must not start ("next step would overrun the budget"), or None; a refused
        trial is released from the optimizer's pending set."""
        predicted = self.predicted_step_seconds(trial.config_id)
        if self.epochs_trained > 0 and self.elapsed + predicted + self.reserve > self.budget:
            self.optimizer.release(trial)
            return "next step would overrun the budget"
        self._predicted[trial.config_id] = predicted
        return None

    def started(self, trial: Trial) -> None:
        """A trial is about to train: saved as pending (a kill restarts it) and shown."""
        c = self.configs[trial.config_id]
        self.current = {"config_id": trial.config_id, "model": c.model, "elr": c.elr, "epoch": trial.epoch,
                        "predicted_seconds": self._predicted.get(trial.config_id, math.nan), "started": time.perf_counter()}
        self.save_session()
        self._emit("step_start")

    def record(self, trial: Trial, obs: Observation, overhead: float) -> None:
        """Tell the optimizer a finished trial, log the step, save the session."""
        self.optimizer.tell(obs)
        if self.current is not None and self.current["config_id"] == trial.config_id:
            self.current = None
        acc = obs.curve[-1] if obs.curve else math.nan
        max_ei = self._max_ei.pop(trial.config_id, None)
        self.steps.append(StepRecord(len(self.steps) + 1, trial.config_id, obs.epochs, float(acc),
                                     float(obs.seconds), self.elapsed, overhead, max_ei))
        self.monitor.observe([float(acc)], max_ei)
        self._update_trace(step=len(self.steps))
        self.save_session()
        self._emit("step")

    def objective_factory(self, threads: int | None = None) -> Callable[[], Any]:
        """A picklable factory of this search's objective for a worker process: same work dir and
        settings, `threads` torch threads, the worker's GPU when it sees one, and no run kept in
        memory between trials (another worker may have continued it since: every trial starts
        from the run's checkpoint)."""
        import functools

        return functools.partial(_worker_objective, {**self._objective_args, "num_threads": threads, "live_models": 0})

    def begin(self) -> None:
        self.sessions += 1
        self._emit("start")

    def end(self, reason: str, interrupted: bool = False) -> str:
        self.stop_reason = reason
        self.current = None
        self._frozen = self.elapsed
        self.save_session()
        if not interrupted:
            self._emit("stop")
        return reason

    def run(self) -> str:
        """Search until the budget is used; returns why it stopped: the stop rule's reason
        (`stop_rule`, e.g. "no improvement for 40 epochs (patience=40)"), "budget", "next step would
        overrun the budget" or "every candidate is finished". A step is not started when the
        budget is used or the step is predicted to overrun it, except that a search with no epoch
        trained yet always trains one. A KeyboardInterrupt saves the session (the interrupted
        epoch's time counts, its work is lost; its run restarts from its last epoch on a rerun)
        and propagates. `quicktune.suggest.parallel.run_parallel` is the same loop on N workers."""
        self.begin()
        try:
            while True:
                reason = self.stop_before_ask()
                if reason:
                    break
                trial, overhead = self.next_trial()
                if trial is None:
                    reason = "every candidate is finished"
                    break
                reason = self.refuse(trial)
                if reason:
                    break
                self.started(trial)
                self.record(trial, self.objective.evaluate(trial), overhead)
        except KeyboardInterrupt:
            self.end("interrupted", interrupted=True)
            raise
        return self.end(reason)

    def end_session(self, shutdown_seconds: float) -> None:
        """Record the shut-down that followed run() (report, plot, saved model): it counts
        towards the budget, and the next session reserves that much time for its own."""
        self.shutdown_seconds = float(shutdown_seconds)
        if self._frozen is not None:
            self._frozen += self.shutdown_seconds
        self.save_session()


def _worker_objective(kwargs: dict[str, Any]) -> Any:
    """The objective of one worker; on the GPU it was given (CUDA_VISIBLE_DEVICES), if any."""
    from quicktune.objective import FinetuneObjective

    return FinetuneObjective(**kwargs, device="cuda" if torch.cuda.is_available() else "cpu")
