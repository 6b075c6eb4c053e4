"""`smac`: SMAC3 2.x `MultiFidelityFacade` (random-forest BO with a Hyperband intensifier, eta=3;
BOHB-like), driven by ask/tell with epoch budgets. SMAC's budgets are floats (rounded here) and
the `TrialInfo` from `ask` goes back to `tell` unchanged. Pause/resume: a config re-asked at a
higher budget continues its run and pays only the new epochs."""

from __future__ import annotations

import tempfile

from quicktune.benchmark.methods import MethodContext
from quicktune.benchmark.peers.base import Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import SearchSpace


def _never_called(config: object, seed: int = 0, budget: float = 1.0) -> float:  # pragma: no cover - ask/tell only
    raise RuntimeError("the replay benchmark drives SMAC by ask/tell")


class SMACPeer(PeerOptimizer):
    stop_only = False

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        super().__init__(space, max_epochs, seed)
        from smac import MultiFidelityFacade, Scenario
        from smac.runhistory.dataclasses import TrialValue

        self._value = TrialValue
        # SMAC insists on an output directory; a private temporary one, removed with the optimizer.
        self._tmp = tempfile.TemporaryDirectory(prefix="quicktune-smac-")
        scenario = Scenario(
            self.domain.configspace(seed), deterministic=True, n_trials=10**8, walltime_limit=float("inf"),
            # a str, as always: SMAC names the run by a hash of str(scenario.__dict__), so a Path here
            # would rename it (SMAC joins the str with Path / ... fine)
            min_budget=1, max_budget=max_epochs, seed=seed, output_directory=self._tmp.name,  # type: ignore[arg-type]
        )
        self.smac = MultiFidelityFacade(
            scenario, _never_called, intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=3),
            overwrite=True, logging_level=40,
        )

    def propose(self) -> Job | None:
        info = self.smac.ask()
        budget = int(round(info.budget)) if info.budget is not None else self.max_epochs
        return Job(self.nearest(dict(info.config)), budget, new_run=True, token=info)

    def observe(self, job: Job, observation: Observation) -> None:
        cost = self.loss_at(observation, job.epoch)
        self.smac.tell(job.token, self._value(cost=cost, time=observation.seconds), save=False)


def make(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> SMACPeer:
    return SMACPeer(space, max_epochs, seed)
