"""One epoch of fine-tuning, and scoring a model on a split: the loop inside a run.

`EpochLoop` is a part of `trainer.Finetuner` (which builds the model, optimizer and recipe parts
it uses); it is kept apart so the per-step procedure reads on its own.
"""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from quicktune.data import TaskData
from quicktune.finetune.layers import L2SP
from quicktune.finetune.recipe import Recipe
from quicktune.finetune.records import _epoch_seed
from quicktune.finetune.timm_parts import V1Cosine, apply_transform

if TYPE_CHECKING:
    from quicktune.hub import ModelInfo

EVAL_BATCH_SIZE = 256


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding of size//8 (at least 1) and a random horizontal flip.

    x: a (n x 3 x S x S) uint8 tensor; returns a new tensor of the same shape.
    """
    n, _, h, w = x.shape
    pad = max(1, min(h, w) // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


class EpochLoop:
    """Training epochs and scoring, over the state a `Finetuner` builds (declared here)."""

    recipe: Recipe
    data: TaskData
    info: ModelInfo
    seed: int
    batch_size: int
    device: torch.device
    amp: bool
    _model: torch.nn.Module | None
    _optimizer: torch.optim.Optimizer | None
    _scheduler: Any
    _scaler: Any
    _l2sp: L2SP | None
    _mixup: Any
    _loss: Any
    _transform: Any
    _n_train: int
    _steps_per_epoch: int
    _mean: torch.Tensor
    _std: torch.Tensor

    @property
    def model(self) -> torch.nn.Module:
        raise NotImplementedError

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "_mean"):  # scoring a given model before this run's own was built
            self._mean = torch.tensor(self.info.mean, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)
            self._std = torch.tensor(self.info.std, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)
        x = x.to(self.device, non_blocking=True).float().div_(255.0)
        return (x - self._mean) / self._std

    def _train_epoch(self, epoch: int) -> tuple[float, bool]:
        """Train epoch `epoch` (1-based); returns (mean training loss, diverged).

        The training loss is the data term (cross-entropy, or soft-target cross-entropy with
        mixup); the L2-SP penalty is added to the objective, not to the recorded loss.
        """
        model, optimizer, scheduler = self._model, self._optimizer, self._scheduler
        assert model is not None and optimizer is not None and scheduler is not None
        r = self.recipe
        torch.manual_seed(_epoch_seed(self.seed, epoch, 1))  # dropout / drop-path draws of this epoch
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch, 2))
        if self._mixup is not None or self._transform is not None:
            # timm's Mixup and augmentations draw from numpy's and Python's global generators.
            np.random.seed(_epoch_seed(self.seed, epoch, 4) % 2**32)
            random.seed(_epoch_seed(self.seed, epoch, 5))
        order = torch.randperm(self._n_train, generator=gen)
        images, labels = self.data.train.images, self.data.train.labels
        model.train()
        per_update = isinstance(scheduler, V1Cosine)
        total, count = 0.0, 0
        for step in range(self._steps_per_epoch):
            # The last batch takes the remainder, except a single leftover image (BatchNorm can
            # not train on a batch of one), which sits this epoch out.
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            if self._mixup is not None:
                idx = idx[: len(idx) // 2 * 2]  # timm's Mixup pairs the batch with its reverse: even size
            if self._transform is not None:
                x = apply_transform(self._transform, images[idx]).to(self.device)
            else:
                x = self._inputs(_augment(images[idx], gen))
            y = labels[idx].to(self.device)
            if self._mixup is not None:
                x, y = self._mixup(x, y)
            with torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext():
                loss = self._loss(model(x), y)
                objective = loss + self._l2sp() if self._l2sp is not None else loss
            if not torch.isfinite(loss):
                return float("nan"), True
            optimizer.zero_grad(set_to_none=True)
            if self._scaler is not None:
                self._scaler.scale(objective).backward()
                if r.clip_grad is not None:
                    self._scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip_grad)
                self._scaler.step(optimizer)
                self._scaler.update()
            else:
                objective.backward()
                if r.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip_grad)
                optimizer.step()
            if per_update:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1), False

    def evaluate(self) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of the current model on the validation split."""
        correct, n, loss_sum = self.score(self.data.val)
        n = max(n, 1)
        return correct / n, loss_sum / n

    @torch.no_grad()
    def score(self, split: Any, model: torch.nn.Module | None = None) -> tuple[int, int, float]:
        """(correct, images, summed cross-entropy) of `model` (default: the current one) on
        `split` (a data.Split, e.g. the task's validation or test split)."""
        model = self.model if model is None else model
        model.eval()
        images, labels = split.images, split.labels
        correct, loss_sum = 0, 0.0
        for i in range(0, len(labels), EVAL_BATCH_SIZE):
            x = self._inputs(images[i : i + EVAL_BATCH_SIZE])
            y = labels[i : i + EVAL_BATCH_SIZE].to(self.device)
            with torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext():
                out = model(x)
            loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
        return correct, len(labels), loss_sum
