import math

import pytest
import torch

from quicktune.space import ELR_BOUNDS, Config, SearchSpace


def test_lr_is_elr_times_one_minus_momentum_for_sgd():
    c = Config("resnet20", elr=0.1, weight_decay=1e-4, momentum=0.9)
    assert c.lr == pytest.approx(0.01)
    assert Config.from_lr("resnet20", 0.01, momentum=0.9, weight_decay=1e-4) == c


def test_adaptive_optimizers_keep_lr():
    c = Config.from_lr("m", 3e-4, momentum=0.9, optimizer="adamw")
    assert c.elr == pytest.approx(3e-4) and c.lr == pytest.approx(3e-4) and c.optimizer == "adamw"


def test_plain_sgd_elr_equals_lr():
    assert Config.from_lr("m", 0.05, momentum=0.0).elr == pytest.approx(0.05)


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(elr=0.0), "elr"), (dict(elr=1e-2, momentum=1.0), "momentum"), (dict(elr=1e-2, weight_decay=-1), "weight_decay")],
)
def test_invalid_configs_state_the_rule(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Config("m", **kwargs)


def test_configs_hash_by_value_whatever_the_extras_order():
    a = Config("m", 0.1, extras={"b": 1, "a": "x"})
    b = Config("m", 0.1, extras=(("a", "x"), ("b", 1)))
    assert a == b and hash(a) == hash(b)


def test_encoding_is_in_unit_cube_and_log_scaled():
    space = SearchSpace.grid(["a", "b"], elrs=[1e-4, 1e-3, 1e-2], weight_decays=[0.0, 1e-4])
    x = space.encode()
    assert x.shape == (12, space.dim) and x.min() >= 0 and x.max() <= 1
    # log scale: equal ratios of ELR are equal steps of the encoding
    elr_col = x[:, 0].unique()
    assert torch.allclose(elr_col.diff(), elr_col.diff()[0].expand_as(elr_col.diff()))
    lo, hi = (math.log10(b) for b in ELR_BOUNDS)
    assert elr_col[0].item() == pytest.approx((math.log10(1e-4) - lo) / (hi - lo))
    assert space.model_index().tolist() == [0] * 6 + [1] * 6


def test_extras_numeric_and_categorical_round_trip_through_state():
    configs = [Config("m", 0.01, extras={"batch_size": b, "optimizer": o}) for b in (8, 256) for o in ("adam", "sgd")]
    space = SearchSpace(configs)
    assert "optimizer=adam" in space.hp_names and "batch_size" in space.hp_names
    again = SearchSpace.from_state_dict(space.state_dict(), configs)
    assert torch.equal(space.encode(), again.encode())
    new = SearchSpace.from_state_dict(space.state_dict(), [Config("unknown", 0.01, extras={"batch_size": 10_000})])
    assert new.model_index().tolist() == [-1]
    assert new.encode().max() <= 1.0  # out-of-range extras are clipped, not extrapolated


@pytest.mark.parametrize("optimizer", ["nesterov", "momentum"])
def test_sgd_family_with_momentum_uses_elr_and_records_the_optimizer(optimizer):
    c = Config.from_lr("m", 0.01, momentum=0.5, optimizer=optimizer)
    assert c.elr == pytest.approx(0.02) and c.lr == pytest.approx(0.01) and c.optimizer == optimizer
    assert Config.from_lr("m", 0.01, momentum=0.0, optimizer=optimizer).elr == pytest.approx(0.01)


def test_plain_sgd_is_the_default_and_is_not_stored_as_an_extra():
    c = Config.from_lr("m", 0.01, momentum=0.9)
    assert c.optimizer == "sgd" and c.extras == ()


def test_an_extra_some_configs_leave_out_is_told_apart_from_its_lowest_recorded_value():
    # v2's runs: warm-up 1 on some, absent (= no warm-up) on others; L2-SP 0.01 / 0.1 / absent.
    plain = Config("m", 0.1, 1e-4, 0.9)
    warm = Config("m", 0.1, 1e-4, 0.9, extras=(("warmup_epochs", 1),))
    sp1, sp2 = (Config("m", 0.1, 1e-4, 0.9, extras=(("sp_reg", v),)) for v in (0.01, 0.1))
    space = SearchSpace([plain, warm, sp1, sp2])
    assert space.extra_spec["warmup_epochs"]["optional"] and space.extra_spec["sp_reg"]["optional"]
    enc = space.encode()
    assert len({tuple(row.tolist()) for row in enc}) == 4  # every config encodes differently
    assert space.hp_names[-4:] == ["sp_reg", "sp_reg:set", "warmup_epochs", "warmup_epochs:set"]
    # A space whose configs all carry the extra encodes it as before: no presence column.
    full = SearchSpace([sp1, sp2])
    assert "sp_reg:set" not in full.hp_names and "optional" not in full.extra_spec["sp_reg"]
    # The state round trip keeps the rule for new candidates.
    again = SearchSpace.from_state_dict(space.state_dict(), [plain, warm])
    assert torch.equal(again.encode(), enc[:2])
