"""A run's checkpoint files: the state written after every epoch (and read to resume), and the
weights of its best epoch so far.

Checkpoints hold only tensors and plain values and are read with weights_only=True
(`quicktune.safeload`); they are written to a temporary file and `os.replace`d, so a kill never
leaves a half-written one.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicktune.atomic import atomic_write
from quicktune.finetune.records import _CKPT_FORMAT, EpochResult
from quicktune.finetune.timm_parts import V1Cosine
from quicktune.space import Config

log = logging.getLogger(__name__)
# The weights of the run's best epoch so far (validation accuracy), kept with keep_best=True so the
# model a search hands back is the one its report calls best, not merely the last one trained.
BEST_NAME = "best.pt"


def _numpy_rng_state() -> list[Any]:
    """numpy's global RNG state as tensors and plain values (its key array becomes a tensor), so
    checkpoints load with weights_only=True."""
    state: Any = np.random.get_state(legacy=True)  # ("MT19937", keys, pos, has_gauss, gauss)
    name, keys, pos, has_gauss, gauss = state
    return [name, torch.from_numpy(np.asarray(keys).astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def restore_rng(rng: dict[str, Any]) -> None:
    """Set torch's, numpy's and Python's global RNGs to the states a checkpoint recorded."""
    torch.set_rng_state(rng["torch"])
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))


def read_checkpoint(
    path: Path, run_key: str, run: str, max_epochs: int
) -> tuple[list[EpochResult], str, dict[str, Any] | None] | None:
    """(results, status, the state to restore, or None when it kept no model) of the checkpoint at
    `path`; None when there is none, or it is damaged or foreign (logged: the run starts from
    epoch 1). A checkpoint of another run than `run_key` (described as `run` in the error) raises
    ValueError."""
    if not path.exists():
        return None
    from quicktune.safeload import SafeLoadError, load_tensors

    # Tensors and plain values only (quicktune.safeload): the work dir may be writable by
    # others, and a full unpickler would run whatever a planted file asks for.
    try:
        state = load_tensors(path)
        if not isinstance(state, dict) or not isinstance(state.get("results"), list):
            raise SafeLoadError(f"{path}: not a run checkpoint")
    except SafeLoadError as e:
        log.warning("%s; ignored: the run starts from epoch 1", e)
        return None
    if state.get("run_key") != run_key:
        raise ValueError(
            f"{path}: the checkpoint belongs to run {state.get('run_key')!r}, not to "
            f"{run_key!r} ({run}); use one checkpoint directory per run"
        )
    try:
        results = [EpochResult(**r) for r in state["results"]]
        status = str(state["status"])
        if [r.epoch for r in results] != list(range(1, len(results) + 1)) or len(results) > max_epochs:
            raise ValueError("epochs out of order")
    except (KeyError, TypeError, ValueError) as e:
        log.warning("%s: not a readable run checkpoint (%s); ignored: the run starts from epoch 1", path, e)
        return None
    return results, status, state if state.get("model") is not None else None


def write_checkpoint(
    path: Path,
    *,
    run_key: str,
    dataset: str,
    config: Config,
    seed: int,
    max_epochs: int,
    status: str,
    results: list[EpochResult],
    model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
) -> None:
    """Write the run's checkpoint: its results, and with `model` the whole training state
    (model, optimizer, scheduler, scaler and every RNG state) a continuation resumes from."""
    state: dict[str, Any] = {
        "format": _CKPT_FORMAT,
        "run_key": run_key,
        "dataset": dataset,
        "config": config.to_dict(),
        "seed": seed,
        "max_epochs": max_epochs,
        "status": status,
        "results": [asdict(r) for r in results],
        "model": None,
    }
    if model is not None:
        assert optimizer is not None and scheduler is not None
        state.update(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            # timm's schedules are rebuilt by replay on resume (see Finetuner._build)
            scheduler=scheduler.state_dict() if isinstance(scheduler, V1Cosine) else None,
            scaler=scaler.state_dict() if scaler is not None else None,
            rng={"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
        )
    with atomic_write(path) as f:
        torch.save(state, f)


def write_best(path: Path, run_key: str, result: EpochResult, model: torch.nn.Module) -> None:
    """Keep the weights of epoch `result` as the run's best so far."""
    state = {"format": _CKPT_FORMAT, "run_key": run_key, "epoch": int(result.epoch),
             "val_acc": float(result.val_acc), "model": model.state_dict()}
    with atomic_write(path) as f:
        torch.save(state, f)


def read_best(path: Path | None) -> Any:
    """The best-epoch state at `path` ({run_key, epoch, val_acc, model}), or None when absent."""
    return torch.load(path, map_location="cpu", weights_only=True) if path is not None and path.is_file() else None
