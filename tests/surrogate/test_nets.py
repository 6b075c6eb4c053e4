import math

import numpy as np
import pytest
import torch

from quicktune.space import Config, SearchSpace
from quicktune.surrogate.gp import Surrogate
from quicktune.surrogate.nets import DTYPE, CurveEncoder, FeatureScaler, NetConfig, pad_prefixes

TINY = NetConfig(hp_hidden=8, model_emb=4, meta_hidden=4, curve_channels=4, curve_hidden=4, hidden=8, out_dim=4, cost_hidden=8)


def _space() -> SearchSpace:
    return SearchSpace.grid(["m_small", "m_large"], [1e-3, 1e-2, 1e-1], [0.0, 1e-4])


def test_scaler_logs_counts_standardises_and_marks_missing_features():
    rows = [{"n_samples": 100.0, "emd_sim": 0.2}, {"n_samples": 10_000.0, "emd_sim": 0.6}]
    sc = FeatureScaler.fit(rows, ["n_samples", "emd_sim", "absent"])
    assert sc.log == [True, False, False]
    out = sc.transform(rows + [{}])
    np.testing.assert_allclose(out[:2, 0], [-1.0, 1.0])  # log10 100 and 10_000 are symmetric about the mean
    np.testing.assert_allclose(out[:2, 1], [-1.0, 1.0])
    assert (out[2] == 0).all() and (out[:, 2] == 0).all()
    # A missing feature is a 0 value *and* a 0 presence bit, never a silent 0.
    assert sc.presence(rows + [{}]).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert FeatureScaler.from_state_dict(sc.state_dict()) == sc


def test_scaler_clips_far_features_and_ignores_constant_ones():
    rows = [{"emd_sim": 0.2, "channels": 3.0}, {"emd_sim": 0.6, "channels": 3.0}]
    sc = FeatureScaler.fit(rows, ["emd_sim", "channels"])
    far = [{"emd_sim": 100.0, "channels": 1.0}, {"emd_sim": -100.0, "channels": 3.0}]
    assert sc.zscores(far)[0, 0] == pytest.approx(498.0)
    assert sc.transform(far)[:, 0].tolist() == [sc.clip, -sc.clip] and sc.clip == 3.0
    # channels never varied in meta-training: a 1-channel target carries no usable signal there.
    assert sc.transform(far)[:, 1].tolist() == [0.0, 0.0] and sc.presence(far)[:, 1].tolist() == [1.0, 1.0]


def test_pad_prefixes_left_aligns_zero_pads_masks_and_keeps_the_last_epochs():
    values, mask = pad_prefixes([(), (0.5, math.nan), (0.1, 0.2, 0.3, 0.4)], 3)
    assert values.shape == mask.shape == (3, 3)
    assert mask.tolist() == [[0, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert values[1].tolist() == [0.5, 0.0, 0.0]  # NaN (diverged) counts as 0 accuracy
    assert values[2].tolist() == pytest.approx([0.2, 0.3, 0.4])


def test_curve_encoder_handles_empty_and_partial_prefixes():
    enc = CurveEncoder(curve_len=5, channels=3, out=4).to(DTYPE)
    values, mask = pad_prefixes([(), (0.3,), (0.1, 0.2, 0.9, 0.4, 0.5)], 5)
    out = enc(values, mask)
    assert out.shape == (3, 4) and torch.isfinite(out).all()


def test_feature_extractor_shapes_and_unknown_model_row():
    space = _space()
    s = Surrogate.build(space, max_epochs=8, feature_rows=[{"n_samples": 100.0}, {"n_samples": 1000.0}],
                        feature_names=["n_samples"], net=TINY)
    configs = [*space.configs[:3], Config("never_seen", 1e-2)]
    static = s.static_inputs(configs, {"n_samples": 500.0})
    lay = s.layout
    # one feature: its value and its presence bit
    assert static.shape == (4, lay.static_dim) and lay.static_dim == space.dim + 1 + 0 + 2
    x = s.rows(static, [1, 2, 8, 3], [(), (0.4,), tuple(np.linspace(0.1, 0.7, 7)), (0.2, 0.3)])
    assert x.shape == (4, lay.width) and lay.width == lay.static_dim + 1 + 2 * 7
    assert lay.budget(x).tolist() == pytest.approx([1 / 8, 2 / 8, 1.0, 3 / 8])
    ext = s.gp.extractor
    assert ext.model_index(x).tolist()[-1] == len(s.models)  # the unknown model gets the shared extra row
    z = ext(x)
    assert z.shape == (4, TINY.out_dim) and z.dtype == DTYPE and torch.isfinite(z).all()
    assert s.log_cost(static).shape == (4,)


def test_curve_encoding_of_a_row_does_not_depend_on_the_rest_of_the_batch():
    # The encoder trims padding beyond the batch's longest prefix; that must not change any row.
    torch.manual_seed(0)
    enc = CurveEncoder(curve_len=12, channels=3, out=4).to(DTYPE)
    rows = [(0.2, 0.4), (0.1,) * 11, ()]
    values, mask = pad_prefixes(rows, 12)
    together = enc(values, mask)
    alone = torch.cat([enc(*pad_prefixes([r], 12)) for r in rows])
    assert torch.allclose(together, alone, atol=1e-12)
