"""The Quick-Tune model zoo: the published meta-dataset's 24 timm models and the hyperparameter
space its runs were drawn from, carried by the shipped surrogate `surrogate_quicktune.pt`.

Everything a zero-shot suggestion needs travels in the checkpoint's `info["zoo"]` (`Zoo.to_dict`):
the models under their current timm names (the recorded names are aliases), per model its input
size and parameter count (read from timm's registry when the checkpoint is built; no weights),
the `RecordedSpace`, the epoch horizon and the unit of the predicted cost. So `suggest --zoo
quicktune` runs offline, with no weights and no timm registry lookup.

The meta-dataset is Quick-Tune's (Arango, Ferreira, Kadra, Hutter, Grabocka: "Quick-Tune: Quickly
Learning Which Pretrained Model to Finetune and How", ICLR 2024), published by rapanti/quicktune
under the BSD-3-Clause license; its notice ships as assets/QUICKTUNE_METADATASET_LICENSE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quicktune.space import Config
from quicktune.zoo.recorded_space import RecordedSpace

ZOO_NAME = "quicktune"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
SURROGATE_FILE = ASSETS / "surrogate_quicktune.pt"
LICENSE_FILE = ASSETS / "QUICKTUNE_METADATASET_LICENSE"
COST_UNIT = "GPU-seconds as recorded in the Quick-Tune meta-dataset (their GPUs, their data loading)"
ATTRIBUTION = (
    "Quick-Tune meta-dataset (Arango et al., ICLR 2024; github.com/rapanti/quicktune), BSD-3-Clause, "
    "copyright (c) 2024 rapanti"
)


def timm_name(recorded: str) -> str:
    """The current timm name of a model recorded under an older name (timm's own deprecation
    table, else the architecture's default pretrained tag); the name itself when timm has none."""
    import warnings

    import timm
    from timm.models import _registry

    new = _registry._deprecated_models.get(recorded)
    if new:
        return str(new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = timm.models.get_pretrained_cfg(recorded)
    arch, tag = _registry.split_model_name_tag(recorded)
    if cfg is not None and getattr(cfg, "tag", None) and not tag:
        return f"{arch}.{cfg.tag}"
    return recorded


def model_facts(name: str) -> dict[str, float]:
    """{input_size, n_params} of a timm model from its registry entry, built on the meta device
    (shapes only: no weights are downloaded or allocated)."""
    import warnings

    import timm
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = timm.models.get_pretrained_cfg(name)
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
    size = int(cfg.input_size[-1]) if cfg is not None else 224
    return {"input_size": float(size), "n_params": float(sum(p.numel() for p in model.parameters()))}


@dataclass
class Zoo:
    """A model zoo: models (timm names), aliases, per-model facts, the candidate space."""

    name: str
    models: list[str]
    aliases: dict[str, str]  # recorded (or any other) name -> model
    facts: dict[str, dict[str, float]]
    space: RecordedSpace
    max_epochs: int
    cost_unit: str = COST_UNIT
    attribution: str = ATTRIBUTION
    info: dict[str, Any] = field(default_factory=dict)

    def resolve(self, names: Sequence[str] | None) -> list[str]:
        """The zoo models named (timm names or recorded aliases; all of them when None)."""
        if names is None:
            return list(self.models)
        out: list[str] = []
        unknown: list[str] = []
        for n in (s.strip() for s in names):
            if not n:
                continue
            m = n if n in self.models else self.aliases.get(n)
            if m is None:
                unknown.append(n)
            elif m not in out:
                out.append(m)
        if unknown:
            raise ValueError(f"model(s) {', '.join(unknown)} are not in the {self.name} zoo; its models: "
                             f"{', '.join(self.models)} (recorded names are accepted too)")
        if not out:
            raise ValueError("--models is empty; give comma-separated model names")
        return out

    def recorded_name(self, model: str) -> str:
        return next((a for a, m in self.aliases.items() if m == model), model)

    def candidates(self, models: Sequence[str], n: int, seed: int = 0) -> list[Config]:
        """`n` hyperparameter settings of the recorded space per model (see RecordedSpace.sample)."""
        return self.space.sample(models, n, seed)

    def largest_model(self, models: Sequence[str] | None = None) -> str:
        pool = list(models) if models is not None else self.models
        return max(pool, key=lambda m: (self.facts.get(m, {}).get("n_params", 0.0), m))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "models": self.models, "aliases": self.aliases, "facts": self.facts,
                "space": self.space.to_dict(), "max_epochs": self.max_epochs, "cost_unit": self.cost_unit,
                "attribution": self.attribution, "info": self.info}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Zoo:
        return cls(str(d["name"]), list(d["models"]), dict(d["aliases"]), {k: dict(v) for k, v in d["facts"].items()},
                   RecordedSpace.from_dict(d["space"]), int(d["max_epochs"]), str(d.get("cost_unit", COST_UNIT)),
                   str(d.get("attribution", ATTRIBUTION)), dict(d.get("info", {})))

    @classmethod
    def from_surrogate(cls, surrogate: object) -> Zoo | None:
        """The zoo a surrogate checkpoint carries (None for a surrogate without one)."""
        d = (getattr(surrogate, "info", {}) or {}).get("zoo")
        return cls.from_dict(d) if d else None


def unsupported_off_values() -> dict[str, Any]:
    """The recorded hyperparameters quicktune's fine-tuner cannot run, at their "off" value."""
    from quicktune.finetune.recipe import UNSUPPORTED

    return {name: 0 for name in UNSUPPORTED}


__all__ = ["ATTRIBUTION", "COST_UNIT", "LICENSE_FILE", "SURROGATE_FILE", "ZOO_NAME", "Zoo", "model_facts",
           "timm_name", "unsupported_off_values"]
