"""`dehb`: DEHB 0.1.2 (differential evolution + Hyperband, eta=3) by ask/tell. Its fidelities are
floats (rounded to epochs here). Pause/resume: a config re-asked at a higher fidelity continues
its run and pays only the new epochs."""

from __future__ import annotations

import tempfile

from quicktune.benchmark.methods import MethodContext
from quicktune.benchmark.peers.base import Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import SearchSpace


class DEHBPeer(PeerOptimizer):
    stop_only = False

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        super().__init__(space, max_epochs, seed)
        from dehb import DEHB

        cs = self.domain.configspace(seed)
        # DEHB writes a log and, at the end of its own run(), its state: a private temporary folder.
        self._tmp = tempfile.TemporaryDirectory(prefix="quicktune-dehb-")
        self.dehb = DEHB(
            cs=cs, dimensions=len(list(cs.values())), min_fidelity=1, max_fidelity=max_epochs, eta=3,
            n_workers=1, seed=seed, output_path=self._tmp.name, save_freq="end", log_level="ERROR",
        )

    def propose(self) -> Job | None:
        job = self.dehb.ask()
        return Job(self.nearest(dict(job["config"])), int(round(job["fidelity"])), new_run=True, token=job)

    def observe(self, job: Job, observation: Observation) -> None:
        self.dehb.tell(job.token, {"fitness": self.loss_at(observation, job.epoch), "cost": observation.seconds})


def make(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> DEHBPeer:
    return DEHBPeer(space, max_epochs, seed)
