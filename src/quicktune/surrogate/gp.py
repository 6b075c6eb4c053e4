"""The deep-kernel GP, and the `Surrogate` that bundles it with the cost net, the scalers and the
encoding of the search space into one checkpoint file.

The GP is a gpytorch ExactGP whose kernel acts on learned features: k(x, x') = s * Matern52(
phi(x), phi(x')) with phi the `FeatureExtractor`; Gaussian likelihood. Its mean is, by default,
sigmoid(logit of the last observed accuracy of the row's curve prefix + a linear function of the
same features) (`mean="residual"`; `"learned"` drops the last-value term) rather than a constant,
and the kernel is scaled per row by 2 sqrt(m (1 - m)) of that mean m, so prior predictions are
accuracies inside (0, 1) with a spread that narrows near the bounds. With no
observation of the target dataset yet, a constant-mean GP predicts the same value for every
candidate, while the learned mean carries what meta-training found about which configs do well
on which datasets (the zero-shot ranking), and anchoring it at the last observed value makes
"the next epoch is close to this one" the default. `mean="constant"` gives the textbook DKL.

Following botorch, a model only yields a posterior (`DeepKernelGP.posterior`); fitting lives in
`quicktune.surrogate.fit` as free functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gpytorch
import numpy as np
from gpytorch.utils.cholesky import psd_safe_cholesky
from linear_operator import to_linear_operator
import torch
from torch import Tensor

from quicktune.atomic import atomic_write
from quicktune.space import Config, SearchSpace
from quicktune.surrogate.encoding import InputEncoder
from quicktune.surrogate.posterior import Posterior
from quicktune.surrogate.nets import DTYPE, CostNet, FeatureExtractor, FeatureScaler, InputLayout, NetConfig

CHECKPOINT_FORMAT = "quicktune-surrogate"
_EDGE = 0.005  # logit of the last value is taken of it clamped to [_EDGE, 1 - _EDGE]
_NO_SHIFT = -40.0  # raw value of a dataset-shift variance of softplus(-40) ~ 4e-18: none
_MIN_SCALE = 0.1  # the kernel scale never drops below this (a chance-level or perfect mean)
CHECKPOINT_VERSION = 3  # 2: feature presence columns, clipped features, bounded mean; 3: dataset shift


class DeepKernelGP(gpytorch.models.ExactGP):  # type: ignore[misc]  # (gpytorch is untyped: ExactGP is Any)
    """ExactGP on learned features. Inputs are packed rows (n x layout.width), see `nets`."""

    def __init__(self, extractor: FeatureExtractor, kernel: str = "matern", mean: str = "residual") -> None:
        if kernel not in ("matern", "rbf"):
            raise ValueError(f"`kernel` must be 'matern' or 'rbf', but got {kernel!r}")
        if mean not in ("residual", "learned", "constant"):
            raise ValueError(f"`mean` must be 'residual', 'learned' or 'constant', but got {mean!r}")
        # The noise floor keeps the Cholesky of near-duplicate rows (same config, same budget)
        # well conditioned; accuracies are fractions, so 1e-4 variance is a 1% std floor at most.
        likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-5))
        super().__init__(None, None, likelihood)
        self.extractor = extractor
        self.mean_kind = mean
        self.mean_module = (
            gpytorch.means.ConstantMean() if mean == "constant" else gpytorch.means.LinearMean(extractor.out_dim)
        )
        base = gpytorch.kernels.MaternKernel(nu=2.5) if kernel == "matern" else gpytorch.kernels.RBFKernel()
        self.covar_module = gpytorch.kernels.ScaleKernel(base)
        # Dataset shift: how far a new dataset's accuracies sit from where the learned mean puts
        # them, shared by every unstarted config of that dataset (a constant kernel on the rows
        # with an empty prefix). The Matern part only knows the spread between configs of the
        # datasets meta-training saw; without this term zero-shot intervals are too narrow on a
        # dataset unlike them. Observing some configs' first epoch on the target shrinks it.
        self.register_parameter("raw_shift", torch.nn.Parameter(torch.tensor(-3.0)))
        self.register_constraint("raw_shift", gpytorch.constraints.Positive())
        # Start from values on the scale of accuracies in [0, 1] (gpytorch's defaults, noise and
        # outputscale 0.69, would cost many meta-training steps just to shrink).
        self.likelihood.noise = 1e-3
        self.covar_module.outputscale = 0.05
        base.lengthscale = 1.0
        self.to(DTYPE)

    def _prior_mean(self, x: Tensor, z: Tensor) -> Tensor:
        """(n,) prior mean of the accuracy at rows x with features z = extractor(x).

        "residual" / "learned": sigmoid(linear(z) [+ logit(last observed value)]), inside (0, 1)
        by construction, so a zero-shot prediction (the prior alone) is an accuracy whatever the
        inputs; "constant": the textbook unbounded constant mean.
        """
        mean: Tensor = self.mean_module(z)
        if self.mean_kind == "constant":
            return mean
        if self.mean_kind == "residual":
            # Curves move little from one epoch to the next: the last observed value is the
            # natural prior guess, and the net only learns the change (and, for an unstarted
            # config, which has no last value, the level itself).
            lay = self.extractor.layout
            if lay.curve_len:
                started = (lay.mask(x) > 0.5).any(dim=1)
                last = torch.logit(lay.last_value(x).clamp(_EDGE, 1 - _EDGE))
                mean = mean + torch.where(started, last, torch.zeros_like(last))
        return torch.sigmoid(mean)

    def _scale(self, mean: Tensor) -> Tensor:
        """(n,) per-row scale of the kernel from the prior mean m: 2 sqrt(m (1 - m)) (1 at m = 0.5),
        the binomial shape of an accuracy's spread, so the uncertainty shrinks towards the bounds
        instead of putting mass outside [0, 1]; 1 for the constant mean."""
        if self.mean_kind == "constant":
            return torch.ones_like(mean)
        return (2.0 * torch.sqrt(mean * (1.0 - mean))).clamp_min(_MIN_SCALE)

    @property
    def shift(self) -> Tensor:
        """() the dataset-shift variance (of the logit-free accuracy, before the per-row scale)."""
        shift: Tensor = self.raw_shift_constraint.transform(self.raw_shift)
        return shift

    def _unstarted(self, x: Tensor) -> Tensor:
        """(n,) 1.0 for rows with an empty curve prefix (an unstarted config), else 0.0."""
        lay = self.extractor.layout
        if not lay.curve_len:
            return torch.ones(x.shape[0], dtype=x.dtype)
        return (~(lay.mask(x) > 0.5).any(dim=1)).to(x.dtype)

    def _shift_factor(self, x: Tensor, g: Tensor) -> Tensor:
        """(n,) each row's loading on the dataset-shift term: g for unstarted rows, 0 otherwise."""
        return g * self._unstarted(x) if self.mean_kind != "constant" else torch.zeros_like(g)

    def forward(self, x: Tensor) -> gpytorch.distributions.MultivariateNormal:
        z = self.extractor(x)
        mean = self._prior_mean(x, z)
        g = self._scale(mean)
        u = self._shift_factor(x, g)
        # A linear operator, not a dense tensor: torch's MultivariateNormal would factorise the
        # noise-free prior covariance at once, which fails on near-duplicate rows.
        covar = to_linear_operator(
            self.covar_module(z).to_dense() * g[:, None] * g[None, :] + self.shift * u[:, None] * u[None, :]
        )
        return gpytorch.distributions.MultivariateNormal(mean, covar)

    def zero_shot(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Prior mean and variance (incl. observation noise) of rows x0 (n x width) with empty
        curve prefixes: what a dataset with no observation yet predicts, ((n,), (n,)).
        Differentiable (meta-training fits it); `posterior` with no data gives the same numbers
        (without the noise)."""
        z = self.extractor(x0)
        mean = self._prior_mean(x0, z)
        g = self._scale(mean)
        var = self.covar_module.outputscale * g * g + self.shift * self._shift_factor(x0, g) ** 2
        return mean, var + self.likelihood.noise

    def condition(self, x: Tensor | None, y: Tensor | None) -> None:
        """Use (x: (n x width), y: (n,)) as the training data (None, None: the prior)."""
        if x is None or len(x) == 0:
            self.train_inputs, self.train_targets = None, None
            self.prediction_strategy = None
            return
        self.set_train_data(x, y, strict=False)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance of the latent accuracy at x: (m x width) -> ((m,), (m,)).

        The exact-GP equations written out (Cholesky of the n x n training covariance, only the
        diagonal of the test covariance): the same numbers gpytorch's prediction strategy gives,
        without its dense m x m test covariance, which for thousands of candidates costs seconds.
        """
        self.eval()
        with torch.no_grad():
            z = self.extractor(x)
            mean = self._prior_mean(x, z)
            g = self._scale(mean)
            u = self._shift_factor(x, g)
            var = self.covar_module(z, diag=True) * g * g + self.shift * u * u
            if self.train_inputs is None or self.train_targets is None or len(self.train_targets) == 0:
                return mean, var.clamp_min(0.0)
            x_tr, y_tr = self.train_inputs[0], self.train_targets
            z_tr = self.extractor(x_tr)
            mean_tr = self._prior_mean(x_tr, z_tr)
            g_tr = self._scale(mean_tr)
            u_tr = self._shift_factor(x_tr, g_tr)
            K = self.covar_module(z_tr).to_dense() * g_tr[:, None] * g_tr[None, :] + self.shift * u_tr[:, None] * u_tr[None, :]
            K = K + self.likelihood.noise * torch.eye(len(y_tr), dtype=K.dtype)
            L = psd_safe_cholesky(K)
            alpha = torch.cholesky_solve((y_tr - mean_tr).unsqueeze(-1), L)  # (n x 1)
            Ks = self.covar_module(z, z_tr).to_dense() * g[:, None] * g_tr[None, :] + self.shift * u[:, None] * u_tr[None, :]
            v = torch.linalg.solve_triangular(L, Ks.T, upper=False)  # (n x m)
            return mean + (Ks @ alpha).squeeze(-1), (var - (v * v).sum(dim=0)).clamp_min(0.0)

    @property
    def noise(self) -> float:
        return float(self.likelihood.noise.detach())


class Surrogate:
    """Net + GP hyperparameters + cost net + scalers + search-space encoding, saved as one file.

    Build one with `Surrogate.build` (untrained) or `Surrogate.load`; meta-train it with
    `quicktune.surrogate.fit.meta_train`. Loading needs only the checkpoint: the search-space
    encoding (`space_state`), the model list and the feature statistics travel with it.
    """

    def __init__(
        self,
        *,
        space_state: Mapping[str, Any],
        max_epochs: int,
        scaler: FeatureScaler,
        desc_scaler: FeatureScaler,
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
        net: NetConfig | None = None,
        kernel: str = "matern",
        mean: str = "residual",
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if max_epochs < 1:
            raise ValueError(f"`max_epochs >= 1` must hold, but got max_epochs={max_epochs}")
        self.space_state: dict[str, Any] = {"models": list(space_state["models"]), "extra_spec": dict(space_state["extra_spec"])}
        self.models: list[str] = list(self.space_state["models"])
        self.max_epochs = int(max_epochs)
        self.scaler = scaler
        self.desc_scaler = desc_scaler
        self.model_descriptors = {m: dict(v) for m, v in (model_descriptors or {}).items()}
        self.net_config = net or NetConfig()
        self.kernel = kernel
        self.mean = mean
        self.info: dict[str, Any] = dict(info or {})
        hp_dim = len(SearchSpace.encoded_names(self.space_state["extra_spec"]))
        self.layout = InputLayout(hp_dim, desc_scaler.dim, 2 * scaler.dim, self.max_epochs - 1)
        extractor = FeatureExtractor(self.layout, len(self.models), self.net_config, self.max_epochs)
        self.gp = DeepKernelGP(extractor, kernel=kernel, mean=mean)
        self.cost_net = CostNet(self.layout, len(self.models), self.net_config).to(DTYPE)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        space: SearchSpace,
        max_epochs: int,
        feature_rows: Sequence[Mapping[str, float]] = (),
        feature_names: Sequence[str] = (),
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
        net: NetConfig | None = None,
        kernel: str = "matern",
        mean: str = "residual",
        seed: int = 0,
        feature_groups: Sequence[str] | None = None,
    ) -> Surrogate:
        """An untrained surrogate for configs encoded like `space`.

        feature_rows: dataset (+ pair) feature dicts the scaler is fitted on (one per dataset or
        per (dataset, model)); feature_names: which of their keys the surrogate uses.
        model_descriptors: {model: {name: value}} numeric model descriptors (optional).
        feature_groups: one group name per feature name (e.g. "dataset" / "pair"): meta-training
        hides whole groups at random, as a target may lack one (domain features without weights).
        """
        descriptors = {m: dict(v) for m, v in (model_descriptors or {}).items()}
        desc_names = sorted({k for v in descriptors.values() for k in v})
        with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
            torch.manual_seed(seed)
            return cls(
                space_state=space.state_dict(),
                max_epochs=max_epochs,
                scaler=FeatureScaler.fit(list(feature_rows), feature_names, feature_groups),
                desc_scaler=FeatureScaler.fit(list(descriptors.values()), desc_names),
                model_descriptors=descriptors,
                net=net,
                kernel=kernel,
                mean=mean,
            )

    # -- inputs -------------------------------------------------------------------------------
    @property
    def encoder(self) -> InputEncoder:
        """How configs, features, epochs and curve prefixes become input rows (encoding.py)."""
        return InputEncoder(self.space_state, self.model_descriptors, self.desc_scaler, self.scaler, self.layout,
                            self.max_epochs)

    def static_inputs(
        self,
        configs: Sequence[Config],
        dataset_features: Mapping[str, float] | None = None,
        pair_features: Mapping[str, Mapping[str, float]] | None = None,
        model_descriptors: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Tensor:
        """`InputEncoder.static_inputs`: a (n x layout.static_dim) tensor."""
        return self.encoder.static_inputs(configs, dataset_features, pair_features, model_descriptors)

    def rows(
        self, static: Tensor, epochs: Sequence[int] | np.ndarray | Tensor, prefixes: Sequence[Sequence[float]], horizon: int | None = None
    ) -> Tensor:
        """`InputEncoder.rows`: packed rows (n x width)."""
        return self.encoder.rows(static, epochs, prefixes, horizon)

    # -- predictions --------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> Posterior:
        """The posterior of the accuracy at rows x (n x width), given the data set by `condition`:
        mean and variance (n,) each."""
        return Posterior(*self.gp.posterior(x))

    def condition(self, x: Tensor | None, y: Tensor | None) -> None:
        self.gp.condition(x, y)

    def log_cost(self, static: Tensor) -> Tensor:
        """Predicted log seconds of one epoch, (n,), for static inputs (n x static_dim)."""
        self.cost_net.eval()
        with torch.no_grad():
            log_s: Tensor = self.cost_net(static)
            return log_s

    # -- persistence --------------------------------------------------------------------------
    def weights(self) -> dict[str, dict[str, Tensor]]:
        """A deep copy of every learned tensor (to reset a refit to the meta-trained weights)."""
        return {"gp": copy.deepcopy(self.gp.state_dict()), "cost": copy.deepcopy(self.cost_net.state_dict())}

    def load_weights(self, weights: Mapping[str, Mapping[str, Tensor]]) -> None:
        self.gp.load_state_dict(weights["gp"])
        self.cost_net.load_state_dict(weights["cost"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "space_state": self.space_state,
            "max_epochs": self.max_epochs,
            "scaler": self.scaler.state_dict(),
            "desc_scaler": self.desc_scaler.state_dict(),
            "model_descriptors": self.model_descriptors,
            "net_config": vars(self.net_config).copy(),
            "kernel": self.kernel,
            "mean": self.mean,
            "info": self.info,
            "gp_state": self.gp.state_dict(),
            "cost_state": self.cost_net.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Surrogate:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a quicktune surrogate checkpoint (format={state.get('format')!r})")
        if state.get("version") not in (2, CHECKPOINT_VERSION):
            raise ValueError(
                f"surrogate checkpoint version {state.get('version')!r} is not supported; expected 2 or {CHECKPOINT_VERSION}"
            )
        s = cls(
            space_state=state["space_state"],
            max_epochs=int(state["max_epochs"]),
            scaler=FeatureScaler.from_state_dict(state["scaler"]),
            desc_scaler=FeatureScaler.from_state_dict(state["desc_scaler"]),
            model_descriptors=state["model_descriptors"],
            net=NetConfig.from_dict(state["net_config"]),
            kernel=state["kernel"],
            mean=state["mean"],
            info=state.get("info", {}),
        )
        gp_state = dict(state["gp_state"])
        if state["version"] == 2:  # before the dataset-shift term: a version-2 GP is one whose shift is 0
            gp_state.setdefault("raw_shift", torch.tensor(_NO_SHIFT, dtype=DTYPE))
        s.gp.load_state_dict(gp_state)
        s.cost_net.load_state_dict(state["cost_state"])
        return s

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint atomically (temp file + rename)."""
        path = Path(path)
        with atomic_write(path) as f:
            torch.save(self.state_dict(), f)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Surrogate:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such surrogate checkpoint")
        from quicktune.safeload import SafeLoadError, load_tensors

        try:
            state = load_tensors(path)
        except SafeLoadError as e:  # a truncated or foreign file: say which and why, in one line
            raise ValueError(f"not a surrogate checkpoint: {e}") from None
        return cls.from_state_dict(state)
