"""Baseline optimizers behind the ask/tell protocol: random search, grid search, successive
halving and Hyperband.

They need no model of the objective, so they import no torch models (numpy only). With several
workers (trials pending), random and grid search simply go on proposing; successive halving and
Hyperband are synchronous and return None while a rung is still running (their asynchronous
variants, ASHA and asynchronous Hyperband, are in `quicktune.asha`). Each handles configs whose run ends early (an
observation with `finished=True` before the asked epoch), NaN accuracies (a diverged run ranks
last), and running out of candidates (`ask()` returns None).

- `RandomSearch`: an unstarted candidate drawn uniformly at random, trained to `max_epochs`.
- `GridSearch`: a fixed ELR x weight-decay grid per model, swept the way a person would (see its
  docstring), each grid point mapped to the nearest unused candidate; full runs.
- `SuccessiveHalving` / `Hyperband`: multi-fidelity with eta = 3 and rungs min_epochs * eta^k
  (capped at `max_epochs`), freeze-thaw: a promoted config is continued, never restarted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from quicktune.protocol import Optimizer, Trial
from quicktune.space import Config, SearchSpace


def score(curve: Sequence[float], epoch: int | None = None) -> float:
    """The accuracy a config is ranked by: its value at `epoch` (default: its last observed epoch),
    or at its last observed epoch when the run ended before `epoch`; -inf when that is NaN (a
    diverged run ranks below every finite one) or when nothing was observed."""
    if not curve:
        return -math.inf
    k = len(curve) if epoch is None else min(epoch, len(curve))
    v = float(curve[k - 1])
    return -math.inf if math.isnan(v) else v


class RandomSearch(Optimizer):
    """Full runs (to `max_epochs`) of unstarted candidates in a seeded uniformly random order."""

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        super().__init__(space, max_epochs, seed)
        self._order = deque(int(i) for i in np.random.default_rng(seed).permutation(len(space)))

    def ask(self) -> Trial | None:
        while self._order:
            cid = self._order.popleft()
            if cid not in self.curves:  # skip anything already observed (e.g. told from outside)
                return Trial(cid, self.max_epochs)
        return None


# A person fine-tuning with SGD + momentum or Adam starts from lr ~ 1e-3 and moves a decade at a
# time; ELR 1e-3 is also the median of the published Quick-Tune candidate set. Weight decay
# starts at the common 1e-4, then strong (1e-2), then none.
DEFAULT_GRID_ELRS = (1e-3, 1e-4, 1e-2, 1e-5, 1e-1)
DEFAULT_GRID_WEIGHT_DECAYS = (1e-4, 1e-2, 0.0)


class GridSearch(Optimizer):
    """A fixed grid over ELR x weight decay x models, run in the order a person would run it.

    Order (model-major): models in a seeded random order (a person has no reason to prefer one
    pretrained model over another before trying it); for each model, weight decays in `weight_decays`
    order (the usual default first), and for each weight decay the ELR grid in `elrs` order (a
    typical default first, then outward a decade at a time). Every grid point is a full run.

    The candidate set is finite (e.g. the recorded runs of a benchmark), so each grid point is
    mapped to the nearest *unused* candidate of that model in the space's encoding of (log ELR,
    log weight decay), other hyperparameters ignored. The mapping is made lazily at ask time, so a
    model with fewer candidates than grid points simply uses them all up (its later grid points are
    skipped), and a model with more keeps the rest unused. `ask()` returns None once every grid
    point of every model has been visited or mapped to nothing.
    """

    def __init__(
        self,
        space: SearchSpace,
        max_epochs: int,
        seed: int = 0,
        elrs: Sequence[float] = DEFAULT_GRID_ELRS,
        weight_decays: Sequence[float] = DEFAULT_GRID_WEIGHT_DECAYS,
        models: Sequence[str] | None = None,
    ) -> None:
        super().__init__(space, max_epochs, seed)
        if not elrs or not weight_decays:
            raise ValueError(f"a grid needs at least one ELR and one weight decay, but got {elrs=}, {weight_decays=}")
        present = sorted({c.model for c in space.configs})
        if models is None:
            models = [present[i] for i in np.random.default_rng(seed).permutation(len(present))]
        self.models = list(models)
        self.elrs = [float(e) for e in elrs]
        self.weight_decays = [float(w) for w in weight_decays]
        enc = space.encode().numpy()[:, :2]  # (n x 2): log ELR, log weight decay in [0, 1]
        self._enc = enc
        self._by_model: dict[str, list[int]] = {}
        for i, c in enumerate(space.configs):
            self._by_model.setdefault(c.model, []).append(i)
        # The grid points in run order, each with its encoded target.
        self.grid: list[tuple[str, float, float]] = [
            (m, e, w) for m in self.models for w in self.weight_decays for e in self.elrs
        ]
        # The grid points encoded like the candidates ("grid" is a placeholder model name: only the
        # ELR and weight-decay columns are used).
        points = [Config("grid", e, w) for _, e, w in self.grid]
        self._targets = space.encode(points).numpy()[:, :2] if points else np.zeros((0, 2))
        self._next = 0
        self.used: set[int] = set()
        self.assignment: list[tuple[tuple[str, float, float], int]] = []  # (grid point, config id) in run order

    def _nearest_unused(self, model: str, target: np.ndarray) -> int | None:
        ids = [i for i in self._by_model.get(model, []) if i not in self.used and i not in self.curves]
        if not ids:
            return None
        d = np.linalg.norm(self._enc[ids] - target, axis=1)
        return ids[int(np.argmin(d))]  # argmin takes the first on ties: candidate order, deterministic

    def ask(self) -> Trial | None:
        while self._next < len(self.grid):
            point, target = self.grid[self._next], self._targets[self._next]
            self._next += 1
            cid = self._nearest_unused(point[0], target)
            if cid is not None:
                self.used.add(cid)
                self.assignment.append((point, cid))
                return Trial(cid, self.max_epochs)
        return None


def rung_levels(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """min_epochs * eta^k below max_epochs, then max_epochs: e.g. (1, 50, 3) -> [1, 3, 9, 27, 50]."""
    if not (1 <= min_epochs <= max_epochs):
        raise ValueError(f"`1 <= min_epochs <= max_epochs` must hold, but got ({min_epochs=}, {max_epochs=})")
    if eta < 2:
        raise ValueError(f"`eta >= 2` must hold, but got {eta=}")
    levels, r = [], min_epochs
    while r < max_epochs:
        levels.append(r)
        r *= eta
    return levels + [max_epochs]


class SuccessiveHalving(Optimizer):
    """Synchronous successive halving with freeze-thaw continuation.

    A bracket starts `n` fresh candidates (seeded random order) at rung `start` of
    `rung_levels(min_epochs, max_epochs, eta)`, and after every config of a rung has been told,
    promotes the best floor(n_rung / eta) (at least 1) to the next rung by *continuing* them. A
    config's score at rung r is its accuracy at epoch r (NaN ranks last). A config whose run ended
    before the rung (its recording stops, or it finished) is ranked with its last value but can not
    be promoted; its slot goes to the next best config that can continue.

    `SuccessiveHalving` repeats its single bracket shape (starting at the lowest rung, with
    n = eta^(number of rungs - 1) configs) on fresh candidates until they run out.
    """

    def __init__(
        self, space: SearchSpace, max_epochs: int, seed: int = 0, eta: int = 3, min_epochs: int = 1
    ) -> None:
        super().__init__(space, max_epochs, seed)
        self.eta = int(eta)
        self.rungs = rung_levels(int(min_epochs), self.max_epochs, self.eta)
        self._pool = deque(int(i) for i in np.random.default_rng(seed).permutation(len(space)))
        self._queue: deque[Trial] = deque()
        self._rung = -1  # index into self.rungs of the current rung
        self._members: list[int] = []  # configs in the current rung
        self._start = 0  # rung index the current bracket started at
        self._n_keep: list[int] = []  # configs kept at each rung of the current bracket (from _start)
        self._bracket_index = 0
        self.brackets_started = 0
        self.promotions: list[tuple[int, int]] = []  # (config id, rung epoch) for every promotion

    # -- bracket schedule (overridden by Hyperband) ---------------------------------------------
    def bracket_shape(self, index: int) -> tuple[int, int]:
        """(starting rung index, number of fresh configs) of the `index`-th bracket."""
        s = len(self.rungs) - 1
        return 0, self.eta**s

    def _sizes(self, start: int, n: int) -> list[int]:
        sizes = [n]
        for _ in range(start + 1, len(self.rungs)):
            sizes.append(max(1, sizes[-1] // self.eta))
        return sizes

    def _fresh(self, n: int) -> list[int]:
        out: list[int] = []
        while self._pool and len(out) < n:
            cid = self._pool.popleft()
            if cid not in self.curves:
                out.append(cid)
        return out

    def _start_bracket(self) -> bool:
        start, n = self.bracket_shape(self._bracket_index)
        self._bracket_index += 1
        members = self._fresh(n)
        if not members:
            return False
        self.brackets_started += 1
        self._rung = self._start = start
        self._n_keep = self._sizes(start, len(members))
        self._members = members
        self._queue.extend(Trial(c, self.rungs[start]) for c in members)
        return True

    def _promote(self) -> bool:
        """Move the best configs of the finished rung up one rung; False when the bracket is done."""
        nxt = self._rung + 1
        if nxt >= len(self.rungs):
            return False
        epoch = self.rungs[self._rung]
        ranked = sorted(self._members, key=lambda c: (-score(self.curves.get(c, ()), epoch), c))
        keep = self._n_keep[nxt - self._start]
        promoted = [c for c in ranked if self.can_continue(c)][:keep]
        if not promoted:
            return False
        self._rung = nxt
        self._members = promoted
        self.promotions.extend((c, self.rungs[nxt]) for c in promoted)
        self._queue.extend(Trial(c, self.rungs[nxt]) for c in promoted)
        return True

    def ask(self) -> Trial | None:
        while True:
            while self._queue:
                t = self._queue.popleft()
                # A config whose run ended (or reached the rung already) needs no trial: its
                # observation is what it is; it is still ranked at promotion.
                if not self.can_continue(t.config_id) or self.epochs_done(t.config_id) >= t.epoch:
                    continue
                return t
            if self.pending:
                # Synchronous: the rung is decided only once all of it is told, so a free worker
                # waits (None with trials pending = nothing now; the asynchronous variants in
                # quicktune.asha never wait).
                return None
            if self._rung >= 0 and self._promote():
                continue
            if not self._start_bracket():
                return None


class Hyperband(SuccessiveHalving):
    """Hyperband (Li et al. 2017): successive-halving brackets cycling from the most aggressive
    (many configs from the lowest rung) to plain full runs, with the standard bracket sizes
    n_s = ceil((s_max + 1) / (s + 1) * eta^s) for s = s_max, ..., 0, repeated on fresh candidates
    until they run out. Freeze-thaw as in `SuccessiveHalving`."""

    def bracket_shape(self, index: int) -> tuple[int, int]:
        s_max = len(self.rungs) - 1
        s = s_max - index % (s_max + 1)
        return s_max - s, math.ceil((s_max + 1) / (s + 1) * self.eta**s)
