import math

import numpy as np
import pytest

from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable
from quicktune.optimizer.quicktune import QuickTune
from quicktune.protocol import Objective, Observation, Trial
from quicktune.space import Config, SearchSpace
from quicktune.surrogate.fit import meta_train
from quicktune.surrogate.nets import NetConfig
from tests.helpers import synthetic_runs

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8, cost_hidden=8)
DATASETS = ("d0", "d1", "d2", "d3")


@pytest.fixture(scope="module")
def table() -> CurveTable:
    return CurveTable(synthetic_runs(datasets=DATASETS, elrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)))


@pytest.fixture(scope="module")
def surrogate(table):
    # Meta-trained without d2, the target of the tests below.
    return meta_train(table, steps=100, batch_size=24, lr=3e-3, seed=0, datasets=["d0", "d1", "d3"], holdout=["d3"],
                      val_every=50, net=TINY).surrogate


def _loop(opt, objective, max_steps=1000):
    """Ask/tell until None; checks every trial is valid. Returns (trials, seconds)."""
    trials, seconds = [], 0.0
    for _ in range(max_steps):
        trial = opt.ask()
        if trial is None:
            return trials, seconds
        done = opt.epochs_done(trial.config_id)
        assert trial.epoch == done + 1, f"not a new run at epoch 1 nor a +1 continuation: {trial}, done={done}"
        assert trial.config_id not in opt.finished
        obs = objective.evaluate(trial)
        opt.tell(obs)
        trials.append(trial)
        seconds += obs.seconds
    raise AssertionError("the optimizer never returned None")


@pytest.mark.parametrize("meta", [True, False])
def test_only_valid_trials_never_reasks_finished_and_ends_with_none(surrogate, meta):
    # A smaller target (12 runs x 5 epochs) with a shorter horizon than meta-training saw.
    task = CurveTable(synthetic_runs(datasets=("d2",), max_epochs=5, seed=3)).task("d2")
    obj = ReplayObjective(task)
    opt = QuickTune(obj.space, obj.max_epochs, seed=1, surrogate=surrogate if meta else None,
                    dataset_features=task.dataset_features, refit_steps=2, max_train_points=24, min_refit_points=8)
    trials, _ = _loop(opt, obj)
    # Exhausting everything means every epoch of every run, each asked exactly once.
    assert len(trials) == int(task.lengths.sum()) == len(set(trials))
    assert opt.finished == set(range(task.n_runs))
    assert opt.ask() is None
    assert opt.overhead["steps"] == len(trials) + 2


def test_finds_a_near_best_config_with_less_cost_than_exhausting_the_grid(table, surrogate):
    task = table.task("d2")
    full_cost = float(np.nansum(task.cost))
    final = np.nanmax(task.perf, axis=1)
    target = np.sort(final)[-2]  # at least as good as the second-best run
    for seed in range(2):
        obj = ReplayObjective(task)
        opt = QuickTune(obj.space, obj.max_epochs, seed=seed, surrogate=surrogate, dataset_features=task.dataset_features,
                        refit_steps=2, max_train_points=64)
        spent, found = 0.0, None
        while spent < full_cost:
            trial = opt.ask()
            obs = obj.evaluate(trial)
            opt.tell(obs)
            spent += obs.seconds
            inc = opt.incumbent()
            if inc is not None and inc[1] >= target - 0.01:
                found = spent
                break
        assert found is not None and found < 0.5 * full_cost, (seed, found, full_cost)


class _NaNObjective(Objective):
    """Config 0 diverges at epoch 2, config 1 at epoch 1; the others learn."""

    def __init__(self, space: SearchSpace, max_epochs: int) -> None:
        self.space, self.max_epochs = space, max_epochs

    def evaluate(self, trial: Trial) -> Observation:
        c = trial.config_id
        curve = [0.1 * c * (1 - 0.5 ** t) for t in range(1, trial.epoch + 1)]
        if c == 0 and trial.epoch >= 2:
            curve[1:] = [math.nan] * (trial.epoch - 1)
        if c == 1:
            curve = [math.nan] * trial.epoch
        return Observation(trial, tuple(curve), seconds=1.0 + c, epoch_seconds=(1.0 + c,),
                           finished=trial.epoch >= self.max_epochs)


def test_survives_nan_curves_and_never_continues_a_diverged_run():
    space = SearchSpace.grid(["a", "b"], [1e-3, 1e-2, 1e-1])
    obj = _NaNObjective(space, max_epochs=3)
    opt = QuickTune(space, 3, seed=0, refit_steps=3)
    for cid in (0, 1):  # force the divergent ones first
        opt.tell(obj.evaluate(Trial(cid, 1)))
    opt.tell(obj.evaluate(Trial(0, 2)))
    assert {0, 1} <= opt.finished
    trials, _ = _loop(opt, obj)
    assert all(t.config_id not in (0, 1) for t in trials)
    assert opt.ask() is None


def test_ties_are_broken_at_random_with_the_seed():
    # Identical candidates: every score ties, so the choice is the seeded tie-break.
    space = SearchSpace([Config("m", 1e-2)] * 40)
    firsts = set()
    for seed in range(6):
        a = QuickTune(space, 5, seed=seed, refit_steps=0)
        b = QuickTune(space, 5, seed=seed, refit_steps=0)
        ta, tb = a.ask(), b.ask()
        assert ta == tb and ta.epoch == 1
        a.tell(Observation(ta, (0.5,), 1.0, (1.0,)))
        second = a.ask()
        assert second is not None
        firsts.add(ta.config_id)
    assert len(firsts) > 1


def test_a_run_that_stops_short_is_never_asked_again():
    space = SearchSpace.grid(["a"], [1e-3, 1e-2])
    opt = QuickTune(space, 10, seed=0, refit_steps=0)
    opt.tell(Observation(Trial(0, 1), (0.9,), 5.0, (5.0,), finished=True))  # the recording ends here
    opt.tell(Observation(Trial(1, 3), (0.1, 0.2), 4.0, (2.0, 2.0)))  # asked 3, got 2: can not go on
    assert opt.ask() is None


def test_last_max_ei_is_the_largest_plain_ei_of_the_ask(surrogate):
    task = CurveTable(synthetic_runs(datasets=("d2",), max_epochs=5, seed=3)).task("d2")
    obj = ReplayObjective(task)
    opt = QuickTune(obj.space, obj.max_epochs, seed=1, surrogate=surrogate, dataset_features=task.dataset_features,
                    refit_steps=0, cost_aware=True)
    assert opt.last_max_ei is None
    for _ in range(4):
        opt.tell(obj.evaluate(opt.ask()))
    # Plain EI (cost ignored) over the candidates, then the cost-aware scoring an ask runs: the
    # recorded value is the plain EI's maximum, not the maximum per cost.
    opt.fit()
    cand = opt._candidates()
    opt.cost_aware = False
    plain = opt.scores(cand)
    opt.cost_aware = True
    per_cost = opt.scores(cand)
    ei = opt.last_max_ei
    assert ei is not None and ei >= 0 and not np.allclose(per_cost, plain)
    assert math.isclose(ei, float(np.exp(plain.max())), rel_tol=1e-9)
    opt.ask()
    assert opt.last_max_ei is not None
