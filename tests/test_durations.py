import pytest

from quicktune.durations import format_duration, parse_duration


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"),
                                           (90061, "1d1h1m1s")])
def test_format_and_parse_are_inverse(seconds, text):
    assert format_duration(seconds) == text and parse_duration(text) == seconds


def test_clock_style_and_bad_input():
    assert format_duration(90, clock=True) == "1:30" and format_duration(5400, clock=True) == "1:30:00"
    assert parse_duration("1.5h") == 5400 and parse_duration("90") == 90
    with pytest.raises(ValueError, match="looks like"):
        parse_duration("ten minutes")
