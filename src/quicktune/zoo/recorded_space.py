"""The hyperparameter space a meta-dataset's runs were drawn from, derived from its recorded configs.

Quick-Tune drew every run's hyperparameters from a conditional grid: the Adam betas only vary for
the Adam family, the decay epochs only for step schedules, the RandAugment magnitude only with
RandAugment, and so on; elsewhere the recorded value is the option's "off" default. Nothing here
hard-codes that grid: `RecordedSpace.derive` reads it off the recorded configs.

- value sets: every distinct recorded value of each hyperparameter (`lr` as the optimizer was
  given it; the ELR follows from lr, momentum and the optimizer by the one rule in `quicktune.space`);
- a parent per hyperparameter: the categorical hyperparameter under which it is most often forced
  to a single value (opt_betas under the optimizer, decay_epochs under the schedule, ...); the
  allowed values of a child are then the ones recorded together with its parent's value;
- a per-model upper bound on numeric values (the largest recorded with that model): Quick-Tune
  capped the batch size of the large models by GPU memory, and a suggestion must respect that;
- `fixed`: hyperparameters pinned to a value (those the fine-tuner cannot run stay at "off").

`sample` draws candidate configs from it (seeded, uniform over the allowed values, parents first);
`to_dict` / `from_dict` keep it with a surrogate checkpoint (JSON-able, a few KB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quicktune.space import Config

# The Config fields that are sampled like extras (model is crossed, not sampled; elr is derived).
_CORE = ("lr", "momentum", "weight_decay", "optimizer")
# A parent must force its child to one value on at least this share of the runs.
_MIN_FORCED = 0.1


def _key(v: Any) -> str:
    """Values compare by their JSON-ish text (1 == 1.0, "None" stays a string)."""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return repr(float(v))
    return str(v)


def _record(c: Config) -> dict[str, Any]:
    # lr is re-derived from the stored ELR: round away the float noise of ELR * (1 - momentum).
    return {"lr": float(f"{c.lr:.8g}"), "momentum": c.momentum, "weight_decay": c.weight_decay, "optimizer": c.optimizer,
            **{k: v for k, v in c.extra_items() if k != "optimizer"}}


def _sort(values: list[Any]) -> list[Any]:
    nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(values) if nums else sorted(values, key=str)


@dataclass
class RecordedSpace:
    """values: {hp: [values]}; parents: {child: parent}; conditional: {child: {parent value key:
    [values]}}; caps: {hp: {model: max}}; fixed: {hp: value}. See the module docstring."""

    values: dict[str, list[Any]]
    parents: dict[str, str] = field(default_factory=dict)
    conditional: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    caps: dict[str, dict[str, float]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    # -- derivation -------------------------------------------------------------------------------
    @classmethod
    def derive(cls, configs: Sequence[Config], fixed: Mapping[str, Any] | None = None) -> RecordedSpace:
        """The space of `configs` (recorded runs; their models may be any names)."""
        if not configs:
            raise ValueError("a RecordedSpace needs at least one recorded config, but got 0")
        rows = [_record(c) for c in configs]
        models = [c.model for c in configs]
        names = sorted({k for r in rows for k in r})
        values = {h: _sort(list({_key(r[h]): r[h] for r in rows if h in r}.values())) for h in names}
        categorical = [h for h in names if any(isinstance(v, str) for v in values[h]) and len(values[h]) > 1]

        parents: dict[str, str] = {}
        score: dict[str, float] = {}
        for h in names:
            if len(values[h]) < 2:
                continue
            for g in categorical:
                if g == h:
                    continue
                by: dict[str, set[str]] = {}
                for r in rows:
                    if h in r and g in r:
                        by.setdefault(_key(r[g]), set()).add(_key(r[h]))
                n = sum(1 for r in rows if h in r and g in r)
                forced = sum(1 for r in rows if h in r and g in r and len(by[_key(r[g])]) == 1)
                varies = any(len(s) > 1 for s in by.values())
                if n and varies and forced / n >= _MIN_FORCED and forced / n > score.get(h, 0.0):
                    parents[h], score[h] = g, forced / n
        # A pair that forces each other (data_augmentation <-> auto_augment): keep the stronger
        # direction; then drop whatever still closes a cycle.
        for h, g in list(parents.items()):
            if parents.get(g) == h and h in parents:
                weaker = h if score[h] < score[g] or (score[h] == score[g] and h > g) else g
                parents.pop(weaker)
        for h in list(parents):
            seen, node = {h}, parents.get(h)
            while node is not None:
                if node in seen:
                    parents.pop(h)
                    break
                seen.add(node)
                node = parents.get(node)

        conditional: dict[str, dict[str, list[Any]]] = {}
        for h, g in parents.items():
            table: dict[str, dict[str, Any]] = {}
            for r in rows:
                if h in r and g in r:
                    table.setdefault(_key(r[g]), {})[_key(r[h])] = r[h]
            conditional[h] = {k: _sort(list(v.values())) for k, v in table.items()}

        caps: dict[str, dict[str, float]] = {}
        for h in names:
            if h in categorical or not all(isinstance(v, (int, float)) for v in values[h]):
                continue
            per: dict[str, float] = {}
            for m, r in zip(models, rows):
                if h in r:
                    per[m] = max(per.get(m, -math.inf), float(r[h]))
            if len(set(per.values())) > 1:
                caps[h] = per
        space = cls(values, parents, conditional, caps, {})
        for k, v in (fixed or {}).items():
            if k in values:  # an option this meta-dataset never recorded needs no pinning
                space.fix(k, v)
        return space

    def fix(self, name: str, value: Any) -> None:
        """Pin `name` to `value` in every sampled config (e.g. an option the fine-tuner cannot run)."""
        if name not in self.values:
            raise ValueError(f"`{name}` is not a recorded hyperparameter; recorded: {sorted(self.values)}")
        self.fixed[name] = value

    # -- sampling ---------------------------------------------------------------------------------
    def order(self) -> list[str]:
        """Hyperparameter names, every parent before its children."""
        out: list[str] = []

        def visit(h: str) -> None:
            if h in out:
                return
            if h in self.parents:
                visit(self.parents[h])
            out.append(h)

        for h in sorted(self.values):
            visit(h)
        return out

    def allowed(self, name: str, chosen: Mapping[str, Any], model: str) -> list[Any]:
        """The values `name` may take given the already chosen parent value and the model."""
        if name in self.fixed:
            return [self.fixed[name]]
        vals = self.values[name]
        parent = self.parents.get(name)
        if parent is not None and parent in chosen:
            vals = self.conditional[name].get(_key(chosen[parent]), vals)
        cap = self.caps.get(name, {}).get(model)
        if cap is not None:
            vals = [v for v in vals if float(v) <= cap] or [min(vals, key=float)]
        return vals

    def sample_hyperparameters(self, model: str, rng: np.random.Generator) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for h in self.order():
            vals = self.allowed(h, chosen, model)
            chosen[h] = vals[int(rng.integers(len(vals)))]
        return chosen

    def config(self, model: str, hps: Mapping[str, Any]) -> Config:
        """A Config of `model` with the hyperparameters `hps` (lr as given to the optimizer)."""
        extras = {k: v for k, v in hps.items() if k not in _CORE}
        return Config.from_lr(model, float(hps["lr"]), momentum=float(hps.get("momentum", 0.9)),
                              weight_decay=float(hps.get("weight_decay", 0.0)),
                              optimizer=str(hps.get("optimizer", "sgd")), **extras)

    def sample(self, models: Sequence[str], n: int, seed: int = 0) -> list[Config]:
        """`n` hyperparameter settings per model (model-major), seeded; the same hyperparameters
        for every model except where a per-model cap moves a value (so models compare on equal
        terms). Duplicates are dropped."""
        if n < 1:
            raise ValueError(f"`n >= 1` must hold, but got n={n}")
        out: list[Config] = []
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x200])
        # Draw the settings once (for an uncapped model), then apply each model's caps.
        drawn = [self.sample_hyperparameters("", rng) for _ in range(n)]
        for m in models:
            for hps in drawn:
                fitted: dict[str, Any] = {}
                for h in self.order():
                    allowed = self.allowed(h, fitted, m)
                    v = hps[h]
                    if not any(_key(v) == _key(a) for a in allowed):
                        v = max(allowed, key=float)  # only caps (numeric) can remove a drawn value
                    fitted[h] = v
                out.append(self.config(m, fitted))
        return list(dict.fromkeys(out))

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "parents": self.parents, "conditional": self.conditional, "caps": self.caps,
                "fixed": self.fixed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecordedSpace:
        return cls({k: list(v) for k, v in d["values"].items()}, dict(d.get("parents", {})),
                   {k: {p: list(v) for p, v in t.items()} for k, t in d.get("conditional", {}).items()},
                   {k: dict(v) for k, v in d.get("caps", {}).items()}, dict(d.get("fixed", {})))
