"""The one base every peer adapter (Optuna, SMAC3, DEHB, Syne Tune, Quick-Tune-Tool, best-default)
derives from. It applies the rules of the peer benchmark, so that no adapter can bend them:

1. Nearest candidate. A peer searches a continuous/categorical domain derived from the
   candidates (`Domain`); a suggestion that is not a candidate is answered by the nearest
   candidate (`CandidateIndex.nearest`: fewest categorical mismatches, the model counting
   before any other categorical, then the smallest Euclidean distance over the numeric
   hyperparameters in the space's [0, 1] encoding, ties to the lowest id).
2. Charging. A pause/resume peer (SMAC, DEHB, Quick-Tune-Tool) that asks for a candidate it
   trained before continues it and pays only the new epochs. A stop-only peer (Optuna, Syne Tune's
   ASHA and BOHB, whose scheduler in 0.16 only stops trials) starts every new trial from epoch 1:
   if that candidate ran before, the trial carries `restart=True` and every epoch is paid again,
   as it would be in reality.
3. A recorded curve ends where its recording ends: a budget beyond the recording is answered
   with the last recorded epoch's value (`value_at`), charging nothing more, and the peer is told
   the run can not go further where its API allows.
4. The incumbent is the best value seen at any epoch (the replay loop reads it off every
   observed epoch; the base `Optimizer.incumbent` does the same).

Peers minimise a loss: they are given 1 - accuracy, and a diverged (NaN) epoch counts as
accuracy 0. Subclasses implement `propose() -> Job | None` and `observe(job, observation)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from quicktune.protocol import Observation, Optimizer, Trial
from quicktune.space import SearchSpace

MODEL = "model"
# Categorical mismatches cost more than any numeric distance (numeric coordinates lie in [0, 1],
# so a distance is at most sqrt(d)); a model mismatch costs more than all the others together.
_CAT_WEIGHT = 1e3
_MODEL_WEIGHT = 1e6


@dataclass(frozen=True)
class Domain:
    """What a peer searches: numeric hyperparameters (name -> (low, high), in the space's [0, 1]
    encoding: log10 for the learning rate, weight decay and wide-ranged extras) and categorical
    ones (name -> choices). Names that take a single value over the candidates are left out."""

    numeric: dict[str, tuple[float, float]]
    categorical: dict[str, tuple[str, ...]]

    def configspace(self, seed: int) -> Any:
        """The domain as a ConfigSpace `ConfigurationSpace` (SMAC, DEHB, Quick-Tune-Tool)."""
        from ConfigSpace import Categorical, ConfigurationSpace, Float

        cs = ConfigurationSpace(seed=seed)
        cs.add([Float(n, (lo, hi)) for n, (lo, hi) in self.numeric.items()]
               + [Categorical(n, list(c)) for n, c in self.categorical.items()])
        return cs


class CandidateIndex:
    """The candidates of `space` as numeric coordinates and categorical codes, for mapping a
    peer's suggestion to the nearest candidate.

    numeric:     (n, p) coordinates in [0, 1] (the columns of `space.encode()` that are numeric)
    categorical: (n, c) int codes into `domain.categorical[name]` (-1 for a missing value)
    """

    def __init__(self, space: SearchSpace) -> None:
        enc = space.encode().numpy()
        names = space.hp_names
        num_cols = [i for i, n in enumerate(names) if "=" not in n]  # one-hot columns are "name=choice"
        num_names = [names[i] for i in num_cols]
        x = enc[:, num_cols]
        cat_values: dict[str, list[str]] = {MODEL: [c.model for c in space.configs]}
        for k, spec in space.extra_spec.items():
            if spec["kind"] == "categorical":
                cat_values[k] = [str(c.extra(k)) for c in space.configs]
        keep = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) > 0]
        self.numeric_names = [num_names[j] for j in keep]
        self.numeric = x[:, keep].astype(float)
        self.categorical_names = [k for k, v in cat_values.items() if len(set(v)) > 1]
        choices = {k: tuple(sorted(set(cat_values[k]))) for k in self.categorical_names}
        self.categorical = np.array(
            [[choices[k].index(v) for v in cat_values[k]] for k in self.categorical_names], dtype=int
        ).T.reshape(len(space), len(self.categorical_names))
        self.domain = Domain(
            {n: (float(self.numeric[:, j].min()), float(self.numeric[:, j].max())) for j, n in enumerate(self.numeric_names)},
            choices,
        )
        self._weights = np.array([_MODEL_WEIGHT if k == MODEL else _CAT_WEIGHT for k in self.categorical_names])

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def point(self, config_id: int) -> dict[str, Any]:
        """Candidate `config_id` as a point of the domain (name -> value)."""
        out: dict[str, Any] = {n: float(self.numeric[config_id, j]) for j, n in enumerate(self.numeric_names)}
        for j, k in enumerate(self.categorical_names):
            out[k] = self.domain.categorical[k][self.categorical[config_id, j]]
        return out

    def distances(self, suggestion: Mapping[str, Any], allowed: np.ndarray | None = None) -> np.ndarray:
        """(n,) distance of every candidate to `suggestion` (a point of the domain; names it
        does not give are ignored); candidates outside the boolean mask `allowed` get +inf."""
        d = np.zeros(len(self))
        cols = [j for j, n in enumerate(self.numeric_names) if n in suggestion]
        if cols:
            target = np.array([float(suggestion[self.numeric_names[j]]) for j in cols])
            d += np.sqrt(((self.numeric[:, cols] - target) ** 2).sum(axis=1))
        for j, k in enumerate(self.categorical_names):
            if k in suggestion:
                want = str(suggestion[k])
                code = self.domain.categorical[k].index(want) if want in self.domain.categorical[k] else -2
                d += self._weights[j] * (self.categorical[:, j] != code)
        if allowed is not None:
            d = np.where(allowed, d, np.inf)
        return d

    def nearest(self, suggestion: Mapping[str, Any], allowed: np.ndarray | None = None) -> int:
        """Id of the candidate nearest to `suggestion` (ties: the lowest id)."""
        d = self.distances(suggestion, allowed)
        if not np.isfinite(d).any():
            raise ValueError("no candidate is allowed: the nearest candidate is undefined")
        return int(np.argmin(d))


@dataclass
class Job:
    """A peer's request: train candidate `config_id` up to epoch `epoch`. `new_run` marks the
    first request of a new peer trial (a stop-only peer pays from epoch 1 then); `token` is the
    peer's own handle for the trial (SMAC's TrialInfo, an Optuna trial, ...), passed back
    unchanged."""

    config_id: int
    epoch: int
    new_run: bool = False
    token: Any = None
    info: dict[str, Any] = field(default_factory=dict)


class PeerOptimizer(Optimizer):
    """Base of the peer adapters (see the module docstring for the rules it applies)."""

    stop_only: ClassVar[bool] = False
    # A pause/resume peer re-asking runs that are fully trained makes no progress: after this many
    # such requests in a row the search ends ("exhausted") instead of spinning.
    max_idle: ClassVar[int] = 500

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        super().__init__(space, max_epochs, seed)
        self.candidates = CandidateIndex(space)
        self.domain = self.candidates.domain
        self._job: Job | None = None
        self._idle = 0
        self.n_jobs = 0
        self.n_restarts = 0

    # -- what a subclass implements -------------------------------------------------------------
    def propose(self) -> Job | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, job: Job, observation: Observation) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the protocol ---------------------------------------------------------------------------
    def ask(self) -> Trial | None:
        if self._job is not None:
            # The peers' own ask/tell loops are sequential here (one trial in flight).
            raise RuntimeError(f"{type(self).__name__} runs one trial at a time, but {self._job} is still pending")
        if len(self.finished) >= len(self.space) and not self.stop_only:
            return None  # every candidate is trained to the end of its recording
        if self._idle >= self.max_idle:
            return None
        job = self.propose()
        if job is None:
            return None
        job.epoch = int(min(max(1, job.epoch), self.max_epochs))
        restart = bool(self.stop_only and job.new_run and self.epochs_done(job.config_id) > 0)
        self.n_restarts += restart
        self.n_jobs += 1
        self._job = job
        return Trial(job.config_id, job.epoch, restart=restart)

    def tell(self, observation: Observation) -> None:  # type: ignore[override]  # the base class's wrapper adds (trial, score=, seconds=)
        super().tell(observation)
        job, self._job = self._job, None
        if job is None or job.config_id != observation.trial.config_id:
            raise RuntimeError(f"{type(self).__name__} was told {observation.trial} but asked {job}")
        self._idle = 0 if observation.epoch_seconds else self._idle + 1
        self.observe(job, observation)

    # -- helpers --------------------------------------------------------------------------------
    def nearest(self, suggestion: Mapping[str, Any]) -> int:
        return self.candidates.nearest(suggestion)

    @staticmethod
    def value_at(observation: Observation, epoch: int) -> float:
        """Accuracy at `epoch`, or at the last recorded epoch when the recording ends before it
        (rule 3); a diverged (NaN) epoch counts as 0."""
        curve = observation.curve
        if not curve:
            return 0.0
        v = curve[min(epoch, len(curve)) - 1]
        return 0.0 if math.isnan(v) else float(v)

    @classmethod
    def loss_at(cls, observation: Observation, epoch: int) -> float:
        """1 - accuracy at `epoch` (what a minimising peer is told)."""
        return 1.0 - cls.value_at(observation, epoch)

    @staticmethod
    def ended(observation: Observation, epoch: int) -> bool:
        """True when the run can not reach `epoch`: its recording (or the horizon) ends before."""
        return observation.finished and observation.epochs < epoch
