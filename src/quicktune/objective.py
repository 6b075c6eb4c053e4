"""An objective that answers trials by really fine-tuning (freeze-thaw, resumable).

`FinetuneObjective.evaluate(Trial(i, t))` continues candidate i's run up to epoch t from its
checkpoint under `workdir/runs/<run_key>/`, so asking for more epochs later trains (and charges)
only the new ones. Because everything lives in checkpoints, a new objective over the same
workdir — after an interruption — knows what was trained (`history()` replays it) and
continues from there. Rows of every new epoch can be appended to a meta-dataset store.

This is the real-training counterpart of the replay objective of the benchmark: optimizers
cannot tell them apart.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quicktune.data import TaskData, TaskSpec, load_task
from quicktune.design import training_size
from quicktune.finetune import DEFAULT_BATCH_SIZE, EpochResult, Finetuner, run_identity
from quicktune.metadataset.storage import MetaDatasetStore
from quicktune.protocol import Objective, Observation, Trial
from quicktune.space import SearchSpace


class FinetuneObjective(Objective):
    """Fine-tunes candidates of `space` on `data`, epoch by epoch, continuing from checkpoints.

    data:        a loaded task (used at its resolution for every model), or a TaskSpec / spec
                 string / folder, loaded per model at `spec.size`, else `image_size`, else the
                 model's input size capped at `max_image_size`
    max_epochs:  the epoch horizon of every run (its cosine schedule's length)
    workdir:     holds one checkpoint directory per run (runs/<run_key>/)
    store:       optional meta-dataset store (or its path) that receives every new epoch's row
    live_models: how many runs keep their model in memory between trials (saves rebuilding)
    keep_finished_models: keep the weights of runs that reached the horizon in their checkpoint
                 (needed to save the best fine-tuned model at the end; False saves disk)
    keep_best_weights: also keep each run's best-epoch weights (`Finetuner(keep_best=True)`), so
                 the model of the epoch a search reports as best can be handed back
    loader:      loads the task at a resolution (e.g. `suggest`'s Target.data, which already
                 holds it), instead of loading it again from the spec
    """

    def __init__(
        self,
        space: SearchSpace,
        data: TaskData | TaskSpec | str | os.PathLike[str],
        max_epochs: int,
        workdir: str | os.PathLike[str],
        seed: int = 0,
        store: MetaDatasetStore | str | os.PathLike[str] | None = None,
        *,
        image_size: int | None = None,
        max_image_size: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_threads: int | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        pretrained: bool = True,
        device: str | None = None,  # None: CUDA when available, else the CPU (see Finetuner)
        skip_unreadable: bool = False,
        source: str = "suggest",
        live_models: int = 2,
        keep_finished_models: bool = True,
        keep_best_weights: bool = False,
        loader: Callable[[int], TaskData] | None = None,
    ) -> None:
        if max_epochs < 1:
            raise ValueError(f"`max_epochs >= 1` must hold, but got {max_epochs=}")
        self.space = space
        self.max_epochs = int(max_epochs)
        self.workdir = Path(workdir)
        self.seed = int(seed)
        self.store = MetaDatasetStore(store) if isinstance(store, (str, os.PathLike)) else store
        self.image_size = image_size
        self.max_image_size = max_image_size
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.weights_dir = weights_dir
        self.pretrained = pretrained
        self.device = device
        self.skip_unreadable = skip_unreadable
        self.source = source
        self.live_models = max(0, int(live_models))
        self.keep_finished_models = keep_finished_models
        self.keep_best_weights = keep_best_weights
        self._data = data if isinstance(data, TaskData) else None
        self._spec = None if isinstance(data, TaskData) else (
            data if isinstance(data, TaskSpec) else TaskSpec.parse(str(data)) if isinstance(data, str) else TaskSpec(str(data))
        )
        self._loaded: dict[int, TaskData] = {}
        self._live: OrderedDict[int, Finetuner] = OrderedDict()
        self._synced: set[str] = set()
        self.seconds_spent = 0.0
        self._loader = loader  # no I/O here: the work dir is created by the first checkpoint

    # -- data and runs ------------------------------------------------------------------------
    def data_for(self, model: str) -> TaskData:
        """The task as `model` trains on it (one load per resolution, cached)."""
        if self._data is not None:
            return self._data
        assert self._spec is not None
        size = self._spec.size or self.image_size
        if size is None:
            from quicktune.hub import model_info

            size = training_size(model_info(model, self.weights_dir).input_size, self.max_image_size)
        if size not in self._loaded:
            self._loaded[size] = (self._loader(int(size)) if self._loader is not None
                                  else load_task(self._spec, size, skip_unreadable=self.skip_unreadable))
        return self._loaded[size]

    def _finetuner(self, config_id: int) -> Finetuner:
        if config_id in self._live:
            self._live.move_to_end(config_id)
            return self._live[config_id]
        if not 0 <= config_id < len(self.space):
            raise ValueError(f"`0 <= config_id < {len(self.space)}` must hold, but got config_id={config_id}")
        config = self.space[config_id]
        data = self.data_for(config.model)
        _, key = run_identity(data, config, self.max_epochs, self.seed, batch_size=self.batch_size,
                              pretrained=self.pretrained, weights_dir=self.weights_dir)
        ft = Finetuner(data, config, self.max_epochs, self.seed, self.run_dir(key),
                       batch_size=self.batch_size, num_threads=self.num_threads, weights_dir=self.weights_dir,
                       pretrained=self.pretrained, device=self.device, keep_model=self.keep_finished_models,
                       keep_best=self.keep_best_weights)
        self._sync_store(ft)
        return ft

    def run_dir(self, key: str) -> Path:
        return self.workdir / "runs" / key

    def _remember(self, config_id: int, ft: Finetuner) -> None:
        if self.live_models == 0:
            return
        self._live[config_id] = ft
        self._live.move_to_end(config_id)
        while len(self._live) > self.live_models:
            self._live.popitem(last=False)

    def _sync_store(self, ft: Finetuner) -> None:
        """Append epochs the checkpoint has but the store lacks (a kill between the two writes)."""
        if self.store is None or not ft.results or ft.run_key in self._synced:
            return
        self._synced.add(ft.run_key)
        df = self.store.read()
        have = set(df.loc[df["run_key"] == ft.run_key, "epoch"].astype(int)) if len(df) else set()
        missing = [r for r in ft.results if r.epoch not in have]
        if missing:
            self.store.append(ft.rows(missing, source=self.source))

    # -- the Objective protocol ---------------------------------------------------------------
    def evaluate(self, trial: Trial) -> Observation:
        """Continue `trial.config_id` up to `trial.epoch`; the curve holds every epoch so far and
        `seconds` the wall-clock spent in this call (model building and checkpointing included)."""
        if trial.restart:
            # Runs are stored epoch by epoch under one key: retraining from scratch would clash
            # with the stored epochs. Only the replay benchmark's stop-only peers restart runs.
            raise ValueError(f"fine-tuning continues runs; `restart=False` must hold, but got {trial}")
        t0 = time.perf_counter()
        ft = self._finetuner(trial.config_id)

        def on_epoch(result: EpochResult) -> None:
            if self.store is not None:
                self.store.append(ft.rows([result], source=self.source))

        new = ft.train_until(trial.epoch, on_epoch=on_epoch)
        if not ft.finished:
            self._remember(trial.config_id, ft)
        else:
            self._live.pop(trial.config_id, None)
        seconds = time.perf_counter() - t0 if new else 0.0
        self.seconds_spent += seconds
        return Observation(
            trial=trial,
            curve=tuple(ft.curve),
            seconds=seconds,
            epoch_seconds=tuple(r.seconds for r in new),
            finished=ft.finished,
        )

    # -- resuming -----------------------------------------------------------------------------
    def history(self) -> list[Observation]:
        """One observation per candidate already trained in this workdir, in candidate order —
        tell them to a fresh optimizer to resume a search. `seconds` is 0 (nothing new was spent
        now) and `epoch_seconds` holds every epoch's recorded seconds (so a cost model
        calibrates on the recorded epochs at once)."""
        out = []
        for i in range(len(self.space)):
            ft = self._finetuner(i)
            if ft.epochs_done:
                out.append(Observation(Trial(i, ft.epochs_done), tuple(ft.curve), 0.0,
                                       tuple(float(r.seconds) for r in ft.results), ft.finished))
        return out

    def finetuner(self, config_id: int) -> Finetuner:
        """The run of candidate `config_id` (e.g. to `save_model` the best one at the end)."""
        return self._finetuner(config_id)

    def describe(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "max_epochs": self.max_epochs, "seed": self.seed,
                "seconds_spent": self.seconds_spent}


__all__ = ["FinetuneObjective"]
