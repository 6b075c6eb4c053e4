"""The candidate design: hyperparameter configs per model, and their fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from quicktune.design import RECIPE_EXTRAS, recipe_hyperparameters, sobol_hyperparameters
from quicktune.space import Config
from quicktune.suggest.errors import SuggestError

DEFAULT_CANDIDATES = 32  # hyperparameter configs per model


def candidate_hyperparameters(n: int, seed: int = 0) -> list[dict[str, float]]:
    """`n` points of the Sobol candidate design over the collection's space (`design.sobol_hyperparameters`)."""
    try:
        return sobol_hyperparameters(n, seed)
    except ValueError as e:
        raise SuggestError(str(e)) from None


def make_candidates(
    models: Sequence[str], n: int, seed: int = 0, extra_spec: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Config]:
    """models x the same `n` Sobol (ELR, weight decay, momentum) points (model-major), de-duplicated.

    extra_spec: the surrogate's recorded extras (`Surrogate.space_state["extra_spec"]`). When its
    meta-dataset varied the fine-tuning recipe (optimizer family, schedule, warm-up, frozen
    embedding, L2-SP: metadataset/v2), `n` points of `design.recipe_hyperparameters` are added per
    model, keeping only the points whose every extra the surrogate has seen (a schedule it never
    saw would be a guess, not a prediction)."""
    hps: list[dict[str, Any]] = list(candidate_hyperparameters(n, seed))
    if extra_spec and any(k in extra_spec for k in RECIPE_EXTRAS):
        hps += [hp for hp in recipe_hyperparameters(n, seed) if _known(hp, extra_spec)]
    base = ("elr", "weight_decay", "momentum")
    configs = [Config(m, hp["elr"], hp["weight_decay"], hp["momentum"],
                      extras={k: v for k, v in hp.items() if k not in base}) for m in models for hp in hps]
    return list(dict.fromkeys(configs))


def _known(hp: Mapping[str, Any], extra_spec: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether the surrogate's space holds every extra of `hp` (categorical: that very choice)."""
    for k, v in hp.items():
        if k in ("elr", "weight_decay", "momentum"):
            continue
        spec = extra_spec.get(k)
        if spec is None or (spec["kind"] == "categorical" and str(v) not in spec["choices"]):
            return False
    return True


def candidates_fingerprint(configs: Sequence[Config]) -> str:
    blob = json.dumps([c.to_dict() for c in configs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
