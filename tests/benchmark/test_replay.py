import math

import numpy as np
import pytest

from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable, TaskCurves
from quicktune.protocol import Trial
from quicktune.space import Config
from tests.helpers import synthetic_runs

NAN = math.nan


def small_task() -> TaskCurves:
    """3 runs, horizon 5: run 0 complete, run 1 recorded for 2 epochs only, run 2 diverges at
    epoch 3. Runs 0 and 1 share a Config (distinct recorded runs)."""
    c = Config("m", 1e-2, 1e-4)
    perf = np.array([
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.3, 0.6, NAN, NAN, NAN],
        [0.2, 0.25, NAN, 0.1, 0.15],
    ])
    cost = np.array([
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [10.0, 20.0, NAN, NAN, NAN],
        [0.5, 0.5, 0.5, 0.5, 0.5],
    ])
    return TaskCurves("d", [c, c, Config("m", 1e-1)], ["a", "b", "c"], perf, cost, np.array([5, 2, 5]))


def test_space_and_horizon_come_from_the_task():
    obj = ReplayObjective(small_task())
    assert len(obj.space) == 3 and obj.space[0] == obj.space[1]
    assert obj.max_epochs == 5


def test_continuing_charges_only_new_epochs_and_never_twice():
    obj = ReplayObjective(small_task())
    o = obj.evaluate(Trial(0, 2))
    assert o.curve == (0.1, 0.2) and o.seconds == 3.0 and o.epoch_seconds == (1.0, 2.0) and not o.finished

    o = obj.evaluate(Trial(0, 4))  # continues: epochs 3 and 4 only
    assert o.curve == (0.1, 0.2, 0.3, 0.4) and o.seconds == 7.0 and o.epoch_seconds == (3.0, 4.0)

    o = obj.evaluate(Trial(0, 3))  # already trained: nothing charged, the whole curve so far
    assert o.seconds == 0.0 and o.epoch_seconds == () and o.curve == (0.1, 0.2, 0.3, 0.4) and not o.finished

    o = obj.evaluate(Trial(0, 9))  # beyond the horizon: stops at max_epochs
    assert o.epochs == 5 and o.seconds == 5.0 and o.finished
    assert obj.evaluate(Trial(0, 5)).seconds == 0.0
    assert obj.seconds_charged == pytest.approx(15.0)  # each recorded epoch exactly once


def test_a_truncated_recording_ends_the_run():
    obj = ReplayObjective(small_task())
    o = obj.evaluate(Trial(1, 1))
    assert not o.finished
    o = obj.evaluate(Trial(1, 5))
    assert o.curve == (0.3, 0.6) and o.seconds == 20.0 and o.finished
    assert obj.evaluate(Trial(1, 5)).seconds == 0.0


def test_diverged_epochs_are_returned_as_nan_and_charged():
    obj = ReplayObjective(small_task())
    o = obj.evaluate(Trial(2, 3))
    assert math.isnan(o.curve[2]) and o.seconds == 1.5 and o.best == 0.25


def test_an_invalid_config_id_states_the_rule():
    obj = ReplayObjective(small_task())
    with pytest.raises(ValueError, match="config_id"):
        obj.evaluate(Trial(3, 1))


def test_random_trial_sequences_charge_each_recorded_epoch_at_most_once():
    task = CurveTable(synthetic_runs()).task("d1")
    obj = ReplayObjective(task)
    rng = np.random.default_rng(0)
    trained = np.zeros(task.n_runs, dtype=int)
    for _ in range(300):
        i, t = int(rng.integers(task.n_runs)), int(rng.integers(1, task.max_epochs + 1))
        o = obj.evaluate(Trial(i, t))
        new = max(trained[i], t) - trained[i]
        assert o.seconds == pytest.approx(task.cost[i, trained[i]:trained[i] + new].sum())
        trained[i] += new
        assert o.epochs == trained[i]
    expected = sum(task.cost[i, : trained[i]].sum() for i in range(task.n_runs))
    assert obj.seconds_charged == pytest.approx(expected)
