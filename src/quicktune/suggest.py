"""`quicktune suggest`, the library side: which model to fine-tune on a user's data, and how.

The pieces, in the order the command uses them:

- `load_surrogate`: the meta-trained surrogate (default: the checkpoint shipped in the package,
  `DEFAULT_SURROGATE_PATH`), with one-line errors for a missing or foreign file.
- `resolve_models` / `make_candidates`: the hub models available offline x a seeded Sobol design
  of (ELR, weight decay, momentum) per model over the ranges the meta-dataset was collected on
  (`quicktune.collect`'s ELR_RANGE, WEIGHT_DECAY_RANGE, P_ZERO_WEIGHT_DECAY, MOMENTA).
- `open_target` / `task_features`: the user's ImageFolder (validated by `load_task`), its dataset
  descriptors and, per model, the domain features (EMD similarity, LogME, LEEP) computed at the
  resolution that model trains at, exactly as the collection campaign computed them for
  meta-training (500 images, seed 0; cached by `quicktune.features`).
- `zero_shot`: no training: the surrogate's prior at the full horizon (budget = max epochs, an
  empty curve) and its cost net, for every candidate, best first.
- `Search`: a timed search that really fine-tunes: `QuickTune` asks, `FinetuneObjective` trains
  one epoch per step (a new config at epoch 1, or one more epoch of a started one), until the
  wall-clock budget is used. All state lives in the work dir (run checkpoints + `session.json`),
  so running the same command again continues: the optimizer is re-told the history and the
  budget counts the time already spent.

Features are passed to the surrogate by name, so its own scaler (fitted at meta-training) scales
them; names it was not trained with are ignored and names it knows but we lack scale to 0 (the
training mean).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicktune.atomic import atomic_write
from quicktune.collect import ELR_RANGE, MOMENTA, P_ZERO_WEIGHT_DECAY, WEIGHT_DECAY_RANGE, training_size
from quicktune.data import TaskData, TaskSpec, load_task
from quicktune.space import Config

DEFAULT_SURROGATE_PATH = Path(__file__).resolve().parent / "assets" / "surrogate_v1.pt"
DEFAULT_CANDIDATES = 32  # hyperparameter configs per model
DEFAULT_TOP = 10
# Without a test/ folder, this share of each class of the training images is held out as the test
# split (seeded by the task's seed): the search never sees it (TaskSpec.test_fraction; `test=F`).
DEFAULT_TEST_FRACTION = 0.2
# How the v1 campaign computed the domain features the surrogate was meta-trained with
# (metadataset/campaign/campaign_v1.py): the same sample size and seed give the same numbers.
FEATURE_SAMPLES = 500
FEATURE_SEED = 0
# The v1 campaign trained with batch 32 at each model's input size capped at 64 px. A surrogate
# may record its own training setting in info["finetune"]; these are the fallbacks.
FALLBACK_BATCH_SIZE = 32
SESSION_FILE = "session.json"
SESSION_FORMAT = "quicktune-suggest-session"
SESSION_VERSION = 1


class SuggestError(ValueError):
    """Bad input to `suggest` (models, surrogate, options, a work dir of another search): one line."""


# ------------------------------------------------------------------------------------------------
# Surrogate and training settings
# ------------------------------------------------------------------------------------------------
def load_surrogate(path: str | os.PathLike[str] | None = None):
    """The surrogate checkpoint at `path` (default: the one shipped in the package)."""
    from quicktune.surrogate.gp import Surrogate

    p = Path(path).expanduser() if path is not None else DEFAULT_SURROGATE_PATH
    if not p.is_file():
        if path is None:
            raise SuggestError(
                f"the default surrogate {p} is missing from this installation; reinstall quicktune or pass "
                f"--surrogate FILE (a checkpoint written by `quicktune metatrain`)"
            )
        raise SuggestError(f"{p}: no such surrogate checkpoint (--surrogate expects a file written by `quicktune metatrain`)")
    try:
        return Surrogate.load(p)
    except FileNotFoundError as e:
        raise SuggestError(str(e)) from None
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not msg.startswith(str(p)):
            msg = f"{p}: not a compatible surrogate checkpoint ({msg})"
        raise SuggestError(msg) from None


def finetune_settings(surrogate: Any) -> dict[str, Any]:
    """How the runs the surrogate learned from were trained: {"batch_size", "max_image_size"}.

    Read from `surrogate.info["finetune"]` when meta-training recorded it, else the v1 campaign's
    setting (batch 32; no resolution cap is assumed, so a GPU user trains at full resolution).
    """
    info = dict(getattr(surrogate, "info", {}) or {}).get("finetune") or {}
    return {
        "batch_size": int(info.get("batch_size", FALLBACK_BATCH_SIZE)),
        "max_image_size": (int(info["max_image_size"]) if info.get("max_image_size") else None),
    }


# ------------------------------------------------------------------------------------------------
# Models and candidates
# ------------------------------------------------------------------------------------------------
def resolve_models(models: Sequence[str] | None, weights_dir: str | os.PathLike[str] | None) -> list[str]:
    """The models to consider: `models` (checked: each must load offline from the weights dir),
    or every model available offline when None."""
    from quicktune import hub

    wd = Path(weights_dir).expanduser() if weights_dir is not None else hub.default_weights_dir()
    available = hub.list_models(wd)
    if not available:
        raise SuggestError(
            f"no model weights found in {wd}; point --weights-dir (or $QUICKTUNE_WEIGHTS) at a folder of hub "
            f"checkpoints or published weights (see `quicktune hub list`)"
        )
    if models is None:
        return available
    chosen = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not chosen:
        raise SuggestError("--models is empty; give comma-separated hub model names")
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise SuggestError(
            f"unknown model(s) {', '.join(unknown)}; models available offline in {wd}: {', '.join(available)}"
        )
    return chosen


def _round(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def candidate_hyperparameters(n: int, seed: int = 0) -> list[dict[str, float]]:
    """`n` (elr, weight_decay, momentum) points of a scrambled Sobol design (seeded) over the
    collection's space: ELR log-uniform over ELR_RANGE, weight decay 0 with probability
    P_ZERO_WEIGHT_DECAY else log-uniform over WEIGHT_DECAY_RANGE, momentum one of MOMENTA.
    Quasi-random rather than random: n points cover the space evenly, with no clumps or holes."""
    from torch.quasirandom import SobolEngine

    if n < 1:
        raise SuggestError(f"`--candidates >= 1` must hold, but got {n}")
    # torch's Sobol engine (torch is loaded anyway; scipy.stats alone takes seconds to import).
    seed_int = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5097]).generate_state(1)[0])
    u = SobolEngine(dimension=3, scramble=True, seed=seed_int).draw(n, dtype=torch.float64).numpy()
    lo_e, hi_e = math.log10(ELR_RANGE[0]), math.log10(ELR_RANGE[1])
    lo_w, hi_w = math.log10(WEIGHT_DECAY_RANGE[0]), math.log10(WEIGHT_DECAY_RANGE[1])
    out = []
    for a, b, c in u:
        elr = 10 ** (lo_e + a * (hi_e - lo_e))
        if b < P_ZERO_WEIGHT_DECAY:
            wd = 0.0
        else:
            wd = 10 ** (lo_w + (b - P_ZERO_WEIGHT_DECAY) / (1 - P_ZERO_WEIGHT_DECAY) * (hi_w - lo_w))
        mom = float(MOMENTA[min(int(c * len(MOMENTA)), len(MOMENTA) - 1)])
        out.append({"elr": _round(elr), "weight_decay": _round(wd) if wd else 0.0, "momentum": mom})
    return out


def make_candidates(models: Sequence[str], n: int, seed: int = 0) -> list[Config]:
    """models x the same `n` Sobol hyperparameter points (model-major), de-duplicated."""
    hps = candidate_hyperparameters(n, seed)
    configs = [Config(m, hp["elr"], hp["weight_decay"], hp["momentum"]) for m in models for hp in hps]
    return list(dict.fromkeys(configs))


def candidates_fingerprint(configs: Sequence[Config]) -> str:
    blob = json.dumps([c.to_dict() for c in configs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# The user's task and its features
# ------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """The user's task: where it is and at which resolution each model sees it."""

    spec: TaskSpec
    weights_dir: str | None = None
    max_image_size: int | None = None
    skip_unreadable: bool = False
    _loaded: dict[int, TaskData] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.task_name

    def size_for(self, model: str) -> int:
        """The resolution `model` trains at (the spec's size, else its input size capped)."""
        from quicktune.hub import model_info

        return int(self.spec.size or training_size(model_info(model, self.weights_dir).input_size, self.max_image_size))

    def data(self, size: int) -> TaskData:
        """The task loaded at `size` (decoded once per size; `load_task` caches on disk too)."""
        if size not in self._loaded:
            self._loaded[size] = load_task(self.spec, size, skip_unreadable=self.skip_unreadable)
        return self._loaded[size]

    def release(self) -> None:
        self._loaded.clear()


def open_target(
    data: str | os.PathLike[str],
    models: Sequence[str],
    weights_dir: str | os.PathLike[str] | None = None,
    max_image_size: int | None = None,
    skip_unreadable: bool = False,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> Target:
    """Validate the data folder (DataError with one line on bad input) by loading it once.

    The task holds out a test split (its test/ folder, else `test_fraction` of train) unless the
    spec sets `test=` itself (`test=0`: no test split)."""
    if max_image_size is not None and not 4 <= max_image_size <= 4096:
        raise SuggestError(f"`4 <= --max-image-size <= 4096` must hold, but got {max_image_size}")
    spec = TaskSpec.parse(str(data))
    spec = replace(spec, path=str(Path(spec.path).expanduser().resolve()),
                   test_fraction=spec.test_fraction if spec.test_fraction is not None else test_fraction)
    target = Target(spec, str(weights_dir) if weights_dir is not None else None, max_image_size, skip_unreadable)
    if not models:
        raise SuggestError("no models to consider")
    target.data(target.size_for(models[0]))
    return target


@dataclass
class TaskFeatures:
    """What the surrogate sees of the task: dataset descriptors, per-model domain features and
    model descriptors (all by name; the surrogate's scaler scales them)."""

    dataset: dict[str, float]
    pairs: dict[str, dict[str, float]]
    models: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "pairs": self.pairs, "models": self.models}


def task_features(
    target: Target,
    models: Sequence[str],
    *,
    pretrained: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_model: Callable[[str, int, int], None] | None = None,
) -> TaskFeatures:
    """Dataset descriptors + domain features of every model (cached) + hub model descriptors.

    on_model(model, i, n) is called before model i (0-based) of n, and once more with i == n.
    """
    from quicktune.features import dataset_descriptors, domain_features
    from quicktune.hub import model_info

    models = list(models)
    ds = dataset_descriptors(target.data(target.size_for(models[0])))
    pairs: dict[str, dict[str, float]] = {}
    descs: dict[str, dict[str, float]] = {}
    for i, m in enumerate(models):
        if on_model is not None:
            on_model(m, i, len(models))
        size = target.size_for(m)
        pairs[m] = domain_features(m, target.data(size), weights_dir=target.weights_dir, n_samples=FEATURE_SAMPLES,
                                   seed=FEATURE_SEED, cache_dir=cache_dir, image_size=size, pretrained=pretrained)
        descs[m] = model_info(m, target.weights_dir).descriptors()
    if on_model is not None:
        on_model("", len(models), len(models))
    return TaskFeatures(ds, pairs, descs)


def out_of_range(surrogate: Any, features: TaskFeatures, limit: float = 3.0) -> list[tuple[str, str, float]]:
    """The target's features that lie more than `limit` meta-training standard deviations from the
    meta-training mean: [(model or "", feature, z)], largest |z| first. Predictions that rest on
    them are extrapolations (a deep kernel's mean can leave [0, 1] there)."""
    scaler = surrogate.scaler
    found: dict[tuple[str, str], float] = {}
    for m, pair in features.pairs.items():
        z = scaler.transform([{**features.dataset, **pair}])[0]
        for name, v in zip(scaler.names, z):
            if abs(v) > limit:
                key = ("" if name in features.dataset else m, name)
                found[key] = max(found.get(key, 0.0), float(v), key=abs)
    return sorted(((m, n, v) for (m, n), v in found.items()), key=lambda t: -abs(t[2]))


# ------------------------------------------------------------------------------------------------
# Zero-shot ranking
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The surrogate's zero-shot guess for one candidate trained for `epochs` epochs."""

    config_id: int
    config: Config
    accuracy: float  # predicted validation accuracy after `epochs` epochs, clipped to [0, 1]
    std: float  # its posterior standard deviation
    seconds_per_epoch: float
    epochs: int

    @property
    def seconds(self) -> float:
        return self.seconds_per_epoch * self.epochs

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum, "weight_decay": c.weight_decay,
            "predicted_accuracy": self.accuracy, "predicted_accuracy_std": self.std, "epochs": self.epochs,
            "predicted_seconds_per_epoch": self.seconds_per_epoch, "predicted_seconds": self.seconds,
            "predicted_minutes": self.seconds / 60.0,
        }


def zero_shot(surrogate: Any, configs: Sequence[Config], features: TaskFeatures, epochs: int) -> list[Prediction]:
    """Every candidate's predicted accuracy at epoch `epochs` of an `epochs`-epoch run (budget 1,
    no curve observed) and its predicted cost, best predicted accuracy first (ties: candidate
    order)."""
    if epochs < 1:
        raise SuggestError(f"`--epochs >= 1` must hold, but got {epochs}")
    n = len(configs)
    if n == 0:
        return []
    static = surrogate.static_inputs(configs, features.dataset, features.pairs, features.models)
    rows = surrogate.rows(static, np.full(n, epochs, dtype=int), [()] * n, horizon=epochs)
    surrogate.condition(None, None)  # the prior: nothing observed on this task
    mean, var = surrogate.posterior(rows)
    log_cost = surrogate.log_cost(static)
    mean, std = mean.numpy(), torch.sqrt(var).numpy()
    sec = np.exp(log_cost.numpy())
    order = sorted(range(n), key=lambda i: (-mean[i] if math.isfinite(mean[i]) else math.inf, i))
    # The GP mean is unbounded; an accuracy is not. Ranking uses the raw mean (clipping would tie).
    acc = np.clip(mean, 0.0, 1.0)
    return [Prediction(i, configs[i], float(acc[i]), float(std[i]), float(sec[i]), int(epochs)) for i in order]


# ------------------------------------------------------------------------------------------------
# The timed search
# ------------------------------------------------------------------------------------------------
def default_workdir(target_name: str, root: str | os.PathLike[str] = ".quicktune") -> Path:
    """./.quicktune/<data name> (a derived task's options joined with '_')."""
    return Path(root) / re.sub(r"[^\w.+-]+", "_", target_name).strip("_")


def _atomic_json(obj: Any, path: Path) -> None:
    with atomic_write(path, "w") as f:  # a kill leaves the old session or the new one, never half of one
        json.dump(obj, f, indent=1, allow_nan=True)


@dataclass
class StepRecord:
    """One step of the search: config `config_id` trained to `epoch` (one more epoch)."""

    step: int
    config_id: int
    epoch: int
    accuracy: float
    seconds: float  # wall-clock of the step (model building and checkpointing included)
    elapsed: float  # session clock at the end of the step
    overhead: float  # optimizer seconds (refit + acquisition) before the step
    max_ei: float | None = None  # the optimizer's largest expected improvement when it chose the step


class Search:
    """A resumable, wall-clock-budgeted Quick-Tune search that really fine-tunes.

    budget_seconds: the total wall-clock of the search over all its sessions (time spent before
                    an interruption counts). `clock_start` (a time.perf_counter() value) lets the
                    caller count its own set-up (data loading, features) too.
    The work dir holds `runs/` (the objective's checkpoints) and `session.json`; a work dir of a
    search with other identity settings (data, candidates, epochs, seed, batch size,
    resolution) is refused with a SuggestError rather than mixed.
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
        on_event: Callable[[str, Search], None] | None = None,
        stop_rule: Any = None,
    ) -> None:
        from quicktune.objective import FinetuneObjective
        from quicktune.stopping import StopMonitor, StopRule
        from quicktune.optimizer.quicktune import QuickTune
        from quicktune.space import SearchSpace

        if not budget_seconds > 0:
            raise SuggestError(f"a timed search needs `budget > 0`, but got {budget_seconds}s")
        if max_epochs < 1:
            raise SuggestError(f"`--epochs >= 1` must hold, but got {max_epochs}")
        self.configs = list(configs)
        self.target = target
        self.features = features
        self.budget = float(budget_seconds)
        self.max_epochs = int(max_epochs)
        self.workdir = Path(workdir)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.on_event = on_event
        self.stop_rule = stop_rule if stop_rule is not None else StopRule.parse(None)
        self.monitor = StopMonitor(self.stop_rule)
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
        self._load_session()  # refuses a work dir of another search before anything is written

        if threads:
            torch.set_num_threads(int(threads))
        # Model identity is kept apart from hyperparameters; hyperparameters are encoded with the
        # surrogate's saved extra spec so they match meta-training (the surrogate re-encodes them
        # itself from its space state; this space lists the candidates and their models).
        self.space = SearchSpace(self.configs, extra_spec=surrogate.space_state["extra_spec"])
        self.objective = FinetuneObjective(
            self.space, target.spec, self.max_epochs, self.workdir, self.seed, max_image_size=target.max_image_size,
            batch_size=self.batch_size, num_threads=threads, weights_dir=target.weights_dir, pretrained=pretrained,
            skip_unreadable=target.skip_unreadable, keep_finished_models=True, keep_best_weights=True,
        )
        self.optimizer = QuickTune(
            self.space, self.max_epochs, self.seed, surrogate=surrogate, dataset_features=features.dataset,
            pair_features=features.pairs, model_descriptors=features.models, refit_steps=refit_steps,
        )
        self.stop_reason: str | None = None
        self.current: dict[str, Any] | None = None  # the step in progress (for a live display)
        self.resumed_epochs = 0

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
    def _load_session(self) -> None:
        if not self.session_path.is_file():
            return
        try:
            state = json.loads(self.session_path.read_text())
        except (OSError, ValueError) as e:
            raise SuggestError(f"{self.session_path}: unreadable search session ({e}); delete it to start over") from None
        if state.get("format") != SESSION_FORMAT or state.get("version") != SESSION_VERSION:
            raise SuggestError(f"{self.session_path}: not a quicktune suggest session of version {SESSION_VERSION}")
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

    def save_session(self) -> None:
        _atomic_json(
            {
                "format": SESSION_FORMAT, "version": SESSION_VERSION, "identity": self.identity,
                "budget_seconds": self.budget, "elapsed_seconds": self.elapsed, "sessions": self.sessions,
                "steps": [vars(s) for s in self.steps], "trace": self.trace,
                "stop_reason": self.stop_reason, "saved_at": time.time(),
            },
            self.session_path,
        )

    # -- the loop ---------------------------------------------------------------------------------
    def _emit(self, kind: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, self)

    def resume(self) -> int:
        """Tell the optimizer every epoch already trained in the work dir; returns how many."""
        from quicktune.protocol import Observation

        n = 0
        for obs in self.objective.history():
            ft = self.objective.finetuner(obs.trial.config_id)
            # The epochs' recorded seconds let the cost model calibrate on this machine at once.
            secs = tuple(r.seconds for r in ft.results)
            self.optimizer.tell(Observation(obs.trial, obs.curve, 0.0, secs, obs.finished))
            n += len(obs.curve)
        self.resumed_epochs = n
        for st in self.steps:  # the stop rule sees the earlier sessions' steps again
            self.monitor.observe([st.accuracy], st.max_ei)
        if n and not self.trace:  # checkpoints without a session: the best so far at time 0
            self._update_trace(step=0)
        return n

    def incumbent(self) -> dict[str, Any] | None:
        """The best run so far: {config_id, model, elr, lr, momentum, weight_decay, accuracy, epoch}."""
        inc = self.optimizer.incumbent()
        if inc is None:
            return None
        cid, acc = inc
        curve = self.optimizer.curves[cid]
        epoch = next(t for t, v in enumerate(curve, start=1) if v == acc)
        c = self.configs[cid]
        return {"config_id": cid, "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum,
                "weight_decay": c.weight_decay, "accuracy": float(acc), "epoch": epoch}

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

    @property
    def epochs_trained(self) -> int:
        return sum(len(c) for c in self.optimizer.curves.values())

    def run(self) -> str:
        """Search until the budget is used; returns why it stopped: "budget", "next step would
        overrun the budget" or "every candidate is finished". A step is not started when the
        budget is used or the step is predicted to overrun it, except that a search with no epoch
        trained yet always trains one. A KeyboardInterrupt saves the session (the interrupted
        epoch's time counts, its work is lost) and propagates."""
        self.sessions += 1
        self._emit("start")
        try:
            while True:
                # Until one epoch is trained, the search goes on whatever the set-up cost or the
                # first step is predicted to cost: a search that reports nothing helps no one.
                if self.elapsed >= self.budget and self.epochs_trained > 0:
                    self.stop_reason = "budget"
                    break
                if self.monitor.reason is not None:  # --stop-when held after the last step
                    self.stop_reason = self.monitor.reason
                    break
                t_ask = time.perf_counter()
                trial = self.optimizer.ask()
                overhead = time.perf_counter() - t_ask
                if trial is None:
                    self.stop_reason = "every candidate is finished"
                    break
                predicted = self.predicted_step_seconds(trial.config_id)
                if self.epochs_trained > 0 and self.elapsed + predicted > self.budget:
                    self.stop_reason = "next step would overrun the budget"
                    break
                c = self.configs[trial.config_id]
                self.current = {"config_id": trial.config_id, "model": c.model, "elr": c.elr, "epoch": trial.epoch,
                                "predicted_seconds": predicted, "started": time.perf_counter()}
                self._emit("step_start")
                obs = self.objective.evaluate(trial)
                self.optimizer.tell(obs)
                self.current = None
                acc = obs.curve[-1] if obs.curve else math.nan
                max_ei = getattr(self.optimizer, "last_max_ei", None)
                self.steps.append(StepRecord(len(self.steps) + 1, trial.config_id, obs.epochs, float(acc),
                                             float(obs.seconds), self.elapsed, overhead, max_ei))
                self.monitor.observe([float(acc)], max_ei)
                self._update_trace(step=len(self.steps))
                self.save_session()
                self._emit("step")
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self.current = None
            self._frozen = self.elapsed
            self.save_session()
            raise
        self._frozen = self.elapsed
        self.save_session()
        self._emit("stop")
        return self.stop_reason

    # -- results ----------------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        """Every run trained so far (candidate order): config, curve, per-epoch seconds."""
        out = []
        for cid in sorted(self.optimizer.curves):
            ft = self.objective.finetuner(cid)
            c = self.configs[cid]
            out.append({
                "config_id": cid, "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum,
                "weight_decay": c.weight_decay, "curve": [float(r.val_acc) for r in ft.results],
                "epoch_seconds": [float(r.seconds) for r in ft.results], "seconds": float(sum(r.seconds for r in ft.results)),
                "epochs": ft.epochs_done, "finished": ft.finished, "status": ft.status, "run_key": ft.run_key,
            })
        return out

    def test_estimate(self, which: str = "best") -> Any:
        """The chosen model's accuracy on the test split with its Wilson 95% interval
        (`estimate.AccuracyEstimate`), or None when the task has no test split or nothing was
        trained. The chosen model: the incumbent run as of its best epoch (`which="best"`, the epoch
        the report calls best) or of its last trained epoch ("last")."""
        from quicktune.estimate import AccuracyEstimate

        inc = self.incumbent()
        if inc is None:
            return None
        ft = self.objective.finetuner(inc["config_id"])
        if ft.data.test is None or len(ft.data.test) == 0:
            return None
        model, _ = ft.trained_model(which)
        correct, n, _ = ft.score(ft.data.test, model)
        return AccuracyEstimate(correct, n)

    def chosen(self, which: str = "best") -> dict[str, Any] | None:
        """Which weights are handed back: {config_id, which, epoch, val_accuracy}."""
        inc = self.incumbent()
        if inc is None:
            return None
        ft = self.objective.finetuner(inc["config_id"])
        epoch = inc["epoch"] if which == "best" else ft.epochs_done
        return {"config_id": inc["config_id"], "which": which, "epoch": epoch,
                "val_accuracy": float(ft.results[epoch - 1].val_acc)}

    def report(self, surrogate_path: str | None = None, which: str = "best", test: bool = True) -> dict[str, Any]:
        """The JSON-able report: best config (selected on validation), the chosen model's test
        accuracy (the unbiased estimate; `test=False` skips measuring it), every run's curve, the
        incumbent trace, the steps."""
        runs = self.runs()
        inc = self.incumbent()
        estimate, test_split = None, ""
        if inc is not None:
            test_split = self.objective.finetuner(inc["config_id"]).data.test_source
            try:
                estimate = self.test_estimate(which) if test else None
            except RuntimeError as e:  # e.g. a work dir from before best weights were kept
                test_split = f"not measured: {e}"
        best = None
        if inc is not None:
            run = next(r for r in runs if r["config_id"] == inc["config_id"])
            best = {**inc, "curve": run["curve"], "epochs": run["epochs"], "seconds": run["seconds"],
                    "final_accuracy": run["curve"][-1] if run["curve"] else math.nan, "finished": run["finished"],
                    "run_key": run["run_key"], "max_epochs": self.max_epochs}
        return {
            "task": self.target.name,
            "data": self.target.spec.path,
            "surrogate": surrogate_path,
            "budget_seconds": self.budget,
            "elapsed_seconds": self.elapsed,
            "stop_reason": self.stop_reason,
            "stop_when": self.stop_rule.to_string(),
            "seed": self.seed,
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "max_image_size": self.target.max_image_size,
            "candidates": len(self.configs),
            "models": sorted({c.model for c in self.configs}),
            "steps": len(self.steps),
            "epochs_trained": self.epochs_trained,
            "sessions": self.sessions,
            "optimizer_overhead": self.optimizer.overhead,
            "best": best,
            "chosen": self.chosen(which),
            "test": estimate.to_dict() if estimate is not None else None,
            "test_split": test_split or "no test split (test=0)",
            "runs": runs,
            "trace": self.trace,
            "step_log": [vars(s) for s in self.steps],
        }

    def save_best_model(self, weights_dir: str | os.PathLike[str], name: str | None = None,
                        which: str = "best") -> tuple[str, Path]:
        """Save the incumbent's fine-tuned model as a hub checkpoint: as of the epoch the report
        calls best (`which="best"`) or of its last trained epoch ("last"); returns (hub name, .pth
        path): `hub.create_model(name, weights_dir=weights_dir)` loads it."""
        inc = self.incumbent()
        if inc is None:
            raise SuggestError("no run has finished an epoch yet: there is no fine-tuned model to save")
        ft = self.objective.finetuner(inc["config_id"])
        path = ft.save_model(weights_dir, name, which=which)
        return path.stem, path


__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_SURROGATE_PATH",
    "Prediction",
    "Search",
    "SuggestError",
    "Target",
    "TaskFeatures",
    "candidate_hyperparameters",
    "default_workdir",
    "finetune_settings",
    "load_surrogate",
    "make_candidates",
    "open_target",
    "resolve_models",
    "task_features",
    "zero_shot",
]
