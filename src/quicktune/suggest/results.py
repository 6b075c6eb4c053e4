"""What a timed search hands back: the incumbent, every run, the chosen model's test estimate,
the JSON-able report and the saved model.

`SearchResults` is a part of `search.Search` (which runs the search and keeps the state read
here, declared below); kept apart so the loop and its report read on their own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from quicktune.space import Config
from quicktune.stopping import StopRule
from quicktune.suggest.errors import SuggestError
from quicktune.suggest.session import StepRecord
from quicktune.suggest.target import Target


class SearchResults:
    """The results of a `Search` so far."""

    configs: list[Config]
    target: Target
    optimizer: Any  # optimizer.quicktune.QuickTune
    objective: Any  # objective.FinetuneObjective
    budget: float
    max_epochs: int
    seed: int
    batch_size: int
    stop_rule: StopRule
    stop_reason: str | None
    steps: list[StepRecord]
    trace: list[dict[str, Any]]
    sessions: int

    @property
    def elapsed(self) -> float:
        raise NotImplementedError

    def incumbent(self) -> dict[str, Any] | None:
        """The best run so far: {config_id, model, elr, lr, momentum, weight_decay, extras, accuracy, epoch}."""
        inc = self.optimizer.incumbent()
        if inc is None:
            return None
        cid, acc = inc
        curve = self.optimizer.curves[cid]
        epoch = next(t for t, v in enumerate(curve, start=1) if v == acc)
        c = self.configs[cid]
        return {"config_id": cid, "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum,
                "weight_decay": c.weight_decay, "extras": dict(c.extras), "accuracy": float(acc), "epoch": epoch}

    @property
    def epochs_trained(self) -> int:
        return sum(len(c) for c in self.optimizer.curves.values())

    def runs(self) -> list[dict[str, Any]]:
        """Every run trained so far (candidate order): config, curve, per-epoch seconds."""
        out = []
        for cid in sorted(self.optimizer.curves):
            ft = self.objective.finetuner(cid)
            c = self.configs[cid]
            out.append({
                "config_id": cid, "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum,
                "weight_decay": c.weight_decay, "extras": dict(c.extras),
                "curve": [float(r.val_acc) for r in ft.results],
                "epoch_seconds": [float(r.seconds) for r in ft.results], "seconds": float(sum(r.seconds for r in ft.results)),
                "epochs": ft.epochs_done, "finished": ft.finished, "status": ft.status, "run_key": ft.run_key,
            })
        return out

    def test_estimate(self, which: str = "best") -> Any:
        """The chosen model's accuracy on the test split with its Wilson 95% interval
        (`estimate.AccuracyEstimate`), or None when the task has no test split or nothing was
        trained. The chosen model: the incumbent run as of its best epoch (`which="best"`, the epoch
        the report calls best) or of its last trained epoch ("last")."""
        from quicktune.estimate import AccuracyEstimate

        inc = self.incumbent()
        if inc is None:
            return None
        ft = self.objective.finetuner(inc["config_id"])
        if ft.data.test is None or len(ft.data.test) == 0:
            return None
        model, _ = ft.trained_model(which)
        correct, n, _ = ft.score(ft.data.test, model)
        return AccuracyEstimate(correct, n)

    def chosen(self, which: str = "best") -> dict[str, Any] | None:
        """Which weights are handed back: {config_id, which, epoch, val_accuracy}."""
        inc = self.incumbent()
        if inc is None:
            return None
        ft = self.objective.finetuner(inc["config_id"])
        epoch = inc["epoch"] if which == "best" else ft.epochs_done
        return {"config_id": inc["config_id"], "which": which, "epoch": epoch,
                "val_accuracy": float(ft.results[epoch - 1].val_acc)}

    def report(self, surrogate_path: str | None = None, which: str = "best", test: bool = True) -> dict[str, Any]:
        """The JSON-able report: best config (selected on validation), the chosen model's test
        accuracy (the unbiased estimate; `test=False` skips measuring it), every run's curve, the
        incumbent trace, the steps."""
        runs = self.runs()
        inc = self.incumbent()
        estimate, test_split = None, ""
        if inc is not None:
            test_split = self.objective.finetuner(inc["config_id"]).data.test_source
            try:
                estimate = self.test_estimate(which) if test else None
            except RuntimeError as e:  # e.g. a work dir from before best weights were kept
                test_split = f"not measured: {e}"
        best = None
        if inc is not None:
            run = next(r for r in runs if r["config_id"] == inc["config_id"])
            best = {**inc, "curve": run["curve"], "epochs": run["epochs"], "seconds": run["seconds"],
                    "final_accuracy": run["curve"][-1] if run["curve"] else math.nan, "finished": run["finished"],
                    "run_key": run["run_key"], "max_epochs": self.max_epochs}
        return {
            "task": self.target.name,
            "data": self.target.spec.path,
            "surrogate": surrogate_path,
            "budget_seconds": self.budget,
            "elapsed_seconds": self.elapsed,
            "stop_reason": self.stop_reason,
            "stop_when": self.stop_rule.to_string(),
            "seed": self.seed,
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "max_image_size": self.target.max_image_size,
            "candidates": len(self.configs),
            "models": sorted({c.model for c in self.configs}),
            "steps": len(self.steps),
            "epochs_trained": self.epochs_trained,
            "sessions": self.sessions,
            "optimizer_overhead": self.optimizer.overhead,
            "best": best,
            "chosen": self.chosen(which),
            "test": estimate.to_dict() if estimate is not None else None,
            "test_split": test_split or "no test split (test=0)",
            "runs": runs,
            "trace": self.trace,
            "step_log": [vars(s) for s in self.steps],
        }

    def save_best_model(self, weights_dir: str | os.PathLike[str], name: str | None = None,
                        which: str = "best") -> tuple[str, Path]:
        """Save the incumbent's fine-tuned model as a hub checkpoint: as of the epoch the report
        calls best (`which="best"`) or of its last trained epoch ("last"); returns (hub name, .pth
        path): `hub.create_model(name, weights_dir=weights_dir)` loads it."""
        inc = self.incumbent()
        if inc is None:
            raise SuggestError("no run has finished an epoch yet: there is no fine-tuned model to save")
        ft = self.objective.finetuner(inc["config_id"])
        path = ft.save_model(weights_dir, name, which=which)
        return path.stem, path
