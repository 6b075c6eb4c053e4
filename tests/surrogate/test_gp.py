import numpy as np
import pytest
import torch

from quicktune.space import Config, SearchSpace
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import NetConfig

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=4, hidden=8, out_dim=4, cost_hidden=8)


@pytest.fixture
def surrogate() -> Surrogate:
    space = SearchSpace.grid(["m_small", "m_large"], [1e-4, 1e-3, 1e-2, 1e-1, 1.0], [0.0, 1e-4, 1e-2])
    return Surrogate.build(space, max_epochs=6, feature_rows=[{"n_samples": 50.0}, {"n_samples": 5000.0}],
                           feature_names=["n_samples"], net=TINY, seed=3)


def _rows(s: Surrogate, n: int, offset: int = 0):
    configs = [Config("m_small" if i % 2 else "m_large", 10 ** (-4 + 0.4 * ((i + offset) % 11)), 1e-4) for i in range(n)]
    static = s.static_inputs(configs, {"n_samples": 500.0})
    return s.rows(static, [1 + (i % 3) for i in range(n)], [(0.2,) * (i % 3) for i in range(n)])


@pytest.mark.filterwarnings("ignore:The input matches the stored training data")
def test_posterior_interpolates_training_points_and_is_uncertain_far_away(surrogate):
    s = surrogate
    s.gp.likelihood.noise = 1e-5
    s.gp.covar_module.outputscale = 1.0
    s.gp.covar_module.base_kernel.lengthscale = 0.05  # any different feature vector is "far"
    x = _rows(s, 6)
    y = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.7, 0.2], dtype=torch.float64)
    s.condition(x, y)
    mu, var = s.posterior(x)
    np.testing.assert_allclose(mu.numpy(), y.numpy(), atol=5e-3)
    assert (var < 1e-3).all()
    far = x.clone()
    far[:, : s.layout.hp_dim] = 30.0  # hyperparameters far outside the [0, 1] encoding
    far[:, s.layout.budget_col] = 1.0
    _, var_far = s.posterior(far)
    s.condition(None, None)
    _, var_prior = s.posterior(far)
    assert (var_far > 0.9 * var_prior).all() and (var_prior > 0.01).all()  # back to the prior variance


def test_prior_predictions_without_data_depend_on_the_config(surrogate):
    # The learned mean gives a zero-shot ranking; the constant-mean variant can not.
    x = _rows(surrogate, 8)
    surrogate.condition(None, None)
    mu, var = surrogate.posterior(x)
    assert mu.shape == var.shape == (8,)
    assert float(mu.std()) > 0 and (var > 0).all()


def test_save_load_round_trip_gives_identical_predictions(surrogate, tmp_path):
    s = surrogate
    s.info["note"] = "round trip"
    x = _rows(s, 7)
    y = torch.linspace(0.1, 0.8, 7, dtype=torch.float64)
    path = s.save(tmp_path / "sub" / "s.pt")
    t = Surrogate.load(path)
    assert t.space_state == s.space_state and t.scaler == s.scaler and t.info["note"] == "round trip"
    q = _rows(s, 5, offset=3)
    for m in (s, t):
        m.condition(x, y)
    mu1, v1 = s.posterior(q)
    mu2, v2 = t.posterior(q)
    assert torch.equal(mu1, mu2) and torch.equal(v1, v2)
    static = q[:, : s.layout.static_dim]
    assert torch.equal(s.log_cost(static), t.log_cost(static))


def test_load_rejects_a_foreign_file(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"format": "something else"}, p)
    with pytest.raises(ValueError, match="not a quicktune surrogate"):
        Surrogate.load(p)
    with pytest.raises(FileNotFoundError):
        Surrogate.load(tmp_path / "missing.pt")


def test_posterior_matches_gpytorch_exact_prediction(surrogate):
    import gpytorch

    s = surrogate
    x, q = _rows(s, 9), _rows(s, 6, offset=5)
    y = torch.linspace(0.05, 0.9, 9, dtype=torch.float64)
    s.condition(x, y)
    mu, var = s.posterior(q)
    s.gp.eval()
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), gpytorch.settings.max_cholesky_size(10_000):
        f = s.gp(q)
    assert torch.allclose(mu, f.mean, atol=1e-8) and torch.allclose(var, f.variance, atol=1e-8)
