"""An objective that answers trials from recorded learning curves (no training).

`ReplayObjective(task)` sits behind the same `protocol.Objective` interface as a real fine-tuning
run, so an optimizer can not tell the difference. The candidates are the task's recorded runs:
`config_id` is the run's index in `task` (two runs may share a `Config`; they stay distinct
candidates because their recorded curves differ).

Accounting follows freeze-thaw: a run keeps the epochs it has trained, so asking for a higher
epoch *continues* it and charges the recorded seconds of the new epochs only; asking for an epoch
it already reached charges nothing; a trial with `restart=True` trains the run again from epoch 1
and charges every epoch again. A run is finished when its recording ends (it may end before
`max_epochs`: the published meta-datasets hold runs cut short) or when it reaches `max_epochs`.
"""

from __future__ import annotations

import math

import numpy as np

from quicktune.metadataset.tabular import TaskCurves
from quicktune.protocol import Objective, Observation, Trial
from quicktune.space import SearchSpace


class ReplayObjective(Objective):
    """Replays `task`'s recorded curves and charges their recorded per-epoch seconds.

    State: `trained[i]` is how many epochs run i has been trained so far; `seconds_charged` is the
    total compute charged since construction (the simulated clock of one experiment).
    """

    def __init__(self, task: TaskCurves) -> None:
        if task.n_runs == 0:
            raise ValueError(f"dataset {task.dataset!r} has no recorded runs to replay")
        self.task = task
        self.space = SearchSpace(task.configs)
        self.max_epochs = task.max_epochs
        # A recording can not be longer than the table's horizon (CurveTable drops later epochs).
        self._lengths = np.minimum(np.asarray(task.lengths, dtype=int), self.max_epochs)
        # Seconds of a recorded epoch; a missing cost inside the recording counts as 0 s rather
        # than poisoning the clock with NaN.
        self._cost = np.nan_to_num(np.asarray(task.cost, dtype=float), nan=0.0)
        self.trained = np.zeros(task.n_runs, dtype=int)
        self.seconds_charged = 0.0

    def __len__(self) -> int:
        return self.task.n_runs

    def recorded_length(self, config_id: int) -> int:
        """Number of epochs recorded for run `config_id` (at most `max_epochs`)."""
        return int(self._lengths[config_id])

    def evaluate(self, trial: Trial) -> Observation:
        i = trial.config_id
        if not (0 <= i < self.task.n_runs):
            raise ValueError(
                f"`0 <= config_id < {self.task.n_runs}` must hold for dataset {self.task.dataset!r}, "
                f"but got config_id={i}"
            )
        length = int(self._lengths[i])
        before = 0 if trial.restart else int(self.trained[i])
        target = min(trial.epoch, length)
        after = max(before, target)
        new_seconds = tuple(float(s) for s in self._cost[i, before:after])
        self.trained[i] = after
        charged = math.fsum(new_seconds)
        self.seconds_charged += charged
        curve = tuple(float(v) for v in self.task.perf[i, :after])
        return Observation(
            trial=trial,
            curve=curve,
            seconds=charged,
            epoch_seconds=new_seconds,
            finished=after >= length,  # length <= max_epochs, so this covers reaching the horizon
        )
