"""The candidate design: hyperparameter configs per model, and their fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from quicktune.design import sobol_hyperparameters
from quicktune.space import Config
from quicktune.suggest.errors import SuggestError

DEFAULT_CANDIDATES = 32  # hyperparameter configs per model


def candidate_hyperparameters(n: int, seed: int = 0) -> list[dict[str, float]]:
    """`n` points of the Sobol candidate design over the collection's space (`design.sobol_hyperparameters`)."""
    try:
        return sobol_hyperparameters(n, seed)
    except ValueError as e:
        raise SuggestError(str(e)) from None


def make_candidates(models: Sequence[str], n: int, seed: int = 0) -> list[Config]:
    """models x the same `n` Sobol hyperparameter points (model-major), de-duplicated."""
    hps = candidate_hyperparameters(n, seed)
    configs = [Config(m, hp["elr"], hp["weight_decay"], hp["momentum"]) for m in models for hp in hps]
    return list(dict.fromkeys(configs))


def candidates_fingerprint(configs: Sequence[Config]) -> str:
    blob = json.dumps([c.to_dict() for c in configs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
