import math

import pytest
import torch

from quicktune.metadataset.tabular import CurveTable
from quicktune.surrogate.batches import make_episodes, task_arrays
from quicktune.surrogate.fit import meta_train, refit, split_datasets
from quicktune.surrogate.scoring import evaluate
from quicktune.surrogate.nets import NetConfig
from tests.helpers import synthetic_runs

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8, cost_hidden=8)
DATASETS = ("d0", "d1", "d2", "d3", "d4")


@pytest.fixture(scope="module")
def table() -> CurveTable:
    return CurveTable(synthetic_runs(datasets=DATASETS, elrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)))


def _train(table, seed=0, steps=120):
    return meta_train(table, steps=steps, batch_size=24, lr=3e-3, seed=seed, holdout=["d2"], val_every=40, net=TINY)


def test_meta_training_beats_an_untrained_surrogate_on_held_out_data(table):
    res = _train(table)
    assert res.train_datasets == ["d0", "d1", "d3", "d4"] and res.val_datasets == ["d2"]
    assert res.val_metrics["nll"] < res.untrained_metrics["nll"] - 0.5
    assert res.val_metrics["spearman"] > 0.5
    assert res.best_step in {40, 80, 120}
    assert math.isfinite(res.val_metrics["cost_rmse"])
    info = res.surrogate.info
    assert info["val_datasets"] == ["d2"] and info["seed"] == 0


def test_meta_training_is_reproducible_with_a_seed(table):
    a = _train(table, seed=7, steps=40).surrogate.gp.state_dict()
    b = _train(table, seed=7, steps=40).surrogate.gp.state_dict()
    c = _train(table, seed=8, steps=40).surrogate.gp.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_split_datasets_rules():
    assert split_datasets(["a", "b", "c"], ["b"], 0.2, 0) == (["a", "c"], ["b"])
    train, val = split_datasets(list("abcdefghij"), None, 0.2, 0)
    assert len(val) == 2 and set(train) | set(val) == set("abcdefghij") and not set(train) & set(val)
    assert split_datasets(["a", "b"], None, 0.0, 0) == (["a", "b"], [])
    with pytest.raises(ValueError, match="not in the meta-dataset"):
        split_datasets(["a"], ["z"], 0.2, 0)
    with pytest.raises(ValueError, match="no dataset left"):
        split_datasets(["a"], ["a"], 0.2, 0)


def test_refit_improves_the_fit_and_can_restart_from_given_weights(table):
    res = _train(table, steps=40)
    s = res.surrogate
    arrays = task_arrays(s, table.task("d2"))
    ep = make_episodes(s, arrays, __import__("numpy").random.default_rng(0), n_episodes=1)[0]
    start = s.weights()
    first = refit(s, ep.context_x, ep.context_y, steps=1, lr=1e-2, start=start)
    last = refit(s, ep.context_x, ep.context_y, steps=30, lr=1e-2, start=start)
    assert last < first
    # Restarting from `start` undoes the previous refit exactly.
    refit(s, ep.context_x, ep.context_y, steps=0, start=start)
    assert all(torch.equal(v, start["gp"][k]) for k, v in s.gp.state_dict().items())
    assert math.isfinite(evaluate(s, [ep])["nll"])



def test_a_refit_step_that_turns_the_weights_nan_without_raising_restores_the_start(table, monkeypatch):
    res = _train(table, steps=40)
    s = res.surrogate
    arrays = task_arrays(s, table.task("d2"))
    ep = make_episodes(s, arrays, __import__("numpy").random.default_rng(0), n_episodes=1)[0]
    start = s.weights()
    step = torch.optim.Adam.step

    def nan_step(self, *a, **k):  # what a NaN gradient does: the weights become NaN, nothing raises
        out = step(self, *a, **k)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", nan_step)
    assert math.isnan(refit(s, ep.context_x, ep.context_y, steps=1, lr=1e-2, start=start))
    assert all(torch.equal(v, start["gp"][k]) for k, v in s.gp.state_dict().items())
