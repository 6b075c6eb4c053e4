"""The replay clock with N simulated workers (an event queue on recorded epoch times)."""

import math

import numpy as np
import pytest

from quicktune.asha import AsyncHyperband
from quicktune.baselines import Hyperband, RandomSearch, SuccessiveHalving
from quicktune.benchmark.replay import ReplayObjective
from quicktune.benchmark.simulated import simulate
from quicktune.metadataset.tabular import TaskCurves
from quicktune.space import Config
from tests.test_baselines import messy_task


def sequential(opt, obj, budget_s):
    """The one-worker replay loop written out: ask, train, stamp each epoch, tell."""
    clock, best, times, incs = 0.0, math.nan, [], []
    while clock < budget_s:
        trial = opt.ask()
        if trial is None:
            break
        obs = obj.evaluate(trial)
        first = len(obs.curve) - len(obs.epoch_seconds)
        for j, sec in enumerate(obs.epoch_seconds):
            clock += sec
            v = obs.curve[first + j]
            if not math.isnan(v) and (math.isnan(best) or v > best):
                best = v
            times.append(clock)
            incs.append(best)
        opt.tell(obs)
    k = int(np.searchsorted(times, budget_s, side="right"))
    return np.array(times[:k]), np.array(incs[:k])


@pytest.mark.parametrize("cls", [RandomSearch, Hyperband, AsyncHyperband])
@pytest.mark.parametrize("budget", [200.0, 1e6])
def test_one_simulated_worker_is_the_sequential_loop(cls, budget):
    task = messy_task()
    ref_obj = ReplayObjective(task)
    ref_t, ref_i = sequential(cls(ref_obj.space, ref_obj.max_epochs, seed=4), ref_obj, budget)
    obj = ReplayObjective(task)
    sim = simulate(cls(obj.space, obj.max_epochs, seed=4), obj, budget, workers=1)
    np.testing.assert_array_equal(sim.times, ref_t)
    np.testing.assert_array_equal(sim.incumbents, ref_i)
    assert sim.stop == ("exhausted" if budget > 1e5 else "budget")


def two_speed_task() -> TaskCurves:
    """4 runs x 3 epochs: runs 0 and 1 take 10 s an epoch, runs 2 and 3 take 1 s; run 0 is best."""
    configs = [Config("m", 10.0 ** -(i + 1)) for i in range(4)]
    perf = np.array([[0.5, 0.7, 0.9], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.2, 0.3, 0.4]])
    cost = np.array([[10.0] * 3, [10.0] * 3, [1.0] * 3, [1.0] * 3])
    return TaskCurves("two-speed", configs, [f"r{i}" for i in range(4)], perf, cost, np.full(4, 3))


def test_workers_run_at_once_and_epochs_are_stamped_on_their_own_clock():
    task = two_speed_task()
    ends = {}
    for n in (1, 2, 4):
        obj = ReplayObjective(task)
        sim = simulate(RandomSearch(obj.space, obj.max_epochs, seed=0), obj, 1e6, workers=n)
        assert sim.stop == "exhausted" and len(sim.times) == 12  # every epoch of every run, once
        assert np.all(np.diff(sim.times) >= 0)
        ends[n] = sim.simulated_s
    assert ends[1] == pytest.approx(66.0) and ends[4] == pytest.approx(30.0)  # 4 workers: the slowest run
    assert 30.0 <= ends[2] < 66.0
    # With 4 workers run 0's epochs end at 10, 20 and 30 s whatever order they were started in.
    obj = ReplayObjective(task)
    sim = simulate(RandomSearch(obj.space, obj.max_epochs, seed=0), obj, 1e6, workers=4)
    assert sim.incumbents[sim.times == 30.0].max() == pytest.approx(0.9)
    assert sim.incumbents[sim.times < 30.0].max() == pytest.approx(0.7)


def test_nothing_starts_after_the_budget_and_a_waiting_strategy_idles():
    task = messy_task()
    obj = ReplayObjective(task)
    sim = simulate(SuccessiveHalving(obj.space, obj.max_epochs, seed=0), obj, 150.0, workers=4)
    assert sim.stop == "budget" and sim.times.max() <= 150.0
    assert sim.n_trials > 4  # it went on after its rungs completed (idle workers waited, did not stop)
    with pytest.raises(ValueError, match="workers >= 1"):
        simulate(RandomSearch(obj.space, obj.max_epochs), obj, 10.0, workers=0)
