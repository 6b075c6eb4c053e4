"""The peer adapters (quicktune.benchmark.peers): the base class's rules, checked with a fake
peer, and every real adapter on a tiny synthetic replay (skipped when its package is missing;
CI installs the `peers` extra, so there they run)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quicktune.benchmark.experiment import fold_contexts, run_experiment
from quicktune.benchmark.methods import MethodContext, get_method
from quicktune.benchmark.peers import PEERS, available
from quicktune.benchmark.peers.base import CandidateIndex, Job, PeerOptimizer
from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable
from quicktune.protocol import Observation, Trial
from tests.helpers import synthetic_runs

SHORT = 3  # epochs recorded for the truncated runs


def _table(**kwargs) -> CurveTable:
    runs = synthetic_runs(datasets=("d0", "d1", "d2", "d3"), max_epochs=8, **kwargs)
    keys = sorted(runs["run_key"].unique())
    sched = {k: ("cosine" if i % 2 else "step") for i, k in enumerate(keys)}
    runs["extras"] = runs["run_key"].map(lambda k: json.dumps({"sched": sched[k]}))
    short = {k for i, k in enumerate(keys) if i % 3 == 0}
    runs = runs[~(runs["run_key"].isin(short) & (runs["epoch"] > SHORT))].reset_index(drop=True)
    return CurveTable(runs)


@pytest.fixture(scope="module")
def table() -> CurveTable:
    """4 datasets x 2 models x 3 ELRs x 2 weight decays, 8 epochs, a categorical extra (the
    schedule), and every third run recorded for only SHORT epochs."""
    return _table()


@pytest.fixture(scope="module")
def big_table() -> CurveTable:
    """The same with 3 x 11 x 6 configs a dataset: qtt's CostPredictor needs 10 mini-batches of
    training runs (about 360 runs) to train at all."""
    return _table(models=("m_small", "m_mid", "m_large"), elrs=tuple(np.geomspace(1e-4, 1.0, 11)),
                  weight_decays=(0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3))


class Recording(ReplayObjective):
    """A replay objective that keeps every trial and observation it answered."""

    def __init__(self, task):
        super().__init__(task)
        self.log: list[tuple[Trial, Observation]] = []

    def evaluate(self, trial):
        obs = super().evaluate(trial)
        self.log.append((trial, obs))
        return obs


def _drive(opt, objective, steps):
    for _ in range(steps):
        trial = opt.ask()
        if trial is None:
            break
        opt.tell(objective.evaluate(trial))


# -- the base class's rules ----------------------------------------------------------------------
class Scripted(PeerOptimizer):
    """A peer that proposes a fixed script of (suggestion, epoch, new_run) and records what it is told."""

    def __init__(self, space, max_epochs, script, stop_only):
        super().__init__(space, max_epochs, 0)
        self.stop_only = stop_only  # instance attribute shadows the ClassVar for the test
        self.script = list(script)
        self.told: list[tuple[Job, float]] = []

    def propose(self):
        if not self.script:
            return None
        suggestion, epoch, new_run = self.script.pop(0)
        cid = suggestion if isinstance(suggestion, int) else self.nearest(suggestion)
        return Job(cid, epoch, new_run=new_run)

    def observe(self, job, observation):
        self.told.append((job, self.value_at(observation, job.epoch)))


def test_a_suggestion_maps_to_the_nearest_candidate_and_the_model_counts_first(table):
    task = table.task("d0")
    index = CandidateIndex(ReplayObjective(task).space)
    for cid in range(task.n_runs):  # a candidate's own point maps to a candidate with that point
        assert index.distances(index.point(cid))[index.nearest(index.point(cid))] == 0.0
    p = index.point(0)
    other = next(m for m in index.domain.categorical["model"] if m != p["model"])
    moved = {**p, "model": other}
    got = index.nearest(moved)
    assert task.configs[got].model == other  # the model is matched before any numeric distance
    # Nudging the ELR towards candidate j (same model and schedule) makes j the nearest.
    j = next(i for i in range(task.n_runs) if index.point(i)["model"] == p["model"]
             and index.point(i)["sched"] == p["sched"] and index.point(i)["log_elr"] != p["log_elr"])
    nudged = {**p, "log_elr": index.point(j)["log_elr"], "log_weight_decay": index.point(j)["log_weight_decay"]}
    assert index.nearest(nudged) == j


def test_stop_only_peers_pay_a_rerun_from_epoch_one_pause_resume_peers_only_new_epochs(table):
    task = table.task("d1")
    full = int(np.argmax(task.lengths))
    script = [(full, 2, True), (full, 4, True)]  # the same candidate, asked by two new peer trials
    paid = {}
    for stop_only in (True, False):
        objective = Recording(task)
        opt = Scripted(objective.space, objective.max_epochs, script, stop_only)
        _drive(opt, objective, 10)
        paid[stop_only] = [len(obs.epoch_seconds) for _, obs in objective.log]
        assert [t.restart for t, _ in objective.log] == [False, stop_only]
    assert paid == {True: [2, 4], False: [2, 2]}


def test_a_curve_ends_where_its_recording_ends(table):
    task = table.task("d2")
    short = int(np.argmin(task.lengths))
    assert task.lengths[short] == SHORT
    objective = Recording(task)
    opt = Scripted(objective.space, objective.max_epochs, [(short, 8, True)], stop_only=False)
    _drive(opt, objective, 5)
    (trial, obs), = objective.log
    assert obs.epochs == SHORT and len(obs.epoch_seconds) == SHORT and obs.finished
    assert opt.told[0][1] == pytest.approx(task.perf[short, SHORT - 1])  # the last recorded value
    assert opt.ask() is None or opt.finished  # a finished candidate is known to the base


def test_the_incumbent_is_the_best_value_at_any_epoch(table):
    task = table.task("d3")
    objective = Recording(task)
    ids = list(range(4))
    opt = Scripted(objective.space, objective.max_epochs, [(i, 8, True) for i in ids], stop_only=False)
    _drive(opt, objective, 10)
    best = np.nanmax(task.perf[ids])
    assert opt.incumbent()[1] == pytest.approx(best)


def test_a_diverged_epoch_counts_as_accuracy_zero():
    obs = Observation(Trial(0, 2), (0.5, math.nan), 1.0)
    assert PeerOptimizer.value_at(obs, 2) == 0.0 and PeerOptimizer.value_at(obs, 1) == 0.5
    assert PeerOptimizer.loss_at(obs, 2) == 1.0


# -- every adapter on the tiny replay ------------------------------------------------------------
@pytest.mark.parametrize("name", PEERS)
def test_adapter_searches_the_replay_by_the_rules(name, request, tmp_path, monkeypatch):
    if not available(name):
        pytest.skip(f"{name}: its package is not installed (pip install -e '.[peers]')")
    table = request.getfixturevalue("big_table" if name == "qtt" else "table")
    if name == "qtt":  # one meta-training epoch each: the adapter is under test, not qtt's fit
        from quicktune.benchmark.peers import qtt_peer

        monkeypatch.setattr(qtt_peer, "FIT", {"perf": {"max_iter": 1}, "cost": {"max_iter": 1}})
    method = get_method(name)
    contexts = fold_contexts(table, 2, tmp_path)
    task = table.task("d1")
    method.prepare_fold(contexts["d1"])
    budget = 0.5 * float(np.nansum(task.cost))  # half of all recorded compute

    objective = Recording(task)
    opt = method.make(objective.space, objective.max_epochs, 0, MethodContext(task, contexts["d1"], 0))
    assert isinstance(opt, PeerOptimizer)
    clock, steps = 0.0, 0
    while clock < budget and steps < 60:
        trial = opt.ask()
        if trial is None:
            break
        obs = objective.evaluate(trial)
        clock += obs.seconds
        opt.tell(obs)
        steps += 1
    log = objective.log
    assert log, f"{name} asked nothing"
    assert all(0 <= t.config_id < task.n_runs and 1 <= t.epoch <= task.max_epochs for t, _ in log)
    # Charging: restarts only for stop-only peers, and only of runs trained before.
    trained: set[int] = set()
    for t, obs in log:
        if t.restart:
            assert opt.stop_only and t.config_id in trained
        trained.add(t.config_id)
    # A run whose recording ended is never charged again unless a stop-only peer restarts it.
    done: set[int] = set()
    for t, obs in log:
        if t.restart:
            done.discard(t.config_id)
        if t.config_id in done:
            assert obs.seconds == 0.0
        if obs.finished:
            done.add(t.config_id)
    assert opt.incumbent() is not None and task.regret(opt.incumbent()[1]) < 1.0

    # The whole loop, twice with one seed: the same trajectory (the adapter seeds its peer).
    short = budget / (40 if name == "qtt" else 4)  # qtt's table is 8x larger
    a = run_experiment(method, task, 0, short, contexts["d1"])
    b = run_experiment(method, task, 0, short, contexts["d1"])
    assert len(a.times) > 0 and np.array_equal(a.times, b.times) and np.array_equal(a.incumbents, b.incumbents)


def test_peer_names_are_the_issues_and_registered():
    assert PEERS == ("qtt", "optuna", "smac", "dehb", "synetune-asha", "synetune-bohb", "best-default")
    for name in PEERS:
        assert get_method(name).name == name
