"""The fine-tuner: one run, continued epoch by epoch, checkpointed after each."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from quicktune.data import TaskData
from quicktune.finetune.batchnorm import CALIBRATION_IMAGES, calibrate_folded_batchnorm
from quicktune.finetune.checkpoint import BEST_NAME, read_best, read_checkpoint, restore_rng, write_best, write_checkpoint
from quicktune.finetune.epoch import EpochLoop
from quicktune.finetune.layers import L2SP, apply_freezing
from quicktune.finetune.recipe import Recipe
from quicktune.finetune.records import (
    CHECKPOINT_NAME,
    DEFAULT_BATCH_SIZE,
    EpochResult,
    _epoch_seed,
    epoch_rows,
    run_identity,
)
from quicktune.finetune.timm_parts import (
    V1Cosine,
    loss_fn,
    make_mixup,
    make_optimizer,
    make_scheduler,
    make_train_transform,
)
from quicktune.metadataset.schema import RunSetting
from quicktune.space import ADAPTIVE_OPTIMIZERS, Config
from quicktune.testhook import kill_point

log = logging.getLogger(__name__)


class Finetuner(EpochLoop):
    """One run: (task, config, seed, epoch horizon), continued epoch by epoch.

    data:           the loaded task (its images' side is the training resolution)
    config:         model and hyperparameters; its extras are the training recipe
                    (`finetune.recipe.Recipe`: optimizer, schedule, freezing, L2-SP, mixup, ...;
                    "batch_size" overrides `batch_size`). Without extras: exactly v1's procedure.
    max_epochs:     the cosine schedule's horizon (part of the run's identity)
    checkpoint_dir: where this run's checkpoint lives (None: no checkpoints, no continuation
                    across processes). A checkpoint found there is resumed.
    keep_model:     keep the model in the checkpoint once the run is finished (needed to save
                    the fine-tuned model later); False shrinks it to the results only.
    keep_best:      also keep the weights of the best epoch so far (`BEST_NAME` beside the
                    checkpoint, rewritten whenever an epoch beats the run's earlier best)
    dataset:        the name recorded in the store (default: the task name, plus the resolution
                    when the spec names none and it differs from the model's input size)
    device:         None: CUDA when available, else the CPU (one run per process; a GPU per
                    process via CUDA_VISIBLE_DEVICES). On CUDA, float16 autocast + GradScaler
                    unless the config's extra `amp` is false; never on the CPU.
    """

    def __init__(
        self,
        data: TaskData,
        config: Config,
        max_epochs: int,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_threads: int | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        pretrained: bool = True,
        device: str | None = None,
        keep_model: bool = True,
        dataset: str | None = None,
        keep_best: bool = False,
    ) -> None:
        from quicktune.hub import model_info

        if max_epochs < 1:
            raise ValueError(f"`max_epochs >= 1` must hold, but got {max_epochs=}")
        self.recipe = Recipe.from_config(config)  # validates every recipe extra (one-line ValueError)
        self.data = data
        self.config = config
        self.max_epochs = int(max_epochs)
        self.seed = int(seed)
        self.batch_size = int(config.extra("batch_size", batch_size))
        if self.batch_size < 1:
            raise ValueError(f"`batch_size >= 1` must hold, but got batch_size={self.batch_size}")
        self.num_threads = num_threads
        self.weights_dir = weights_dir
        self.pretrained = pretrained
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.amp = self.device.type == "cuda" and self.recipe.amp is not False
        self.keep_model = keep_model
        self.keep_best = keep_best
        self.info = model_info(config.model, weights_dir)
        self.dataset, self.run_key = run_identity(data, config, max_epochs, seed, batch_size=batch_size,
                                                  pretrained=pretrained, weights_dir=weights_dir, dataset=dataset)
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None

        self.results: list[EpochResult] = []
        self.status = "ok"
        self._model: torch.nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: Any = None  # V1Cosine (stepped per update) or a timm scheduler (per epoch)
        self._scaler: Any = None  # torch.amp.GradScaler with AMP
        self._l2sp: L2SP | None = None
        self._state: dict[str, Any] | None = None  # a loaded checkpoint not yet applied to a model
        self._n_train = len(data.train)
        self._steps_per_epoch = self._n_train // self.batch_size + (1 if self._n_train % self.batch_size > 1 else 0)
        if self._steps_per_epoch == 0:
            raise ValueError(f"the task needs at least 2 training images, but {data.name!r} has {self._n_train}")
        self._load_checkpoint()

    # -- state ----------------------------------------------------------------------------------
    @property
    def epochs_done(self) -> int:
        return len(self.results)

    @property
    def finished(self) -> bool:
        """True when the run can not be continued (horizon reached, or diverged)."""
        return self.status != "ok" or self.epochs_done >= self.max_epochs

    @property
    def curve(self) -> list[float]:
        return [r.val_acc for r in self.results]

    @property
    def best_epoch(self) -> int | None:
        """The first epoch with the run's best finite validation accuracy (None: none finite)."""
        finite = [(r.val_acc, -r.epoch) for r in self.results if math.isfinite(r.val_acc)]
        return -max(finite)[1] if finite else None

    @property
    def best_path(self) -> Path | None:
        return self.checkpoint_path.with_name(BEST_NAME) if self.checkpoint_path is not None else None

    def setting(self) -> RunSetting:
        """What the row's `versions` JSON records about how the run was trained."""
        if self.device.type != "cpu":  # (CPU rows keep v1's exact settings JSON)
            return RunSetting(int(self.data.size), self.batch_size, self.pretrained, device=self.device.type,
                              amp=bool(self.amp))
        return RunSetting(image_size=int(self.data.size), batch_size=self.batch_size, pretrained=self.pretrained)

    def rows(self, results: Iterable[EpochResult] | None = None, source: str = "collect") -> list[dict[str, Any]]:
        """RUN_SCHEMA rows of `results` (default: every epoch so far)."""
        return epoch_rows(
            self.results if results is None else results, dataset=self.dataset, config=self.config, seed=self.seed,
            max_epochs=self.max_epochs, key=self.run_key, source=source, setting=self.setting(),
        )

    def _load_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        run = f"{self.dataset}, {self.config.describe()}, seed={self.seed}, max_epochs={self.max_epochs}"
        found = read_checkpoint(self.checkpoint_path, self.run_key, run, self.max_epochs)
        if found is not None:
            self.results, self.status, self._state = found

    # -- building -------------------------------------------------------------------------------
    def _build(self) -> None:
        from quicktune.hub import create_model

        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        # The new head's initialisation is drawn from torch's global RNG: seed it per run.
        torch.manual_seed(_epoch_seed(self.seed, 0, 0))
        r = self.recipe
        model = create_model(self.config.model, num_classes=self.data.n_classes, weights_dir=self.weights_dir,
                             pretrained=self.pretrained, **({} if r.drop is None else {"drop_rate": r.drop}))
        model.to(self.device)
        c = self.config
        mean = torch.tensor(self.info.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.info.std, dtype=torch.float32).view(1, 3, 1, 1)
        self._mean, self._std = mean.to(self.device), std.to(self.device)
        # L2-SP's reference is the pretrained model as a fresh run starts (calibrated): a resumed run
        # rebuilds it the same way before loading its trained weights.
        if self.pretrained and (self._state is None or r.sp_reg > 0):
            # Calibration images: a seeded draw of training images, un-augmented.
            gen = torch.Generator().manual_seed(_epoch_seed(self.seed, 0, 3))
            idx = torch.randperm(self._n_train, generator=gen)[:CALIBRATION_IMAGES]
            n = calibrate_folded_batchnorm(model, self._inputs(self.data.train.images[idx]))
            if n:
                log.info("%s: recalibrated %d folded BatchNorm layers on %d training images", c.model, n, len(idx))
        frozen = apply_freezing(model, freeze_embedding=r.freeze_embedding, linear_probing=r.linear_probing,
                                pct_to_freeze=r.pct_to_freeze)
        if frozen:
            log.info("%s: %d parameter tensors frozen (%s ...)", c.model, len(frozen), ", ".join(frozen[:3]))
        self._l2sp = L2SP(model, r.sp_reg) if r.sp_reg > 0 else None
        optimizer = make_optimizer(model, c, r)
        scheduler = make_scheduler(optimizer, r, self.max_epochs, self._steps_per_epoch)
        self._scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self._mixup = make_mixup(r, self.data.n_classes)
        self._loss = loss_fn(r)
        self._transform = make_train_transform(r, int(self.data.size), self.info.mean, self.info.std)
        if self._state is not None:
            model.load_state_dict(self._state["model"])
            if isinstance(scheduler, V1Cosine):
                scheduler.load_state_dict(self._state["scheduler"])
            else:
                # timm's schedules are functions of the epoch and, for plateau, of the recorded
                # accuracies: replaying them rebuilds the state exactly (timm does not checkpoint it).
                for res in self.results:
                    scheduler.step(res.epoch, res.val_acc)
            optimizer.load_state_dict(self._state["optimizer"])
            if self._scaler is not None and self._state.get("scaler") is not None:
                self._scaler.load_state_dict(self._state["scaler"])
            restore_rng(self._state["rng"])
            self._state = None
        log.info("%s on %s: %s, lr = %.4g (%s), wd=%g, %d epochs (%s), batch %d, %dpx", c.model, self.dataset,
                 c.optimizer, c.lr, "ELR" if c.optimizer in ADAPTIVE_OPTIMIZERS else f"ELR * (1 - {c.momentum:g})",
                 c.weight_decay, self.max_epochs, r.sched or "cosine per update", self.batch_size, self.data.size)
        self._model, self._optimizer, self._scheduler = model, optimizer, scheduler

    @property
    def model(self) -> torch.nn.Module:
        """The model as trained so far (built, and restored from the checkpoint, on first use)."""
        if self._model is None:
            if self.epochs_done and self._state is None:
                raise RuntimeError(
                    f"run {self.run_key} finished and its checkpoint kept only the results (keep_model=False)")
            self._build()
        assert self._model is not None
        return self._model

    # -- training ---------------------------------------------------------------------------------
    def train_until(
        self, epoch: int, on_epoch: Callable[[EpochResult], None] | None = None
    ) -> list[EpochResult]:
        """Continue the run up to `epoch` (capped at `max_epochs`); returns the new epochs.

        After each epoch the checkpoint is written, then `on_epoch(result)` is called (e.g. to
        append the row to a store). A finished (or diverged) run returns [].
        """
        target = min(int(epoch), self.max_epochs)
        new: list[EpochResult] = []
        if self.finished or target <= self.epochs_done:
            return new
        self.model  # build / restore
        while self.epochs_done < target and not self.finished:
            e = self.epochs_done + 1
            t0 = time.perf_counter()
            train_loss, diverged = self._train_epoch(e)
            if not diverged:
                acc, val_loss = self.evaluate()
                diverged = not math.isfinite(val_loss)
            assert self._scheduler is not None and self._optimizer is not None
            if isinstance(self._scheduler, V1Cosine):
                lr = float(self._scheduler.get_last_lr()[0])
            else:
                if not diverged:
                    self._scheduler.step(e, acc)  # timm train.py: the schedule moves once per epoch
                lr = max(float(g["lr"]) for g in self._optimizer.param_groups)
            seconds = time.perf_counter() - t0
            if diverged:
                result = EpochResult(e, float("nan"), float("nan"), float("nan"), seconds, lr, "diverged")
                self.status = "diverged"
                log.warning("%s diverged in epoch %d (non-finite loss); the run stops", self.config.describe(), e)
            else:
                result = EpochResult(e, acc, val_loss, train_loss, seconds, lr, "ok")
            if self.keep_best and self.best_path is not None and math.isfinite(result.val_acc) and all(
                    not result.val_acc <= r.val_acc for r in self.results):
                self._save_best(result)  # before the checkpoint: a kill in between retrains the epoch
            self.results.append(result)
            new.append(result)
            self._save_checkpoint()
            kill_point("after_checkpoint")  # (tests: a crash between the checkpoint and the caller's record)
            if on_epoch is not None:
                on_epoch(result)
        return new

    # -- checkpoints ------------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        keep = self.keep_model or not self.finished
        model = self._model if keep else None
        write_checkpoint(self.checkpoint_path, run_key=self.run_key, dataset=self.dataset, config=self.config,
                         seed=self.seed, max_epochs=self.max_epochs, status=self.status, results=self.results,
                         model=model, optimizer=self._optimizer, scheduler=self._scheduler, scaler=self._scaler)

    def _save_best(self, result: EpochResult) -> None:
        assert self._model is not None and self.best_path is not None
        write_best(self.best_path, self.run_key, result, self._model)

    def trained_model(self, which: str = "best") -> tuple[torch.nn.Module, int]:
        """(model, epoch): the run's model as of its best epoch (`which="best"`, from the weights
        kept with keep_best, or the current model when that epoch is the last one) or of its last
        trained epoch ("last"). The best model is a copy; the current model is not."""
        if which not in ("best", "last"):
            raise ValueError(f"`which` must be 'best' or 'last', but got {which!r}")
        if not self.epochs_done:
            raise RuntimeError(f"run {self.run_key} has trained no epoch yet")
        best = self.best_epoch
        if which == "last" or best is None or best == self.epochs_done:
            return self.model, self.epochs_done
        path = self.best_path
        state = read_best(path)
        if not state or state.get("run_key") != self.run_key or state.get("epoch") != best:
            raise RuntimeError(
                f"run {self.run_key}: the weights of its best epoch {best} were not kept (keep_best=False, or "
                f"{path} is missing or stale); only its last epoch {self.epochs_done} can be saved")
        import copy

        model = copy.deepcopy(self.model)
        model.load_state_dict(state["model"])
        return model, best

    def delete_checkpoint(self) -> None:
        """Remove this run's checkpoint directory (e.g. once its rows are safely stored)."""
        if self.checkpoint_path is not None and self.checkpoint_path.parent.exists():
            shutil.rmtree(self.checkpoint_path.parent, ignore_errors=True)

    def save_model(self, weights_dir: str | os.PathLike[str], name: str | None = None, which: str = "last") -> Path:
        """Save the fine-tuned model (`which`: its "last" trained epoch, or its "best" one, see
        `trained_model`) as a hub checkpoint `<weights_dir>/<name>.pth` (+ .json), loadable with
        `hub.create_model(name, weights_dir=weights_dir)`; the epoch is recorded in the .json."""
        from dataclasses import replace

        from quicktune.hub import save_checkpoint

        model, epoch = self.trained_model(which)
        name = name or f"{self.config.model.split('.')[0]}.ft-{self.run_key[:8]}-e{epoch}"
        # input_size: the resolution it was fine-tuned at (e.g. 64 px on a CPU), which it expects.
        info = replace(self.info, name=name, num_source_classes=self.data.n_classes, source_dataset=self.dataset,
                       input_size=int(self.data.size))
        return save_checkpoint(model, info, weights_dir, classes=self.data.classes, run_key=self.run_key,
                               config=self.config.to_dict(), epoch=epoch,
                               val_acc=float(self.results[epoch - 1].val_acc))
