"""Quick-Tune: cost-aware freeze-thaw Bayesian optimisation with a meta-learned deep-kernel GP.

Every step either starts a new config at epoch 1 or continues a started one by exactly one
epoch. The surrogate predicts the accuracy each candidate would reach at that next epoch; the
acquisition is expected improvement over the incumbent AT THE SAME EPOCH (the best accuracy any
config has shown at that epoch, or the overall best if none reached it yet: DyHPO's rule, which
compares a config's next epoch with what others achieved with the same training), divided by the
predicted seconds of the step (cost-aware; off for the `-no-cost` ablation).

Before each decision the surrogate is conditioned on the target's observations and refitted with
a few gradient steps that always start from the meta-trained weights (so refits never drift);
with fewer than `min_refit_points` observations it is only conditioned, because gradient steps on
a handful of points overfit them (measured on the replay benchmark). Without a meta-trained
surrogate (the DyHPO-like `-no-meta` ablation) a fresh one is trained from the first observation
on, each step continuing from the last.

Parallel workers (several trials pending at once): a pending config is never a candidate, and
the surrogate is conditioned on every pending trial as if it had already returned its posterior
mean ("kriging believer", Ginsbourger et al. 2010): the posterior variance around a running trial
shrinks, so the next free worker is sent elsewhere instead of to the running trial's neighbours.
The believed values only shape the posterior; the incumbent (EI's reference) is always observed.
With one worker nothing is pending and the optimizer behaves exactly as the sequential one.

Cost model: a started config's next epoch costs what its epochs cost so far (observed); an
unstarted one gets the meta-trained cost net's prediction, corrected by the target's observed
residuals (a shrunk per-dataset offset plus a shrunk per-model offset). Without meta-training:
the observed mean of the same model, else of all observed epochs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from quicktune.optimizer.acquisition import LogEI
from quicktune.protocol import Observation, Optimizer, Trial
from quicktune.space import SearchSpace
from quicktune.surrogate.cost import CalibratedCost
from quicktune.surrogate.fit import refit
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import DTYPE, NetConfig


class QuickTune(Optimizer):
    """Ask/tell Quick-Tune optimizer over the candidates of `space`.

    surrogate: a meta-trained `Surrogate` (None: a fresh, untrained one, i.e. no meta-learning).
    dataset_features / pair_features / model_descriptors: the target's features, scaled by the
    surrogate's own scaler (so exactly as in meta-training).
    cost_aware: divide EI by the predicted seconds of the step.
    refit_steps / refit_lr / refit_scope: gradient steps per BO step (0: only condition the GP on
    the data), their learning rate, and what they train ("all": net + GP; "gp": GP hyperparameters).
    min_refit_points: below this many observations a meta-trained surrogate is only conditioned.
    max_train_points: the exact GP sees at most this many observations (each started config's
    latest epoch first, then a seeded random subset of the rest).
    """

    def __init__(
        self,
        space: SearchSpace,
        max_epochs: int,
        seed: int = 0,
        *,
        surrogate: Surrogate | None = None,
        dataset_features: Mapping[str, float] | None = None,
        pair_features: Mapping[str, Mapping[str, float]] | None = None,
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
        cost_aware: bool = True,
        cost_exponent: float = 1.0,
        refit_steps: int = 10,
        refit_lr: float | None = None,
        refit_scope: str | None = None,
        min_refit_points: int | None = None,
        max_train_points: int = 256,
        net: NetConfig | None = None,
    ) -> None:
        super().__init__(space, max_epochs, seed)
        if refit_steps < 0:
            raise ValueError(f"`refit_steps >= 0` must hold, but got refit_steps={refit_steps}")
        if max_train_points < 2:
            raise ValueError(f"`max_train_points >= 2` must hold, but got max_train_points={max_train_points}")
        self.meta = surrogate is not None
        # A private copy: refits change its weights, and the caller's surrogate may serve other searches.
        self.surrogate = copy.deepcopy(surrogate) if surrogate is not None else Surrogate.build(space, max_epochs, net=net, seed=seed)
        self.cost_aware = cost_aware
        self.cost_exponent = float(cost_exponent)
        self.refit_steps = int(refit_steps)
        # From meta-trained weights small steps suffice; a fresh net needs larger ones to learn at all.
        self.refit_lr = float(refit_lr) if refit_lr is not None else (1e-3 if self.meta else 1e-2)
        self.refit_scope = refit_scope or "all"
        # With a meta-trained surrogate and only a few target observations, gradient steps overfit
        # them and hurt (measured on the replay benchmark): until there are `min_refit_points`
        # observations the meta-trained GP is only conditioned on the data. A fresh net always trains.
        self.min_refit_points = int(min_refit_points) if min_refit_points is not None else (32 if self.meta else 0)
        self.max_train_points = int(max_train_points)
        self.rng = np.random.default_rng(seed)
        self._start = self.surrogate.weights() if self.meta else None

        n = len(space)
        # Cached once: static inputs of every candidate and the rows of unstarted candidates
        # (epoch 1, empty prefix), which is most of a large candidate set.
        self._static = self.surrogate.static_inputs(space.configs, dataset_features, pair_features, model_descriptors)
        self._fresh_rows = self.surrogate.rows(self._static, np.ones(n, dtype=int), [()] * n, horizon=max_epochs)
        self._prior_log_cost = self.surrogate.log_cost(self._static).numpy() if self.meta else None
        self._model_of = np.array([space.models.index(c.model) if c.model in space.models else -1 for c in space.configs])
        self._cost = CalibratedCost(self._prior_log_cost, self._model_of)
        self._row_cache: dict[tuple[int, int], Tensor] = {}
        self._epoch_seconds: dict[int, list[float]] = {}
        self._best_at = np.full(self.max_epochs + 1, -np.inf)  # best accuracy seen at epoch t
        self.step_seconds: list[float] = []  # optimizer overhead of each ask()
        # The largest plain EI (accuracy units, cost ignored) of the last scoring: how much the
        # optimizer still expects to gain at all (a stop rule reads it; None before any scoring).
        self.last_max_ei: float | None = None

    @classmethod
    def from_surrogate(
        cls,
        surrogate: Surrogate,
        models: Sequence[str],
        data_features: Mapping[str, float] | None = None,
        *,
        pair_features: Mapping[str, Mapping[str, float]] | None = None,
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
        candidates: int = 32,
        max_epochs: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> QuickTune:
        """Quick-Tune over `models` x a seeded Sobol design of `candidates` hyperparameter configs
        per model (`quicktune.design`), for a training loop of one epoch per trial.

        data_features: the target's dataset descriptors by name (n_samples, n_classes, image_size,
        channels; missing ones count as the meta-training mean). pair_features: per model, its
        domain features (EMD similarity, LogME, ...) if computed. model_descriptors: per model, the
        hub's descriptors (default: looked up in the hub for the models it knows offline).
        max_epochs: the epoch horizon (default: the surrogate's). Other keywords go to `QuickTune`.
        """
        from quicktune.design import sobol_hyperparameters
        from quicktune.space import Config

        models = list(dict.fromkeys(models))
        if not models:
            raise ValueError("`models` must name at least one model, but got none")
        hps = sobol_hyperparameters(candidates, seed)
        configs = list(dict.fromkeys(Config(m, h["elr"], h["weight_decay"], h["momentum"]) for m in models for h in hps))
        if model_descriptors is None:
            from quicktune.hub import model_descriptors as hub_descriptors

            model_descriptors = hub_descriptors(models)
        return cls(SearchSpace(configs), int(max_epochs or surrogate.max_epochs), seed, surrogate=surrogate,
                   dataset_features=data_features, pair_features=pair_features, model_descriptors=model_descriptors,
                   **kwargs)

    # -- ask/tell -----------------------------------------------------------------------------
    def ask(self) -> Trial | None:
        start = time.perf_counter()
        self.last_max_ei = None
        try:
            cand = self._candidates()
            if len(cand) == 0:
                return None
            if not self.curves and not self.meta:
                cid = int(self.rng.choice(cand))  # no knowledge at all: a random first config
            else:
                self.fit()
                scores = self.scores(cand)
                cid = int(cand[self._argmax(scores)])
            return Trial(cid, self.epochs_done(cid) + 1)
        finally:
            self.step_seconds.append(time.perf_counter() - start)

    def tell(self, observation: Observation) -> None:  # type: ignore[override]  # the base class's wrapper adds (trial, score=, seconds=)
        cid = observation.trial.config_id
        before = self.epochs_done(cid)
        super().tell(observation)
        curve = np.asarray(observation.curve, dtype=float)
        new = len(curve) - before
        secs = [float(s) for s in observation.epoch_seconds]
        if not secs and new > 0 and observation.seconds > 0:
            secs = [observation.seconds / new] * new  # only a total was reported: spread it evenly
        secs = [s for s in secs if math.isfinite(s) and s > 0]
        if secs:
            self._epoch_seconds.setdefault(cid, []).extend(secs)
        # A diverged run (NaN) is not worth continuing; a run that stopped short of the epoch
        # asked for can not be continued either (its recording or training ended).
        if np.isnan(curve).any() or len(curve) < observation.trial.epoch:
            self.finished.add(cid)
        for t, v in enumerate(curve, start=1):
            if t <= self.max_epochs and not math.isnan(v) and v > self._best_at[t]:
                self._best_at[t] = v

    # -- internals ----------------------------------------------------------------------------
    def _candidates(self) -> np.ndarray:
        """Config ids that may be asked: unstarted, or started and continuable."""
        n = len(self.space)
        ok = np.ones(n, dtype=bool)
        for cid in self.finished:
            ok[cid] = False
        for cid, curve in self.curves.items():
            if len(curve) >= self.max_epochs:
                ok[cid] = False
        for cid in self.pending:
            ok[cid] = False
        return np.flatnonzero(ok)

    def _row(self, cid: int, t: int) -> Tensor:
        """The packed row "config cid at epoch t after its first t - 1 epochs" (cached: curves only grow)."""
        key = (cid, t)
        row = self._row_cache.get(key)
        if row is None:
            prefix = self.curves[cid][: t - 1] if t > 1 else ()
            row = self.surrogate.rows(self._static[cid : cid + 1], [t], [prefix], horizon=self.max_epochs)
            self._row_cache[key] = row
        return row

    def training_data(self) -> tuple[Tensor | None, Tensor | None]:
        """The observations as GP training data: (x: (n x width), y: (n,)), NaN accuracy -> 0."""
        latest: list[tuple[int, int]] = []
        rest: list[tuple[int, int]] = []
        for cid, curve in self.curves.items():
            k = len(curve)
            if k == 0:
                continue
            latest.append((cid, k))
            rest.extend((cid, t) for t in range(1, k))
        pairs = latest + rest
        if not pairs:
            return None, None
        if len(pairs) > self.max_train_points:
            if len(latest) >= self.max_train_points:
                idx = self.rng.choice(len(latest), size=self.max_train_points, replace=False)
                pairs = [latest[i] for i in np.sort(idx)]
            else:
                idx = self.rng.choice(len(rest), size=self.max_train_points - len(latest), replace=False)
                pairs = latest + [rest[i] for i in np.sort(idx)]
        x = torch.cat([self._row(cid, t) for cid, t in pairs], dim=0)
        y = torch.tensor([self.curves[cid][t - 1] for cid, t in pairs], dtype=DTYPE)
        return x, torch.nan_to_num(y, nan=0.0)

    def fit(self) -> None:
        """Refit the surrogate on the current observations (or reset it to the prior if none),
        then condition it on the pending trials' believed values (`pending_rows`)."""
        x, y = self.training_data()
        if x is None:
            if self._start is not None:
                self.surrogate.load_weights(self._start)
            self.surrogate.condition(None, None)
        else:
            assert y is not None  # training_data gives both or neither
            steps = self.refit_steps if len(y) >= self.min_refit_points else 0
            refit(self.surrogate, x, y, steps=steps, lr=self.refit_lr, start=self._start, scope=self.refit_scope)
        xp = self.pending_rows()
        if xp is not None:
            # Kriging believer: the weights stay as fitted on real data; only the conditioning set grows.
            believed, _ = self.surrogate.posterior(xp)
            x = xp if x is None else torch.cat([x, xp], dim=0)
            y = believed if y is None else torch.cat([y, believed.to(y.dtype)], dim=0)
            self.surrogate.condition(x, y)

    def pending_rows(self) -> Tensor | None:
        """Rows (p x width) of each pending config's next epoch (the epoch it is training now,
        one past its observed curve), or None when nothing is pending."""
        rows = []
        for cid in sorted(self.pending):
            t = self.epochs_done(cid) + 1
            if t > self.max_epochs:
                continue
            rows.append(self._fresh_rows[cid : cid + 1] if t == 1 else self._row(cid, t))
        return torch.cat(rows, dim=0) if rows else None

    def next_rows(self, cand: Sequence[int] | np.ndarray) -> tuple[Tensor, np.ndarray]:
        """The rows (n x width) of each candidate's next epoch, and those epochs (n,)."""
        cand = np.asarray(cand, dtype=int)
        epochs = np.array([self.epochs_done(c) + 1 for c in cand], dtype=int)
        started = epochs > 1
        x = self._fresh_rows[torch.as_tensor(cand)]
        if started.any():
            idx = np.flatnonzero(started)
            x = x.clone()
            x[torch.as_tensor(idx)] = torch.cat([self._row(int(cand[i]), int(epochs[i])) for i in idx], dim=0)
        return x, epochs

    def predict(self, cand: Sequence[int] | np.ndarray) -> tuple[Tensor, Tensor, np.ndarray]:
        """Posterior (mean, variance) at each candidate's next epoch, and those epochs; (n,) each."""
        x, epochs = self.next_rows(cand)
        mean, var = self.surrogate.posterior(x)
        return mean, var, epochs

    def log_step_cost(self, cand: np.ndarray) -> np.ndarray:
        """Predicted log seconds of each candidate's next epoch, (n,) (`CalibratedCost`)."""
        # Calibrate on healthy runs only: a run that ended before the horizon (crashed, say)
        # often did so within seconds, and its cost says nothing about a real epoch.
        unhealthy = {c for c in self._epoch_seconds if c in self.finished and self.epochs_done(c) < self.max_epochs}
        return self._cost.log_seconds(np.asarray(cand, dtype=int), self._epoch_seconds, unhealthy)

    def scores(self, cand: Sequence[int] | np.ndarray) -> np.ndarray:
        """Acquisition value per candidate under the surrogate as last fitted (`fit`): log EI at
        the candidate's next epoch over the best accuracy seen at that epoch, minus the log cost
        of the step when cost-aware."""
        cand = np.asarray(cand, dtype=int)
        x, epochs = self.next_rows(cand)
        overall = float(np.max(self._best_at))
        if not math.isfinite(overall):
            # nothing observed yet (zero-shot): improve on the best prediction
            overall = float(self.surrogate.posterior(x).mean.max())
        best = self._best_at[np.minimum(epochs, self.max_epochs)]
        best = np.where(np.isfinite(best), best, overall)
        score = LogEI(self.surrogate, torch.as_tensor(best, dtype=DTYPE))(x).numpy()
        finite = score[np.isfinite(score)]
        self.last_max_ei = float(np.exp(finite.max())) if len(finite) else 0.0  # for stop rules
        if self.cost_aware:
            score = score - self.cost_exponent * self.log_step_cost(cand)
        return score

    def _argmax(self, scores: np.ndarray) -> int:
        """Index of the best score; exact and near ties are broken at random (seeded)."""
        scores = np.where(np.isnan(scores), -np.inf, scores)
        top = float(np.max(scores))
        if not math.isfinite(top):
            return int(self.rng.integers(len(scores)))
        ties = np.flatnonzero(scores >= top - 1e-9 * max(1.0, abs(top)))
        return int(ties[0] if len(ties) == 1 else self.rng.choice(ties))

    @property
    def overhead(self) -> dict[str, float]:
        """Median and 90th percentile seconds of optimizer work per ask()."""
        if not self.step_seconds:
            return {"median": math.nan, "p90": math.nan, "steps": 0}
        a = np.asarray(self.step_seconds)
        return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "steps": int(len(a))}
