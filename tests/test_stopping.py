import math

import pytest

from quicktune.stopping import DEFAULT_STOP_WHEN, StopMonitor, StopRule, StopRuleError


def test_parse_round_trips_and_rejects_bad_rules_in_one_line():
    rule = StopRule.parse("acc>=0.95, ei<0.001:5,patience=20")
    assert (rule.target, rule.ei_below, rule.ei_steps, rule.patience) == (0.95, 0.001, 5, 20)
    assert StopRule.parse(rule.to_string()) == rule
    assert StopRule.parse("none").enabled is False
    assert StopRule.parse(None) == StopRule.parse(DEFAULT_STOP_WHEN)
    for bad in ("acc>=1.5", "acc>=0", "ei<0:3", "ei<0.1:0", "patience=0", "epochs=3", "acc>=x", ""):
        with pytest.raises(StopRuleError) as e:
            StopRule.parse(bad)
        assert "\n" not in str(e.value)


def test_patience_counts_epochs_since_the_last_improvement():
    mon = StopMonitor(StopRule(patience=3))
    assert mon.observe([0.5]) is None
    assert mon.observe([0.4, 0.5]) is None  # ties do not count as improvement
    assert mon.observe([0.6]) is None  # improved: the count restarts
    assert mon.observe([0.6, float("nan")]) is None
    assert "no improvement for 3 epochs" in mon.observe([0.1])
    assert mon.reason is not None and mon.observe([0.9]) == mon.reason  # once set, it stays


def test_target_and_perfect_accuracy_stop_but_none_never_does():
    assert StopMonitor(StopRule(target=0.8)).observe([0.79]) is None
    mon = StopMonitor(StopRule(target=0.8))
    mon.observe([0.7])
    assert "target reached" in mon.observe([0.81])
    assert "nothing left to improve" in StopMonitor(StopRule(patience=100)).observe([1.0])
    off = StopMonitor(StopRule.parse("none"))
    assert all(off.observe([1.0], max_ei=0.0) is None for _ in range(50))


def test_ei_rule_needs_k_consecutive_low_steps_and_ignores_steps_without_ei():
    mon = StopMonitor(StopRule(ei_below=0.01, ei_steps=3))
    for ei in (0.001, 0.002, 0.5, 0.001, None, 0.001):
        assert mon.observe([0.5], max_ei=ei) is None
    assert "max EI below 0.01 for 3 steps" in mon.observe([0.5], max_ei=0.0)
    assert math.isclose(mon.incumbent, 0.5)


def test_the_default_is_the_rule_the_replay_benchmark_chose():
    import json
    from pathlib import Path

    summary = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "stop_rule_summary.json"
    doc = json.loads(summary.read_text())
    assert doc["chosen_default"] == DEFAULT_STOP_WHEN
    chosen = doc["rules"][DEFAULT_STOP_WHEN]
    assert chosen["datasets_with_cost"] == 0 and chosen["saved_mean"] > 0
