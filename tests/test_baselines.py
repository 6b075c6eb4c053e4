import math

import numpy as np
import pytest

from quicktune.baselines import GridSearch, Hyperband, RandomSearch, SuccessiveHalving, rung_levels, score
from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable, TaskCurves
from quicktune.protocol import Observation, Trial
from quicktune.space import Config, SearchSpace
from tests.helpers import synthetic_runs

BASELINES = [RandomSearch, GridSearch, SuccessiveHalving, Hyperband]


def synthetic_task(dataset: str = "d1", **kw) -> TaskCurves:
    return CurveTable(synthetic_runs(**kw)).task(dataset)


def messy_task() -> TaskCurves:
    """A synthetic task where a third of the recordings end early and some runs diverge (NaN)."""
    t = synthetic_task(models=("a_small", "b_large", "c_small"), elrs=(1e-4, 1e-3, 1e-2, 1e-1), max_epochs=12)
    perf, cost, lengths = t.perf.copy(), t.cost.copy(), t.lengths.copy()
    for i in range(t.n_runs):
        if i % 3 == 0:
            lengths[i] = 1 + i % 5
            perf[i, lengths[i]:] = np.nan
            cost[i, lengths[i]:] = np.nan
        if i % 4 == 1:
            perf[i, 2:] = np.nan  # diverged from epoch 3 on (still recorded and charged)
    return TaskCurves(t.dataset, t.configs, t.run_keys, perf, cost, lengths)


def drive(opt, obj, limit: int = 100_000) -> list[Observation]:
    """Ask/evaluate/tell until ask() returns None, checking every trial is valid."""
    seen: list[Observation] = []
    for _ in range(limit):
        trial = opt.ask()
        if trial is None:
            return seen
        assert 0 <= trial.config_id < len(opt.space)
        assert 1 <= trial.epoch <= opt.max_epochs
        # Never ask to continue a run that can not go on, nor for epochs it already has.
        assert opt.can_continue(trial.config_id), trial
        assert trial.epoch > opt.epochs_done(trial.config_id), trial
        o = obj.evaluate(trial)
        opt.tell(o)
        seen.append(o)
    raise AssertionError("the optimizer never ran out of trials")


@pytest.mark.parametrize("cls", BASELINES)
@pytest.mark.parametrize("task_fn", [synthetic_task, messy_task])
def test_baselines_propose_valid_trials_and_end_with_none(cls, task_fn):
    task = task_fn()
    obj = ReplayObjective(task)
    opt = cls(obj.space, obj.max_epochs, seed=3)
    obs = drive(opt, obj)
    assert obs, "no trial at all"
    assert opt.ask() is None and opt.ask() is None  # stays exhausted
    # Every charged epoch was charged once: the clock equals the recorded cost of what was trained.
    assert obj.seconds_charged == pytest.approx(sum(np.nansum(task.cost[i, : obj.trained[i]]) for i in range(task.n_runs)))


@pytest.mark.parametrize("cls", BASELINES)
def test_baselines_are_deterministic_given_the_seed(cls):
    task = messy_task()

    def trials(seed):
        obj = ReplayObjective(task)
        return [o.trial for o in drive(cls(obj.space, obj.max_epochs, seed=seed), obj)]

    assert trials(1) == trials(1)
    assert len({tuple(trials(s)) for s in range(6)}) > 1  # and the seed matters


def test_random_search_runs_every_candidate_once_to_the_horizon():
    task = synthetic_task()
    obj = ReplayObjective(task)
    obs = drive(RandomSearch(obj.space, obj.max_epochs, seed=0), obj)
    assert sorted(o.trial.config_id for o in obs) == list(range(task.n_runs))
    assert all(o.trial.epoch == task.max_epochs and o.finished for o in obs)


def test_grid_is_model_major_from_the_default_outward():
    task = synthetic_task(models=("a_small", "b_large", "c_small"), elrs=(1e-4, 1e-3, 1e-2, 1e-1), weight_decays=(0.0, 1e-4, 1e-2))
    obj = ReplayObjective(task)
    opt = GridSearch(obj.space, obj.max_epochs, seed=0)
    obs = drive(opt, obj)
    models = [task.configs[o.trial.config_id].model for o in obs]
    # each model is swept completely before the next one starts
    blocks = [m for i, m in enumerate(models) if i == 0 or models[i - 1] != m]
    assert len(blocks) == len(set(blocks)) == 3
    assert blocks == opt.models
    # every candidate used once
    assert sorted(o.trial.config_id for o in obs) == list(range(task.n_runs))
    # the first grid point of each model is the default (ELR 1e-3, wd 1e-4), then ELR outward
    for m in blocks:
        sweep = [task.configs[o.trial.config_id] for o in obs if task.configs[o.trial.config_id].model == m]
        assert (sweep[0].elr, sweep[0].weight_decay) == pytest.approx((1e-3, 1e-4))
        assert [c.elr for c in sweep[:3]] == pytest.approx([1e-3, 1e-4, 1e-2])
        assert all(c.weight_decay == pytest.approx(1e-4) for c in sweep[:3])
    # the model order is seeded
    orders = {tuple(GridSearch(obj.space, obj.max_epochs, seed=s).models) for s in range(8)}
    assert len(orders) > 1


def test_grid_maps_points_to_the_nearest_unused_candidate():
    configs = [Config("m", 1e-3, 1e-4), Config("m", 2e-3, 1e-4), Config("m", 1e-1, 1e-4)]
    opt = GridSearch(SearchSpace(configs), 5, elrs=(1e-3, 1.1e-3, 5e-2), weight_decays=(1e-4,))
    assert [opt.ask().config_id for _ in range(3)] == [0, 1, 2]
    assert opt.ask() is None


def test_rung_levels():
    assert rung_levels(1, 50, 3) == [1, 3, 9, 27, 50]
    assert rung_levels(1, 27, 3) == [1, 3, 9, 27]
    assert rung_levels(2, 2, 3) == [2]
    with pytest.raises(ValueError, match="min_epochs"):
        rung_levels(0, 5, 3)


def test_score_ranks_nan_last_and_uses_the_last_value_of_short_runs():
    assert score((0.1, 0.5, 0.3), 2) == 0.5
    assert score((0.1, 0.4), 9) == 0.4
    assert score((0.1, math.nan), 2) == -math.inf
    assert score((), 1) == -math.inf


def test_hyperband_promotes_the_top_third_by_continuing_them():
    task = synthetic_task(models=("a_small", "b_large", "c_small"), elrs=(1e-4, 1e-3, 1e-2, 1e-1),
                          weight_decays=(0.0, 1e-4, 1e-3), max_epochs=9)  # 36 runs, rungs 1, 3, 9
    obj = ReplayObjective(task)
    hb = Hyperband(obj.space, obj.max_epochs, seed=0)
    assert hb.rungs == [1, 3, 9]
    first_rung = []
    t = hb.ask()
    while t.epoch == 1:  # the most aggressive bracket: 9 fresh configs for one epoch each
        hb.tell(obj.evaluate(t))
        first_rung.append(t.config_id)
        t = hb.ask()
    assert len(first_rung) == len(set(first_rung)) == 9
    top = set(sorted(first_rung, key=lambda c: -task.perf[c, 0])[:3])

    promoted = []
    while t.epoch == 3:
        cid = t.config_id
        assert hb.epochs_done(cid) == 1  # continued from epoch 1, not restarted
        o = obj.evaluate(t)
        assert o.epoch_seconds == tuple(task.cost[cid, 1:3])  # only epochs 2 and 3 are charged
        hb.tell(o)
        promoted.append(cid)
        t = hb.ask()
    assert set(promoted) == top and len(promoted) == 3
    best = max(top, key=lambda c: task.perf[c, 2])
    assert t == Trial(best, 9) and hb.epochs_done(best) == 3
    hb.tell(obj.evaluate(t))
    # the next bracket starts 5 fresh configs at rung 3: ceil(3 / 2 * 3)
    nxt = [hb.ask()]
    assert nxt[0].epoch == 3 and nxt[0].config_id not in first_rung


def test_successive_halving_never_promotes_diverged_or_ended_runs():
    space = SearchSpace([Config("m", 10.0 ** -k) for k in range(1, 10)])
    sh = SuccessiveHalving(space, 9, seed=0)  # rungs 1, 3, 9: 9 configs, keep 3, keep 1
    scores = {}
    for i in range(9):
        t = sh.ask()
        assert t.epoch == 1
        if i == 0:  # the best score, but its run ended after one epoch
            o = Observation(t, (0.99,), 1.0, (1.0,), finished=True)
        elif i == 1:  # diverged
            o = Observation(t, (math.nan,), 1.0, (1.0,))
        else:
            o = Observation(t, (i / 100,), 1.0, (1.0,))
        scores[t.config_id] = (i, o.curve[0])
        sh.tell(o)
    promoted = []
    for _ in range(3):
        t = sh.ask()
        assert t.epoch == 3
        promoted.append(t.config_id)
        sh.tell(Observation(t, (0.5, 0.5, 0.5), 2.0, (1.0, 1.0)))
    assert sorted(scores[c][0] for c in promoted) == [6, 7, 8]


def test_successive_halving_is_synchronous_it_waits_for_pending_trials():
    sh = SuccessiveHalving(SearchSpace([Config("m", 1e-2), Config("m", 1e-3)]), 3)
    a, b = sh.ask(), sh.ask()
    assert sh.ask() is None and set(sh.pending) == {a.config_id, b.config_id}  # waiting, not exhausted


@pytest.mark.parametrize("cls", BASELINES)
def test_running_out_of_candidates(cls):
    space = SearchSpace([Config("m", 1e-2)])
    opt = cls(space, 4, seed=0)
    t = opt.ask()
    assert t is not None and t.config_id == 0
    opt.tell(Observation(t, (0.5,) * t.epoch, 1.0, (1.0,) * t.epoch, finished=t.epoch == 4))
    rest = []
    while (t := opt.ask()) is not None:
        rest.append(t)
        opt.tell(Observation(t, (0.5,) * t.epoch, 1.0, (1.0,) * t.epoch, finished=t.epoch == 4))
    assert all(r.config_id == 0 for r in rest)
    assert opt.ask() is None


def test_baselines_import_no_models_and_nothing_downstream():
    import ast

    import quicktune.baselines as mod

    tree = ast.parse(open(mod.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    banned = ("torch", "timm", "gpytorch", "botorch", "quicktune.surrogate", "quicktune.optimizer",
              "quicktune.benchmark", "quicktune.models", "quicktune.hub")
    assert not [m for m in imported if m and m.startswith(banned)], imported
