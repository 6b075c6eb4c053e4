"""The one place that says which configs exist: collect's random sample and suggest's Sobol
candidates read the same ranges, and the resolution rule is shared by collect, suggest and the
fine-tuning objective."""

from __future__ import annotations

import pytest

from quicktune import design
from quicktune.design import (
    HyperparameterRanges,
    sample_hyperparameters,
    sobol_hyperparameters,
    training_size,
)


@pytest.mark.parametrize("draw", [sample_hyperparameters, sobol_hyperparameters])
def test_both_designs_stay_in_the_given_ranges(draw) -> None:
    narrow = HyperparameterRanges(elr=(0.01, 0.02), weight_decay=(1e-4, 2e-4), p_zero_weight_decay=0.0, momenta=(0.5,))
    hps = draw(64, seed=1, ranges=narrow)
    assert all(0.01 * 0.999 <= h["elr"] <= 0.02 * 1.001 for h in hps)
    assert all(1e-4 * 0.999 <= h["weight_decay"] <= 2e-4 * 1.001 for h in hps)
    assert {h["momentum"] for h in hps} == {0.5}
    with pytest.raises(ValueError, match="n >= 1"):
        draw(0)


def test_the_collection_and_suggest_read_the_design_ranges() -> None:
    from quicktune import collect
    from quicktune.suggest import candidates

    assert collect.ELR_RANGE is design.ELR_RANGE and collect.MOMENTA is design.MOMENTA
    assert candidates.sobol_hyperparameters is design.sobol_hyperparameters


def test_training_size() -> None:
    assert training_size(224, None) == 224 and training_size(224, 64) == 64 and training_size(32, 64) == 32
    with pytest.raises(ValueError, match="max_image_size >= 4"):
        training_size(224, 2)
