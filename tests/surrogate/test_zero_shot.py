"""Zero-shot predictions (issue 10 items 3 and 5): meta-training fits the prior of a dataset with
no observation yet at every epoch, counting a run that stopped early at the accuracy it had
reached, and the GP's dataset-shift term widens only the intervals of unstarted configs."""

import numpy as np
import pytest
import torch

from quicktune.metadataset.tabular import CurveTable
from quicktune.surrogate.batches import sample_rows, task_arrays, zero_shot_rows
from quicktune.surrogate.fit import meta_train
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import NetConfig
from tests.helpers import synthetic_runs

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8, cost_hidden=8)


@pytest.fixture(scope="module")
def trained():
    table = CurveTable(synthetic_runs(datasets=("d0", "d1", "d2")))
    return table, meta_train(table, steps=40, batch_size=16, seed=0, val_fraction=0.0, net=TINY).surrogate


def test_zero_shot_rows_keep_the_last_accuracy_of_a_run_that_stopped_early(trained):
    table, s = trained
    arrays = task_arrays(s, table.task("d0"))
    arrays.lengths[0] = 1  # run 0 stopped after its first epoch
    runs = np.zeros(200, dtype=int)
    x, *_ = sample_rows(s, arrays, np.random.default_rng(0), 200)
    x0, y0 = zero_shot_rows(s, arrays, x, runs, np.random.default_rng(1))
    assert torch.equal(y0, torch.full_like(y0, float(arrays.perf[0, 0])))
    t = (s.layout.budget(x0) * s.max_epochs).round().long()
    assert t.min() >= 1 and t.max() == s.max_epochs  # epochs drawn over the whole horizon, not the recorded one
    assert (s.layout.mask(x0) == 0).all() and (s.layout.curve(x0) == 0).all()  # no prefix
    assert torch.equal(x0[:, : s.layout.static_dim], x[:, : s.layout.static_dim])  # the batch's own static inputs


def test_the_zero_shot_prediction_is_the_posterior_with_no_data(trained):
    table, s = trained
    task = table.task("d1")
    static = s.static_inputs(task.configs, task.dataset_features, task.pair_features)
    rows = s.rows(static, np.full(task.n_runs, s.max_epochs), [()] * task.n_runs)
    s.condition(None, None)
    post = s.posterior(rows)
    with torch.no_grad():
        mean, var = s.gp.zero_shot(rows)
    assert torch.allclose(mean, post.mean) and torch.allclose(var, post.variance + s.gp.noise)
    assert s.info["zero_shot_weight"] == 1.0


def test_the_dataset_shift_widens_only_unstarted_configs_and_an_epoch_one_observation_shrinks_it(trained):
    table, s = trained
    task = table.task("d2")
    static = s.static_inputs(task.configs[:3], task.dataset_features, task.pair_features)
    unstarted = s.rows(static, [2, 2, 2], [(), (), ()])
    started = s.rows(static, [2, 2, 2], [(0.5,), (0.5,), (0.5,)])
    s.condition(None, None)
    with torch.no_grad():
        s.gp.raw_shift.fill_(-40.0)
        var_u0, var_s0 = s.posterior(unstarted).variance, s.posterior(started).variance
        s.gp.raw_shift.fill_(0.0)  # shift = softplus(0) = 0.69
        var_u1, var_s1 = s.posterior(unstarted).variance, s.posterior(started).variance
        assert (var_u1 > var_u0 + 0.01).all() and torch.allclose(var_s1, var_s0)
        # One config's first epoch observed on the target tells the shift of the others.
        first = s.rows(static[:1], [1], [()])
        s.condition(first, torch.tensor([0.9], dtype=first.dtype))
        after = s.posterior(unstarted).variance
    s.condition(None, None)
    assert (after[1:] < var_u1[1:]).all()


def test_a_version_2_checkpoint_loads_with_no_dataset_shift(trained, tmp_path):
    table, s = trained
    state = s.state_dict()
    state["version"] = 2
    state["gp_state"] = {k: v for k, v in state["gp_state"].items() if k != "raw_shift"}
    old = Surrogate.from_state_dict(state)
    assert float(old.gp.shift.detach()) < 1e-12
