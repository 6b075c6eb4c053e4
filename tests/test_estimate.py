import pytest

from quicktune.estimate import AccuracyEstimate


def test_wilson_interval_contains_the_estimate_and_narrows_with_n():
    small, large = AccuracyEstimate(27, 30), AccuracyEstimate(270, 300)
    for e in (small, large):
        lo, hi = e.interval
        assert 0.0 <= lo < e.accuracy < hi <= 1.0
    assert (large.interval[1] - large.interval[0]) < (small.interval[1] - small.interval[0])
    # Wilson, not the normal approximation: at k = n the upper end is 1 and the lower end is below 1.
    lo, hi = AccuracyEstimate(30, 30).interval
    assert hi == 1.0 and 0.85 < lo < 0.9
    assert AccuracyEstimate(286, 300).to_dict()["ci95"] == pytest.approx([0.9232, 0.9720], abs=1e-4)


def test_rejects_impossible_counts():
    for c, n in ((4, 3), (-1, 3), (0, 0)):
        with pytest.raises(ValueError):
            AccuracyEstimate(c, n)
