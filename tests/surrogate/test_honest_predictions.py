"""Issue 10 item 3: missing features are a trained case, far features are clipped, and
predictions are accuracies inside (0, 1) with an uncertainty that narrows near the bounds."""

import numpy as np
import pandas as pd
import pytest
import torch

from quicktune.metadataset.tabular import CurveTable
from quicktune.space import Config
from quicktune.surrogate.batches import sample_rows, task_arrays
from quicktune.surrogate.fit import meta_train
from quicktune.surrogate.nets import NetConfig
from tests.helpers import synthetic_runs

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=8, hidden=16, out_dim=8, cost_hidden=8)
DATASETS = ("d0", "d1", "d2", "d3")


def _features() -> pd.DataFrame:
    rows = []
    for i, d in enumerate(DATASETS):
        rows.append((d, "", "n_samples", 100.0 * 3**i, 0.0))
        for m in ("m_small", "m_large"):
            rows.append((d, m, "emd_sim", 0.2 + 0.1 * i + (0.05 if m == "m_large" else 0.0), 0.0))
    return pd.DataFrame(rows, columns=["dataset", "model", "name", "value", "written_at"])


@pytest.fixture(scope="module")
def trained():
    table = CurveTable(synthetic_runs(datasets=DATASETS), _features())
    return table, meta_train(table, steps=60, batch_size=24, seed=0, holdout=["d3"], val_every=30, net=TINY).surrogate


def test_meta_training_steps_do_not_fail_numerically(trained):
    # Near-duplicate rows (same config, same epoch) must not make a batch's prior covariance fail.
    assert trained[1].info["skipped_steps"] == 0


def test_the_scaler_knows_which_features_are_dataset_and_which_are_pair_features(trained):
    _, s = trained
    assert s.scaler.names == ["n_samples", "emd_sim"] and s.scaler.groups == ["dataset", "pair"]


def test_meta_training_rows_hide_whole_feature_groups(trained):
    table, s = trained
    arrays = task_arrays(s, table.task("d0"))
    start, k = s.layout.meta_start, s.scaler.dim
    x, *_ = sample_rows(s, arrays, np.random.default_rng(0), 400, feature_dropout=0.0)
    assert (x[:, start + k : start + 2 * k] == 1).all()  # every feature present
    x, *_ = sample_rows(s, arrays, np.random.default_rng(0), 400, feature_dropout=0.5)
    present = x[:, start + k : start + 2 * k].numpy()
    values = x[:, start : start + k].numpy()
    assert ((present == 0) <= (values == 0)).all()  # a hidden feature has value 0 too
    hidden = (present == 0).mean(axis=0)
    assert all(0.4 < h < 0.6 for h in hidden)  # each group hidden independently about half the time
    both = ((present == 0).all(axis=1)).mean()
    assert 0.15 < both < 0.35


def test_zero_shot_predictions_stay_inside_the_unit_interval_on_data_unlike_the_meta_dataset(trained):
    _, s = trained
    configs = [Config(m, e, 1e-4) for m in ("m_small", "m_large", "unknown") for e in (1e-4, 1e-2, 10.0)]
    s.condition(None, None)
    cases = [
        ({"n_samples": 1e12}, {m: {"emd_sim": 1e6} for m in ("m_small", "m_large", "unknown")}),
        ({"n_samples": 1.0}, {m: {"emd_sim": -1e6} for m in ("m_small", "m_large", "unknown")}),
        ({}, {}),  # nothing known about the target: presence bits 0, a case meta-training saw
    ]
    for ds, pairs in cases:
        static = s.static_inputs(configs, ds, pairs)
        assert torch.isfinite(static).all() and static.abs().max() <= max(s.scaler.clip, 1.0) + 1e-9
        rows = s.rows(static, np.full(len(configs), s.max_epochs), [()] * len(configs))
        mu, var = s.posterior(rows)
        assert ((mu > 0) & (mu < 1)).all() and torch.isfinite(var).all() and (var > 0).all()


def test_uncertainty_narrows_towards_the_bounds(trained):
    _, s = trained
    gp = s.gp
    mean = torch.tensor([0.5, 0.9, 0.99, 0.01], dtype=torch.float64)
    g = gp._scale(mean)
    assert g[0] == pytest.approx(1.0) and g[0] > g[1] > g[2] and g[3] == pytest.approx(g[2])
