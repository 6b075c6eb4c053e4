"""The input encoding, configs + features -> X: each candidate's static part (hyperparameters
encoded like the meta-training space, model identity, scaled model descriptors, scaled dataset and
(model, dataset) features) and the packed rows that add an epoch (as a fraction of the horizon)
and the observed curve prefix. Shapes: static (n x layout.static_dim), rows (n x layout.width)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from quicktune.space import Config, SearchSpace
from quicktune.surrogate.nets import DTYPE, FeatureScaler, InputLayout, pad_prefixes


@dataclass(frozen=True)
class InputEncoder:
    """Everything the encoding needs, as fitted at meta-training (a `Surrogate` holds it)."""

    space_state: Mapping[str, Any]
    model_descriptors: Mapping[str, Mapping[str, float]]
    desc_scaler: FeatureScaler
    scaler: FeatureScaler
    layout: InputLayout
    max_epochs: int

    def static_inputs(
        self,
        configs: Sequence[Config],
        dataset_features: Mapping[str, float] | None = None,
        pair_features: Mapping[str, Mapping[str, float]] | None = None,
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Tensor:
        """The config- and dataset-dependent part of the inputs: a (n x layout.static_dim) tensor.

        dataset_features: {name: value} of the target dataset; pair_features: {model: {name:
        value}} (model, dataset) features; model_descriptors: extra/override model descriptors
        (for models meta-training never saw). A missing feature is 0 with presence 0 (a case
        meta-training covers by hiding feature groups).
        """
        n = len(configs)
        space = SearchSpace.from_state_dict(self.space_state, configs) if n else None
        hp = space.encode() if space is not None else torch.zeros(0, self.layout.hp_dim, dtype=DTYPE)
        midx = space.model_index().to(DTYPE) if space is not None else torch.zeros(0, dtype=DTYPE)
        descs = {**self.model_descriptors, **{m: dict(v) for m, v in (model_descriptors or {}).items()}}
        desc = self.desc_scaler.transform([descs.get(c.model, {}) for c in configs])
        ds = dict(dataset_features or {})
        pf = pair_features or {}
        feature_rows = [{**ds, **pf.get(c.model, {})} for c in configs]
        meta = np.concatenate([self.scaler.transform(feature_rows), self.scaler.presence(feature_rows)], axis=1)
        return torch.cat(
            [hp.to(DTYPE), midx.reshape(-1, 1), torch.as_tensor(desc, dtype=DTYPE), torch.as_tensor(meta, dtype=DTYPE)],
            dim=1,
        )

    def rows(
        self, static: Tensor, epochs: Sequence[int] | np.ndarray | Tensor, prefixes: Sequence[Sequence[float]], horizon: int | None = None
    ) -> Tensor:
        """Packed rows for "static[i] evaluated at epoch epochs[i] after prefixes[i]": (n x width).

        horizon: the target's epoch horizon (budget = epoch / horizon); default: meta-training's.
        """
        horizon = int(horizon or self.max_epochs)
        t = torch.as_tensor(np.asarray(epochs, dtype=float), dtype=DTYPE)
        values, mask = pad_prefixes(prefixes, self.layout.curve_len)
        return self.layout.pack(static, (t / horizon).clamp(max=1.0), values, mask)
