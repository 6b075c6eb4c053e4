"""Pending trials in the one ask/tell protocol: N workers, never the same config twice at once."""

import numpy as np
import pytest

from quicktune.asha import ASHA, AsyncHyperband
from quicktune.baselines import GridSearch, Hyperband, RandomSearch, SuccessiveHalving
from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable
from quicktune.optimizer.quicktune import QuickTune
from quicktune.protocol import Observation, Optimizer, Trial
from tests.helpers import synthetic_runs
from tests.test_baselines import messy_task, synthetic_task

BASELINES = [RandomSearch, GridSearch, SuccessiveHalving, Hyperband, ASHA, AsyncHyperband]


def drive_async(opt: Optimizer, obj, workers: int, seed: int = 0, limit: int = 100_000) -> list[Trial]:
    """Keep `workers` trials running; complete a random running one at a time (any order)."""
    rng = np.random.default_rng(seed)
    running: list[Observation] = []
    asked: list[Trial] = []
    for _ in range(limit):
        while len(running) < workers:
            trial = opt.ask()
            if trial is None:
                break
            assert all(o.trial.config_id != trial.config_id for o in running), "a running config was proposed again"
            assert opt.is_pending(trial.config_id)
            assert trial.epoch > opt.epochs_done(trial.config_id)
            asked.append(trial)
            running.append(obj.evaluate(trial))
        if not running:
            return asked
        obs = running.pop(int(rng.integers(len(running))))
        opt.tell(obs)
        assert not opt.is_pending(obs.trial.config_id)
    raise AssertionError("never finished")


class _Stubborn(Optimizer):
    def ask(self) -> Trial | None:
        return Trial(0, 1)


def test_the_base_class_refuses_a_pending_config_proposed_again():
    task = synthetic_task()
    opt = _Stubborn(ReplayObjective(task).space, task.max_epochs)
    assert opt.ask() == Trial(0, 1)
    with pytest.raises(RuntimeError, match="config 0 again while"):
        opt.ask()
    opt.tell(Observation(Trial(0, 1), (0.5,), 1.0))
    assert opt.ask() == Trial(0, 1)  # told: it may be proposed again
    opt.release(Trial(0, 1))
    assert opt.pending == {}


@pytest.mark.parametrize("cls", BASELINES)
@pytest.mark.parametrize("workers", [1, 4])
def test_baselines_with_workers_exhaust_and_charge_every_epoch_once(cls, workers):
    task = messy_task()
    obj = ReplayObjective(task)
    opt = cls(obj.space, obj.max_epochs, seed=2)
    asked = drive_async(opt, obj, workers, seed=workers)
    assert asked and opt.pending == {} and opt.ask() is None
    assert set(opt.curves) == {t.config_id for t in asked}
    assert obj.seconds_charged == pytest.approx(sum(np.nansum(task.cost[i, : obj.trained[i]]) for i in range(task.n_runs)))


def test_synchronous_successive_halving_waits_for_its_rung_and_asha_does_not():
    task = synthetic_task()
    obj = ReplayObjective(task)
    sh, asha = SuccessiveHalving(obj.space, obj.max_epochs, seed=0), ASHA(obj.space, obj.max_epochs, seed=0)
    first = [sh.ask() for _ in range(9)]  # the bottom rung of the bracket
    assert all(t is not None and t.epoch == 1 for t in first)
    for t in first[:-1]:
        sh.tell(obj.evaluate(t))
    assert sh.ask() is None and sh.pending  # waiting on the last one, not exhausted
    sh.tell(obj.evaluate(first[-1]))
    assert sh.ask().epoch == 3  # the rung is complete: promotions
    # ASHA: after 3 results at rung 1 (eta = 3) it promotes the best at once, with others running.
    obj = ReplayObjective(task)
    trials = [asha.ask() for _ in range(5)]
    for t in trials[:3]:
        asha.tell(obj.evaluate(t))
    best = max(trials[:3], key=lambda t: (asha.curves[t.config_id][0], -t.config_id)).config_id
    assert asha.ask() == Trial(best, 3) and len(asha.pending) == 3


def test_async_hyperband_starts_configs_in_every_bracket():
    task = synthetic_task(max_epochs=9)
    obj = ReplayObjective(task)
    opt = AsyncHyperband(obj.space, obj.max_epochs, seed=0)
    assert [b.start for b in opt.brackets] == [0, 1, 2]  # rungs 1, 3, 9
    drive_async(opt, obj, workers=3)
    starts = {opt.rungs[opt.brackets[b].start] for b in opt._bracket_of.values()}
    assert starts == {1, 3, 9}


@pytest.fixture(scope="module")
def qt_setup():
    from quicktune.surrogate.fit import meta_train
    from tests.optimizer.test_quicktune import TINY

    table = CurveTable(synthetic_runs(datasets=("d0", "d1", "d2", "d3"), elrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)))
    sur = meta_train(table, steps=60, batch_size=24, lr=3e-3, seed=0, datasets=["d0", "d1", "d3"], holdout=["d3"],
                     val_every=30, net=TINY).surrogate
    return table.task("d2"), sur


@pytest.mark.parametrize("meta", [True, False])
def test_quicktune_with_workers_never_proposes_a_pending_config(qt_setup, meta):
    task, sur = qt_setup
    obj = ReplayObjective(task)
    opt = QuickTune(obj.space, obj.max_epochs, seed=0, surrogate=sur if meta else None,
                    dataset_features=task.dataset_features, refit_steps=1, max_train_points=24)
    asked = drive_async(opt, obj, workers=3)
    assert len(asked) == int(task.lengths.sum()) == len(set(asked))  # every epoch once, one at a time


def test_kriging_believer_shrinks_the_variance_at_a_pending_trial(qt_setup):
    task, sur = qt_setup
    obj = ReplayObjective(task)
    opt = QuickTune(obj.space, obj.max_epochs, seed=0, surrogate=sur, dataset_features=task.dataset_features,
                    refit_steps=0)
    first = opt.ask()
    opt.tell(obj.evaluate(first))
    second = opt.ask()  # pending now
    opt.fit()
    _, var_pending, _ = opt.predict([second.config_id])
    opt.release(second)
    opt.fit()
    _, var_free, _ = opt.predict([second.config_id])
    assert float(var_pending[0]) < 0.5 * float(var_free[0])
    assert opt.ask() == second  # released: nothing else changed, the same choice again
