"""Asynchronous successive halving (ASHA) and asynchronous Hyperband, for 1 or N workers.

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020), Algorithm 2:
whenever a worker is free, promote a config that is in the top 1/eta of its rung and not yet
promoted (highest rung first); if there is none, start a fresh config at the bottom rung. No
worker ever waits for a rung to fill, unlike synchronous successive halving
(`quicktune.baselines.SuccessiveHalving`), at the price of a few promotions that a full rung
would not have made. Freeze-thaw: a promoted config is continued, never restarted.

Asynchronous Hyperband runs several ASHA brackets side by side, bracket s starting its configs
at rung s (s = 0 is the most aggressive); each fresh config joins a bracket drawn (seeded) with
probability proportional to synchronous Hyperband's bracket sizes n_s, and promotions stay within
a bracket (as in syne-tune's Hyperband promotion scheduler with brackets).

Rung scores follow `quicktune.baselines.score`: accuracy at the rung epoch, NaN ranks last, a run
that ended before the rung is ranked with its last value and is never promoted.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from quicktune.baselines import rung_levels, score
from quicktune.protocol import Observation, Optimizer, Trial
from quicktune.space import SearchSpace


class _Bracket:
    """One ASHA bracket: members per rung (told at that rung) and who was promoted from it."""

    def __init__(self, start: int, n_rungs: int) -> None:
        self.start = start
        self.members: list[list[int]] = [[] for _ in range(n_rungs)]
        self.promoted: list[set[int]] = [set() for _ in range(n_rungs)]


class ASHA(Optimizer):
    """Asynchronous successive halving, eta = 3, rungs `rung_levels(min_epochs, max_epochs, eta)`.

    brackets: how many ASHA brackets (1: plain ASHA, all configs start at the lowest rung; more:
    asynchronous Hyperband, see `AsyncHyperband`).
    """

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0, eta: int = 3, min_epochs: int = 1,
                 brackets: int = 1) -> None:
        super().__init__(space, max_epochs, seed)
        self.eta = int(eta)
        self.rungs = rung_levels(int(min_epochs), self.max_epochs, self.eta)
        n_rungs = len(self.rungs)
        if not 1 <= brackets <= n_rungs:
            raise ValueError(f"`1 <= brackets <= {n_rungs}` (the number of rungs) must hold, but got {brackets=}")
        self.rng = np.random.default_rng(seed)
        self._pool = deque(int(i) for i in self.rng.permutation(len(space)))
        self.brackets = [_Bracket(s, n_rungs) for s in range(brackets)]
        # Synchronous Hyperband's bracket sizes n_s = ceil((s_max + 1) / (s + 1) * eta^s), with s the
        # number of halvings left (s = s_max - start rung), as the weights of a fresh config's bracket.
        s_max = n_rungs - 1
        sizes = np.array([math.ceil((s_max + 1) / (s_max - b + 1) * self.eta ** (s_max - b)) for b in range(brackets)],
                         dtype=float)
        self._weights = sizes / sizes.sum()
        self._bracket_of: dict[int, int] = {}
        self._rung_of: dict[int, int] = {}  # config -> the rung index its pending (or last) trial targets
        self.promotions: list[tuple[int, int]] = []  # (config id, rung epoch) for every promotion

    def _promotable(self, bracket: _Bracket) -> Trial | None:
        for k in range(len(self.rungs) - 2, bracket.start - 1, -1):  # highest rung first
            members = bracket.members[k]
            keep = len(members) // self.eta
            if keep == 0:
                continue
            epoch = self.rungs[k]
            ranked = sorted(members, key=lambda c: (-score(self.curves.get(c, ()), epoch), c))
            for c in ranked[:keep]:
                if c in bracket.promoted[k]:
                    continue
                if not self.can_continue(c):
                    bracket.promoted[k].add(c)  # its run ended: it can not use the slot, and never will
                    continue
                if self.is_pending(c):
                    continue
                bracket.promoted[k].add(c)
                self._rung_of[c] = k + 1
                self.promotions.append((c, self.rungs[k + 1]))
                return Trial(c, self.rungs[k + 1])
        return None

    def ask(self) -> Trial | None:
        for bracket in self.brackets:
            trial = self._promotable(bracket)
            if trial is not None:
                return trial
        while self._pool:
            cid = self._pool.popleft()
            if cid in self.curves or self.is_pending(cid):  # told from outside (a resumed search)
                continue
            b = int(self.rng.choice(len(self.brackets), p=self._weights)) if len(self.brackets) > 1 else 0
            start = self.brackets[b].start
            self._bracket_of[cid] = b
            self._rung_of[cid] = start
            return Trial(cid, self.rungs[start])
        return None

    def tell(self, observation: Observation) -> None:  # type: ignore[override]  # the base class's wrapper adds (trial, score=, seconds=)
        super().tell(observation)
        cid = observation.trial.config_id
        b, k = self._bracket_of.get(cid), self._rung_of.get(cid)
        if b is None or k is None:
            return  # not one of ours (told from outside): it joins no rung
        bracket = self.brackets[b]
        if cid not in bracket.members[k]:
            bracket.members[k].append(cid)


class AsyncHyperband(ASHA):
    """Asynchronous Hyperband: one ASHA bracket per starting rung (see the module docstring)."""

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0, eta: int = 3, min_epochs: int = 1) -> None:
        n_rungs = len(rung_levels(int(min_epochs), int(max_epochs), int(eta)))
        super().__init__(space, max_epochs, seed, eta=eta, min_epochs=min_epochs, brackets=n_rungs)


__all__ = ["ASHA", "AsyncHyperband"]
