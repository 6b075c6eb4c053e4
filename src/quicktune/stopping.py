"""When a search may stop before its budget is used: the rules of `quicktune suggest --stop-when`.

A rule is any of (comma-separated on the command line, the first that holds stops the search):

    acc>=X      the incumbent's validation accuracy reached X (0 < X <= 1)
    ei<T:K      the optimizer's maximum expected improvement (in accuracy, over every candidate
                it could ask next) stayed below T for K consecutive steps: it expects no gain
    patience=K  no improvement of the incumbent for K trained epochs
    none        only the budget (and running out of candidates) stops the search

Whatever the rule (except `none`), a search whose incumbent reaches validation accuracy 1.0
stops: nothing can improve on it, so every further second would be spent on ties.

`StopMonitor` is fed one record per step (the accuracy of every newly trained epoch and, for
Quick-Tune, the maximum EI of the ask that chose the step) and says why to stop, or None. It
holds no clock and no optimizer, so the replay benchmark (`benchmarks/stop_rule.py`) and the
real search share it, and a resumed search rebuilds it by replaying its step log.
The default (`DEFAULT_STOP_WHEN`) was chosen on the replay benchmark: see
benchmarks/results/stop_rule_summary.json and the README.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Chosen by benchmarks/stop_rule.py on the embedded meta-dataset's replay (README, "Stopping").
DEFAULT_STOP_WHEN = "patience=40"
PERFECT = 1.0

_ACC = re.compile(r"^acc\s*>=\s*(?P<x>[0-9.eE+-]+)$")
_EI = re.compile(r"^ei\s*<\s*(?P<t>[0-9.eE+-]+)\s*:\s*(?P<k>[0-9]+)$")
_PATIENCE = re.compile(r"^patience\s*=\s*(?P<k>[0-9]+)$")
GRAMMAR = "acc>=X, ei<T:K, patience=K (comma-separated) or none"


class StopRuleError(ValueError):
    """A `--stop-when` text that breaks the grammar: one line with the rule and the value."""


@dataclass(frozen=True)
class StopRule:
    """target: stop at incumbent >= target; ei_below / ei_steps: stop after `ei_steps` steps in a
    row with max EI < ei_below; patience: stop after `patience` epochs without improvement.
    `enabled=False` is the rule `none`."""

    target: float | None = None
    ei_below: float | None = None
    ei_steps: int = 0
    patience: int | None = None
    enabled: bool = True

    @classmethod
    def parse(cls, text: str | None) -> StopRule:
        """Parse "acc>=0.95,ei<0.001:5,patience=40" (any subset, any order) or "none"."""
        text = (text if text is not None else DEFAULT_STOP_WHEN).strip()
        if text.lower() == "none":
            return cls(enabled=False)
        target = ei_below = patience = None
        ei_steps = 0
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise StopRuleError(f"--stop-when takes {GRAMMAR}, but got {text!r}")
        for part in parts:
            low = part.lower()
            if m := _ACC.match(low):
                target = _number(m["x"], part)
                if not 0.0 < target <= 1.0:
                    raise StopRuleError(f"`0 < X <= 1` must hold in acc>=X, but got {part!r}")
            elif m := _EI.match(low):
                ei_below, ei_steps = _number(m["t"], part), int(m["k"])
                if not ei_below > 0 or ei_steps < 1:
                    raise StopRuleError(f"`T > 0` and `K >= 1` must hold in ei<T:K, but got {part!r}")
            elif m := _PATIENCE.match(low):
                patience = int(m["k"])
                if patience < 1:
                    raise StopRuleError(f"`K >= 1` must hold in patience=K, but got {part!r}")
            else:
                raise StopRuleError(f"--stop-when takes {GRAMMAR}, but got {part!r}")
        return cls(target, ei_below, ei_steps, patience)

    def to_string(self) -> str:
        if not self.enabled:
            return "none"
        parts = []
        if self.target is not None:
            parts.append(f"acc>={self.target:g}")
        if self.ei_below is not None:
            parts.append(f"ei<{self.ei_below:g}:{self.ei_steps}")
        if self.patience is not None:
            parts.append(f"patience={self.patience}")
        return ",".join(parts) or f"acc>={PERFECT:g}"


def _number(s: str, part: str) -> float:
    try:
        x = float(s)
    except ValueError:
        raise StopRuleError(f"--stop-when: {part!r} needs a number, but got {s!r}") from None
    if not math.isfinite(x):
        raise StopRuleError(f"--stop-when: {part!r} needs a finite number")
    return x


class StopMonitor:
    """Follows a search step by step and says when `rule` holds.

    observe(accuracies, max_ei): one step; `accuracies` are the newly trained epochs' validation
    accuracies (NaN for a diverged epoch), `max_ei` the maximum EI the optimizer computed when it
    chose this step (None when it computes none: such steps neither count nor break an EI run).
    `reason` is the first rule found to hold (None: go on); it stays set once set.
    """

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.incumbent = -math.inf
        self.epochs = 0
        self.since_improvement = 0  # epochs trained since the incumbent last improved
        self.low_ei_steps = 0  # consecutive steps with max EI below the threshold
        self.steps = 0
        self.reason: str | None = None

    def observe(self, accuracies: Iterable[float], max_ei: float | None = None) -> str | None:
        self.steps += 1
        for acc in accuracies:
            self.epochs += 1
            if not math.isnan(acc) and acc > self.incumbent:
                self.incumbent = float(acc)
                self.since_improvement = 0
            else:
                self.since_improvement += 1
        r = self.rule
        if r.ei_below is not None and max_ei is not None:
            self.low_ei_steps = self.low_ei_steps + 1 if max_ei < r.ei_below else 0
        if self.reason is None and r.enabled:
            self.reason = self._check()
        return self.reason

    def _check(self) -> str | None:
        r = self.rule
        if self.incumbent >= PERFECT:
            return f"validation accuracy {self.incumbent:.4g} reached: nothing left to improve"
        if r.target is not None and self.incumbent >= r.target:
            return f"target reached: validation accuracy {self.incumbent:.4f} >= {r.target:g} (acc>={r.target:g})"
        if r.ei_below is not None and self.low_ei_steps >= r.ei_steps:
            return (f"the optimizer expects no improvement: max EI below {r.ei_below:g} for {self.low_ei_steps} steps "
                    f"(ei<{r.ei_below:g}:{r.ei_steps})")
        if r.patience is not None and self.epochs > 0 and self.since_improvement >= r.patience:
            return f"no improvement for {self.since_improvement} epochs (patience={r.patience})"
        return None


__all__ = ["DEFAULT_STOP_WHEN", "StopMonitor", "StopRule", "StopRuleError"]
