"""The search space: which model to fine-tune and with which hyperparameters.

A `Config` is (model, ELR, weight decay, momentum) plus optional extra hyperparameters.
Following Li et al. (ICLR 2020) the learning rate is parametrised by the *effective* learning
rate ELR = lr / (1 - momentum). The one explicit rule that turns it back into what an SGD
optimizer receives is `Config.lr`:

    lr = ELR * (1 - momentum)        for SGD-family optimizers (plain, momentum, Nesterov)
    lr = ELR                         for adaptive optimizers (Adam family)

Why lr itself plays the role of ELR for the Adam family: heavy-ball momentum accumulates
gradients with weights summing to 1 / (1 - m), so at steady state a step moves lr / (1 - m) times
the gradient - which is why Li et al. find lr and m interchangeable at fixed ELR. Adam's first
moment is an exponential *average* (weights (1 - beta1) beta1^k, summing to 1, bias-corrected),
divided by the RMS of the gradients: the update is about lr times a unit-scale direction whatever
beta1 and whatever the gradient's scale (Adam is invariant to rescaling the loss). So the step
size that ELR measures for SGD is lr for Adam: beta1 is not folded into it, and `momentum` is not
used by Adam-family configs (their betas are the extra `opt_betas`). Note ELR values are not
comparable across the two families (Adam's good lrs are ~1e-4..1e-3, SGD's ELRs ~1e-2..1): the
encoding keeps the optimizer as a categorical feature next to log ELR.

A `SearchSpace` is a finite candidate set of configs with a fixed encoding into [0, 1]^d
(log scale for ELR and weight decay). The encoding bounds are constants or are stored with the
space (`state_dict`), so a surrogate meta-trained on one set of configs encodes new candidates
the same way at search time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

# Fixed encoding bounds (log10 scale for ELR and weight decay). Values outside are clipped.
ELR_BOUNDS = (1e-5, 10.0)
WEIGHT_DECAY_BOUNDS = (1e-6, 1e-1)  # wd below the lower bound (including 0) encodes as 0.0
MOMENTUM_BOUNDS = (0.0, 0.99)

ADAPTIVE_OPTIMIZERS = frozenset({"adam", "adamw", "adamp", "nadam", "radam", "lamb", "adabelief"})
SGD_OPTIMIZERS = frozenset({"sgd", "momentum", "nesterov"})

ExtraValue = float | int | str | bool


@dataclass(frozen=True)
class Config:
    """One point of the search space.

    `extras` holds any further hyperparameter (batch size, augmentation, the optimizer name
    under the key "optimizer", ...). It may be passed as a mapping; it is stored as a sorted
    tuple of (name, value) pairs so configs are hashable and compare by value.
    """

    model: str
    elr: float
    weight_decay: float = 0.0
    momentum: float = 0.9
    extras: tuple[tuple[str, ExtraValue], ...] | Mapping[str, ExtraValue] = field(default=())

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("`model` must be a non-empty name, but got an empty string")
        if not (math.isfinite(self.elr) and self.elr > 0):
            raise ValueError(f"`elr > 0` must hold, but got elr={self.elr!r} for model {self.model!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"`weight_decay >= 0` must hold, but got weight_decay={self.weight_decay!r}")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"`0 <= momentum < 1` must hold, but got momentum={self.momentum!r}")
        extras = self.extras.items() if isinstance(self.extras, Mapping) else self.extras
        # 12 significant digits: lr/(1-m) round-trips (0.01/(1-0.9) -> 0.1, not 0.10000000000000002)
        # so equal configs hash to equal run keys however they were built.
        object.__setattr__(self, "elr", float(f"{float(self.elr):.12g}"))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "extras", tuple(sorted((str(k), v) for k, v in extras)))

    @classmethod
    def from_lr(
        cls,
        model: str,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        optimizer: str = "sgd",
        **extras: ExtraValue,
    ) -> Config:
        """Build a config from the raw learning rate an optimizer was given."""
        optimizer = optimizer.lower()
        elr = lr if optimizer in ADAPTIVE_OPTIMIZERS else lr / (1.0 - momentum)
        if optimizer != "sgd":
            extras["optimizer"] = optimizer
        return cls(model, elr, weight_decay, momentum, extras)

    @property
    def optimizer(self) -> str:
        return str(self.extra("optimizer", "sgd"))

    @property
    def lr(self) -> float:
        """The learning rate handed to the optimizer: ELR * (1 - momentum) for SGD."""
        if self.optimizer in ADAPTIVE_OPTIMIZERS:
            return self.elr
        return self.elr * (1.0 - self.momentum)

    def extra_items(self) -> tuple[tuple[str, ExtraValue], ...]:
        """The extras as sorted (name, value) pairs (how `__post_init__` stores them)."""
        return cast("tuple[tuple[str, ExtraValue], ...]", self.extras)

    def extra(self, name: str, default: Any = None) -> Any:
        for k, v in self.extra_items():
            if k == name:
                return v
        return default

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "elr": self.elr,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        return cls(d["model"], d["elr"], d.get("weight_decay", 0.0), d.get("momentum", 0.9), d.get("extras", {}))

    def extras_json(self) -> str:
        """Canonical JSON of the extras (sorted keys), as stored in the meta-dataset."""
        return json.dumps(dict(self.extras), sort_keys=True)

    def describe(self) -> str:
        s = f"{self.model} elr={self.elr:.3g} lr={self.lr:.3g} m={self.momentum:g} wd={self.weight_decay:.3g}"
        if self.extras:
            s += " " + " ".join(f"{k}={v}" for k, v in self.extra_items())
        return s


def _log_unit(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    lo, hi = math.log10(bounds[0]), math.log10(bounds[1])
    x = np.log10(np.clip(x, bounds[0], bounds[1]))
    return (x - lo) / (hi - lo)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, bool, np.integer, np.floating)) and not isinstance(v, str)


class SearchSpace:
    """A finite candidate set of configs and their encoding into [0, 1]^d.

    The encoding has two parts, kept separate so a surrogate can treat model identity apart from
    the other hyperparameters:

    - `encode(configs)`: a (n x d) float tensor of hyperparameters in [0, 1]: log ELR, log weight
      decay, momentum, then every extra (numeric extras min-max scaled over the bounds recorded
      in the space, log-scaled when they are positive and span more than two decades;
      categorical extras one-hot).
    - `model_index(configs)`: a (n,) long tensor indexing `self.models` (-1 for an unknown model).
    """

    def __init__(
        self,
        configs: Sequence[Config],
        models: Sequence[str] | None = None,
        extra_spec: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if len(configs) == 0:
            raise ValueError("a SearchSpace needs at least one candidate config, but got 0")
        self.configs: list[Config] = list(configs)
        self.models: list[str] = sorted(set(models) if models is not None else {c.model for c in self.configs})
        self._model_pos = {m: i for i, m in enumerate(self.models)}
        self.extra_spec: dict[str, dict[str, Any]] = (
            {k: dict(v) for k, v in extra_spec.items()} if extra_spec is not None else self._infer_extra_spec(self.configs)
        )

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def _infer_extra_spec(configs: Iterable[Config]) -> dict[str, dict[str, Any]]:
        values: dict[str, list[Any]] = {}
        n = 0
        for c in configs:
            n += 1
            for k, v in c.extra_items():
                values.setdefault(k, []).append(v)
        spec: dict[str, dict[str, Any]] = {}
        for k in sorted(values):
            vs = values[k]
            if all(_is_number(v) for v in vs):
                arr = np.asarray(vs, dtype=float)
                lo, hi = float(arr.min()), float(arr.max())
                log = bool(lo > 0 and hi / lo > 100.0)
                spec[k] = {"kind": "numeric", "low": lo, "high": hi, "log": log}
                if len(vs) < n:
                    # Some configs leave it out (its off value: no warm-up, no L2-SP, the stem not
                    # frozen): a presence column tells them apart, where the value column alone
                    # would encode an absent extra as its lowest recorded value.
                    spec[k]["optional"] = True
            else:
                spec[k] = {"kind": "categorical", "choices": sorted({str(v) for v in vs})}
        return spec

    @classmethod
    def grid(
        cls,
        models: Sequence[str],
        elrs: Sequence[float],
        weight_decays: Sequence[float] = (0.0,),
        momenta: Sequence[float] = (0.9,),
    ) -> SearchSpace:
        """The full factorial grid, ordered model-major (the order a person would sweep it)."""
        configs = [Config(m, e, w, mo) for m in models for e in elrs for w in weight_decays for mo in momenta]
        return cls(configs, models=models)

    def __len__(self) -> int:
        return len(self.configs)

    def __getitem__(self, i: int) -> Config:
        return self.configs[i]

    @property
    def hp_names(self) -> list[str]:
        return self.encoded_names(self.extra_spec)

    @staticmethod
    def encoded_names(extra_spec: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The columns `encode` produces for a space with these extras (see `state_dict`)."""
        names = ["log_elr", "log_weight_decay", "momentum"]
        for k, s in extra_spec.items():
            if s["kind"] == "numeric":
                names.append(k)
                if s.get("optional"):
                    names.append(f"{k}:set")
            else:
                names.extend(f"{k}={c}" for c in s["choices"])
        return names

    @property
    def dim(self) -> int:
        return len(self.hp_names)

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, configs: Sequence[Config] | None = None) -> torch.Tensor:
        """Hyperparameters of `configs` (default: all candidates) as a (n x d) tensor in [0, 1]."""
        configs = self.configs if configs is None else configs
        n = len(configs)
        cols = [
            _log_unit(np.array([c.elr for c in configs], dtype=float), ELR_BOUNDS),
            _log_unit(np.array([c.weight_decay for c in configs], dtype=float), WEIGHT_DECAY_BOUNDS),
            (np.clip([c.momentum for c in configs], *MOMENTUM_BOUNDS) - MOMENTUM_BOUNDS[0])
            / (MOMENTUM_BOUNDS[1] - MOMENTUM_BOUNDS[0]),
        ]
        for k, s in self.extra_spec.items():
            raw = [c.extra(k) for c in configs]
            if s["kind"] == "numeric":
                lo, hi = s["low"], s["high"]
                x = np.array([lo if (v is None or not _is_number(v)) else float(v) for v in raw], dtype=float)
                if s["log"]:
                    x, lo, hi = np.log10(np.clip(x, lo, hi)), math.log10(lo), math.log10(hi)
                cols.append(np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros(n))
                if s.get("optional"):
                    cols.append(np.array([0.0 if v is None else 1.0 for v in raw]))
            else:
                for choice in s["choices"]:
                    cols.append(np.array([1.0 if (v is not None and str(v) == choice) else 0.0 for v in raw]))
        return torch.as_tensor(np.stack(cols, axis=1) if n else np.zeros((0, len(cols))), dtype=torch.float64)

    def model_index(self, configs: Sequence[Config] | None = None) -> torch.Tensor:
        """Position of each config's model in `self.models`, a (n,) long tensor (-1 if unknown)."""
        configs = self.configs if configs is None else configs
        return torch.tensor([self._model_pos.get(c.model, -1) for c in configs], dtype=torch.long)

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to encode new configs exactly as this space does (JSON-able)."""
        return {"models": list(self.models), "extra_spec": self.extra_spec}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], configs: Sequence[Config]) -> SearchSpace:
        """A space over new candidate `configs` that encodes them like the space `state` came from."""
        return cls(configs, models=state["models"], extra_spec=state["extra_spec"])
