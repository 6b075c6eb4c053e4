"""A picklable toy objective for pool tests (importable by spawned workers and Ray actors)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from quicktune.protocol import Objective, Observation, Trial
from quicktune.space import Config, SearchSpace


class BarrierObjective(Objective):
    """Answers config i with accuracy i / 10 after every trial in `barrier` has started: each
    trial writes `<dir>/<config>.started` and waits (up to 60 s) until `barrier` files exist, so
    a test can show that that many trials run at once without timing anything. Config 99 fails."""

    def __init__(self, folder: str, barrier: int = 1, n: int = 100) -> None:
        self.folder = Path(folder)
        self.barrier = barrier
        self.space = SearchSpace([Config("toy", 10.0 ** -(1 + i / n)) for i in range(n)])
        self.max_epochs = 3

    def evaluate(self, trial: Trial) -> Observation:
        (self.folder / f"{trial.config_id}.started").write_text(f"{os.getpid()} {os.environ.get('OMP_NUM_THREADS')}")
        if trial.config_id == 99:
            raise ValueError("config 99 always fails")
        deadline = time.monotonic() + 60
        while len(list(self.folder.glob("*.started"))) < self.barrier and time.monotonic() < deadline:
            time.sleep(0.05)
        curve = tuple(trial.config_id / 100 for _ in range(trial.epoch))
        return Observation(trial, curve, 1.0, (1.0,) * trial.epoch, finished=trial.epoch >= self.max_epochs)
