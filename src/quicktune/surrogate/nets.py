"""The learned parts of the surrogate: feature scaling, the input layout, the deep-kernel feature
extractor and the cost network.

One surrogate input row describes "config c, evaluated at epoch t, after having seen its curve up
to epoch t - 1". Rows are packed into one float tensor so gpytorch's ExactGP can cache and
concatenate them like any other input. The columns are (see `InputLayout`):

    [ hp (d) | model index (1) | model descriptors (m) | meta features (k) | meta presence (k)
      | budget (1) | curve prefix (L) | prefix mask (L) ]

where L = max_epochs - 1 of the meta-training horizon. The first four blocks depend only on the
config and the dataset ("static" inputs, computed once per candidate and cached); the last three
change as the config is trained.

Everything is float64: the nets are tiny, and the GP's Cholesky factorisations are far more
robust in double precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

DTYPE = torch.float64

# Count-like features that span orders of magnitude: the scaler standardises their log.
LOG_FEATURES = frozenset({"n_samples", "n_classes", "image_size", "n_params", "params", "parameters", "macs", "flops"})


# Standardised features are clipped to this many standard deviations: a target unlike every
# meta-training dataset (a 5-SD similarity, 100x the images) is treated as "at the edge of what was
# seen" instead of being extrapolated linearly by the nets, which saturated every prediction.
CLIP_SD = 3.0


@dataclass
class FeatureScaler:
    """Standardises named numeric features (log first for counts) with statistics fitted once.

    The statistics are saved in the surrogate checkpoint so meta-training and search time scale
    a dataset's features identically. Standardised values are clipped to +-`clip` SDs. A feature
    that was constant over meta-training (std 0 here) carries no information and always scales
    to 0. A missing feature is not a silent 0: `presence` marks it, and the surrogate sees both
    (meta-training hides whole `groups` of features at random so that "unknown" is a trained case).
    """

    names: list[str]
    log: list[bool]
    mean: list[float]
    std: list[float]
    groups: list[str] = field(default_factory=list)
    clip: float = CLIP_SD

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = ["all"] * len(self.names)
        if len(self.groups) != len(self.names):
            raise ValueError(f"one group per feature is needed, but got {len(self.groups)} groups for {len(self.names)} names")

    @classmethod
    def fit(
        cls, rows: Sequence[Mapping[str, float]], names: Sequence[str], groups: Sequence[str] | None = None,
        clip: float = CLIP_SD,
    ) -> FeatureScaler:
        names = list(names)
        log = [n in LOG_FEATURES for n in names]
        mean, std = [], []
        for j, name in enumerate(names):
            vals = np.array([_raw(r.get(name), log[j]) for r in rows], dtype=float)
            vals = vals[np.isfinite(vals)]
            mu = float(vals.mean()) if len(vals) else 0.0
            sd = float(vals.std()) if len(vals) > 1 else 0.0
            mean.append(mu)
            std.append(sd if sd > 1e-8 else 0.0)
        return cls(names, log, mean, std, list(groups) if groups is not None else [], float(clip))

    @property
    def dim(self) -> int:
        return len(self.names)

    def group_columns(self) -> dict[str, list[int]]:
        """{group: column indices} in feature order."""
        out: dict[str, list[int]] = {}
        for j, g in enumerate(self.groups):
            out.setdefault(g, []).append(j)
        return out

    def zscores(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Rows of named features -> (n x k) unclipped standard scores (NaN: missing; 0: constant)."""
        out = np.full((len(rows), self.dim), np.nan)
        for i, r in enumerate(rows):
            for j, name in enumerate(self.names):
                v = _raw(r.get(name), self.log[j])
                if math.isfinite(v):
                    out[i, j] = (v - self.mean[j]) / self.std[j] if self.std[j] > 0 else 0.0
        return out

    def transform(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Rows of named features -> (n x k) standardised values clipped to +-clip (missing -> 0;
        see `presence` for which are missing)."""
        out: np.ndarray = np.nan_to_num(np.clip(self.zscores(rows), -self.clip, self.clip), nan=0.0)
        return out

    def presence(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(n x k): 1 where the row has a finite value of the feature, else 0."""
        out: np.ndarray = np.isfinite(self.zscores(rows)).astype(float)
        return out

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FeatureScaler:
        return cls(list(state["names"]), list(state["log"]), list(state["mean"]), list(state["std"]),
                   list(state.get("groups") or []), float(state.get("clip", CLIP_SD)))


def _raw(value: Any, log: bool) -> float:
    if value is None:
        return math.nan
    v = float(value)
    if log:
        return math.log(v) if v > 0 else math.nan
    return v


@dataclass(frozen=True)
class InputLayout:
    """Column blocks of a packed surrogate input row (see the module docstring).

    meta_dim is the width of the whole meta block: k standardised features then their k presence
    indicators (so it is 2k).
    """

    hp_dim: int
    desc_dim: int
    meta_dim: int
    curve_len: int

    @property
    def meta_start(self) -> int:
        return self.hp_dim + 1 + self.desc_dim

    @property
    def static_dim(self) -> int:
        """hp + model index + descriptors + meta features."""
        return self.hp_dim + 1 + self.desc_dim + self.meta_dim

    @property
    def width(self) -> int:
        return self.static_dim + 1 + 2 * self.curve_len

    @property
    def model_col(self) -> int:
        return self.hp_dim

    @property
    def budget_col(self) -> int:
        return self.static_dim

    def hp(self, x: Tensor) -> Tensor:
        return x[:, : self.hp_dim]

    def model(self, x: Tensor) -> Tensor:
        return x[:, self.model_col].round().long()

    def desc(self, x: Tensor) -> Tensor:
        s = self.hp_dim + 1
        return x[:, s : s + self.desc_dim]

    def meta(self, x: Tensor) -> Tensor:
        s = self.hp_dim + 1 + self.desc_dim
        return x[:, s : s + self.meta_dim]

    def budget(self, x: Tensor) -> Tensor:
        return x[:, self.budget_col]

    def curve(self, x: Tensor) -> Tensor:
        s = self.static_dim + 1
        return x[:, s : s + self.curve_len]

    def mask(self, x: Tensor) -> Tensor:
        s = self.static_dim + 1 + self.curve_len
        return x[:, s : s + self.curve_len]

    def last_value(self, x: Tensor) -> Tensor:
        """(n,) the last observed accuracy of each row's prefix (0 for an empty prefix)."""
        if self.curve_len == 0:
            return torch.zeros(x.shape[0], dtype=x.dtype)
        mask = self.mask(x)
        k = (mask > 0.5).sum(dim=1)
        last = self.curve(x).gather(1, (k - 1).clamp(min=0)[:, None]).squeeze(1)
        return torch.where(k > 0, last, torch.zeros_like(last))

    def pack(self, static: Tensor, budget: Tensor, curve: Tensor, mask: Tensor) -> Tensor:
        """static: (n x static_dim), budget: (n,) in (0, 1], curve/mask: (n x curve_len) -> (n x width)."""
        return torch.cat([static, budget.reshape(-1, 1), curve, mask], dim=1)

    def state_dict(self) -> dict[str, int]:
        return asdict(self)


def pad_prefixes(prefixes: Sequence[Sequence[float]], curve_len: int) -> tuple[Tensor, Tensor]:
    """Curve prefixes (lists of accuracies, NaN = diverged) -> (values, mask), each (n x curve_len).

    Values are left-aligned (column j is epoch j + 1) and zero-padded; NaN counts as 0 accuracy. A
    prefix longer than `curve_len` (a longer horizon than meta-training saw) keeps its last epochs.
    """
    n = len(prefixes)
    values = np.zeros((n, curve_len))
    mask = np.zeros((n, curve_len))
    if curve_len == 0:
        return torch.as_tensor(values, dtype=DTYPE), torch.as_tensor(mask, dtype=DTYPE)
    for i, prefix in enumerate(prefixes):
        p = np.asarray(prefix, dtype=float)[-curve_len:]
        k = len(p)
        values[i, :k] = np.nan_to_num(p, nan=0.0)
        mask[i, :k] = 1.0
    return torch.as_tensor(values, dtype=DTYPE), torch.as_tensor(mask, dtype=DTYPE)


@dataclass
class NetConfig:
    """Sizes of the feature extractor and the cost net (small: refit runs every BO step)."""

    hp_hidden: int = 32
    model_emb: int = 8
    meta_hidden: int = 8
    curve_channels: int = 8
    curve_hidden: int = 8
    hidden: int = 32
    out_dim: int = 16
    cost_hidden: int = 32

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetConfig:
        return cls(**{k: int(v) for k, v in d.items() if k in cls.__dataclass_fields__})


class CurveEncoder(nn.Module):
    """1-D conv over the (value, mask) channels of a curve prefix, masked max-pool, plus the last
    and best observed values and the prefix length (the strongest single predictors of the next
    epoch, given explicitly so the conv need not learn to find them).

    values, mask: (n x L) -> (n x out) features.
    """

    def __init__(self, curve_len: int, channels: int, out: int) -> None:
        super().__init__()
        self.curve_len = curve_len
        self.conv = nn.Sequential(
            nn.Conv1d(2, channels, kernel_size=3, padding=1),
            nn.LeakyReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1),
            nn.LeakyReLU(),
        )
        self.proj = nn.Linear(channels + 3, out)

    def forward(self, values: Tensor, mask: Tensor) -> Tensor:
        n = values.shape[0]
        summary = torch.zeros(n, self.proj.in_features, dtype=values.dtype)
        if self.curve_len == 0:
            out: Tensor = self.proj(summary)
            return out
        seen = mask > 0.5  # (n x L)
        k = seen.sum(dim=1)  # observed epochs
        rows = torch.nonzero(k > 0).squeeze(1)
        if len(rows):
            # Rows with an empty prefix (unstarted configs: most of a large candidate set) have
            # an all-zero summary by definition, so only the others go through the convolutions.
            # Of those, only the first (longest prefix + 2) positions can reach a pooled output
            # through two radius-1 convolutions, so the rest of the padding is cut too. Both
            # shortcuts give exactly the result of the full computation.
            kr = k[rows]
            cut = min(self.curve_len, int(kr.max()) + 2)
            v, m, sn = values[rows, :cut], mask[rows, :cut], seen[rows, :cut]
            h = self.conv(torch.stack([v, m], dim=1))  # (r x C x cut)
            pooled = h.masked_fill(~sn[:, None, :], -torch.inf).amax(dim=2)
            last = v.gather(1, (kr - 1)[:, None])
            best = v.masked_fill(~sn, 0.0).amax(dim=1, keepdim=True)
            frac = (kr.to(values.dtype) / self.curve_len)[:, None]  # relative to the full length
            summary = summary.index_put((rows,), torch.cat([pooled, last, best, frac], dim=1))
        out = self.proj(summary)
        return out


class FeatureExtractor(nn.Module):
    """Maps packed input rows (n x layout.width) to kernel features (n x out_dim).

    Separate embeddings for (a) the hyperparameters, (b) the model (an nn.Embedding with one
    extra "unknown model" row at index n_models, plus a projection of numeric model descriptors
    when there are any), (c) the budget t / max_epochs (and its log), (d) the curve prefix, and
    (e) the standardised dataset / (model, dataset) features; a small MLP fuses them.
    """

    def __init__(self, layout: InputLayout, n_models: int, cfg: NetConfig, max_epochs: int) -> None:
        super().__init__()
        self.layout = layout
        self.n_models = n_models
        self.log_horizon = math.log(max(max_epochs, 2))
        self.hp_net = nn.Sequential(nn.Linear(layout.hp_dim, cfg.hp_hidden), nn.LeakyReLU())
        self.model_emb = nn.Embedding(n_models + 1, cfg.model_emb)
        self.desc_net = nn.Linear(layout.desc_dim, cfg.model_emb) if layout.desc_dim else None
        self.meta_net = nn.Sequential(nn.Linear(layout.meta_dim, cfg.meta_hidden), nn.LeakyReLU()) if layout.meta_dim else None
        self.curve_net = CurveEncoder(layout.curve_len, cfg.curve_channels, cfg.curve_hidden)
        fused = cfg.hp_hidden + cfg.model_emb + (cfg.meta_hidden if layout.meta_dim else 0) + cfg.curve_hidden + 2
        self.head = nn.Sequential(
            nn.Linear(fused, cfg.hidden), nn.LeakyReLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(),
            nn.Linear(cfg.hidden, cfg.out_dim),
        )
        self.out_dim = cfg.out_dim

    def model_index(self, x: Tensor) -> Tensor:
        """(n,) embedding rows; an index outside [0, n_models) (e.g. -1) is the unknown-model row."""
        m = self.layout.model(x)
        return torch.where((m >= 0) & (m < self.n_models), m, torch.full_like(m, self.n_models))

    def forward(self, x: Tensor) -> Tensor:
        lay = self.layout
        parts = [self.hp_net(lay.hp(x))]
        emb = self.model_emb(self.model_index(x))
        if self.desc_net is not None:
            emb = emb + self.desc_net(lay.desc(x))
        parts.append(emb)
        if self.meta_net is not None:
            parts.append(self.meta_net(lay.meta(x)))
        parts.append(self.curve_net(lay.curve(x), lay.mask(x)))
        b = lay.budget(x).clamp(min=1e-6)
        parts.append(torch.stack([b, 1.0 + torch.log(b) / self.log_horizon], dim=1))
        out: Tensor = self.head(torch.cat(parts, dim=1))
        return out


class CostNet(nn.Module):
    """Predicts log seconds of one epoch from the static inputs (config, model, dataset).

    static: (n x layout.static_dim) -> (n,) log seconds. Targets are standardised with the
    buffers `log_mean` / `log_std` (fitted in meta-training, saved with the weights).
    """

    def __init__(self, layout: InputLayout, n_models: int, cfg: NetConfig) -> None:
        super().__init__()
        self.layout = layout
        self.n_models = n_models
        self.model_emb = nn.Embedding(n_models + 1, cfg.model_emb)
        width = layout.hp_dim + cfg.model_emb + layout.desc_dim + layout.meta_dim
        self.net = nn.Sequential(
            nn.Linear(width, cfg.cost_hidden), nn.LeakyReLU(), nn.Linear(cfg.cost_hidden, cfg.cost_hidden),
            nn.LeakyReLU(), nn.Linear(cfg.cost_hidden, 1),
        )
        self.register_buffer("log_mean", torch.zeros((), dtype=DTYPE))
        self.register_buffer("log_std", torch.ones((), dtype=DTYPE))

    def forward(self, static: Tensor) -> Tensor:
        lay = self.layout
        m = lay.model(static)
        m = torch.where((m >= 0) & (m < self.n_models), m, torch.full_like(m, self.n_models))
        z = torch.cat([lay.hp(static), self.model_emb(m), lay.desc(static), lay.meta(static)], dim=1)
        out: Tensor = self.net(z).squeeze(-1) * self.log_std + self.log_mean
        return out
