"""`quicktune suggest`'s search against random and grid search, with REAL fine-tuning, on one
held-out task at an equal wall-clock budget (issue 5, item 5a).

Design
------
Target and held-out surrogate
    The target is <data>/animal-mnist:shots=50,vshots=30,test=0.2 (task name
    "animal-mnist/k50-vk30": 10 classes, 50 training images a class, 30 validation images a
    class drawn from the 20% of train/ the data layer splits off for validation, and its test/
    folder, 100 images a class, as the test split no method ever sees; 28 px grey images resized
    to each model's training size). The whole animal-mnist
    family (both of its tasks in metadataset/v1, the 5-class subset too) is removed from the
    meta-dataset before meta-training, so the surrogate has seen no curve of the target nor of
    a sibling task. Animal-MNIST is also the family with the most distinct content in v1 (animal
    silhouettes: no other task has them), so this is a real out-of-family transfer. The held-out
    surrogate is meta-trained with `quicktune.surrogate.fit.meta_train` on the other v1 tasks,
    with the settings of the default surrogate (`quicktune metatrain` defaults; hub model
    descriptors; info["finetune"] = {"batch_size": 32, "max_image_size": 64}) and cached under
    ~/.cache/quicktune/bench-suggest-vs-baselines/ (never in the repo); its file name hashes
    the training data and the settings, so a surrogate meta-trained on an earlier, smaller
    meta-dataset is never reused.

Methods (one wall-clock budget for each, counted from the same point: right after the imports)
    quicktune  `quicktune.suggest.Search`, exactly what `quicktune suggest --budget B` runs: load
               the surrogate, open the target, compute its domain features for every model (EMD
               similarity, LogME, LEEP; a FRESH features cache per job, so every job pays for
               them inside its budget), then Quick-Tune asks and `FinetuneObjective` trains one
               epoch per step (a new config at epoch 1 or one more epoch of a started one), with
               the library's default optimizer settings.
    random     `quicktune.baselines.RandomSearch`: unstarted candidates in a seeded random
               order, each trained for the full 5 epochs.
    grid       `quicktune.baselines.GridSearch`: ELR (1e-3, 1e-4, 1e-2, 1e-5, 1e-1) x weight decay
               (1e-4, 1e-2, 0) per model, models in a seeded random order, each grid point mapped
               to the nearest unused candidate of that model; full 5-epoch runs.
    All three use the same candidates (`quicktune.suggest.make_candidates`: the 4 campaign
    models x the same 32 Sobol (ELR, weight decay, momentum) points = 128 configs), the same
    `FinetuneObjective` settings as `suggest` (5-epoch horizon, batch 32, each model's input size
    capped at 64 px, checkpoints after every epoch, kept finished models), the same seed for the
    fine-tuning runs (so a config trained by two methods gives the same curve), 1 torch thread.

Seeds
    Benchmark seed s is `quicktune suggest --seed s`: it seeds the candidate design, the
    fine-tuning runs and the optimizer; within a seed the three methods share all of them.

Scheduling
    One job (method, seed) at a time, each in a fresh Python process with 1 torch thread, so no
    method inherits another's warm in-memory state; `--parallel 2` runs two jobs at once (one per
    core) when the machine is otherwise idle. The method order rotates from seed to seed (so a
    drift of the machine's load does not always hit the same method). Before the jobs, an
    untimed warm-up decodes the target at every resolution and converts every model's weights
    (on-disk caches shared by all methods alike); the load average is recorded at each job's
    start and end.

Metric
    The incumbent = the best validation accuracy of any epoch trained so far, recorded after every
    epoch against the job's wall-clock (and its process CPU time, as a check under load). An
    epoch that ends after the budget does not count. Reported at B/4, B/2 and B per method and
    seed and as the mean over seeds, with the epochs and configs trained by B and the final best
    config; and a normalized regret (oracle - incumbent) / (oracle - chance) where the oracle of
    a seed is the best accuracy any method found in that seed (same candidates and run seed) and
    chance = 1 / classes. That accuracy is the one the search selects on (validation), biased
    upwards; so after the budget (untimed) the selected (config, epoch) - the first epoch with the
    best validation accuracy within the budget - is evaluated on the test split with the weights of
    that epoch (kept by `Finetuner(keep_best=True)`, as `suggest` does), with a Wilson 95%
    interval (`quicktune.estimate`): the unbiased estimate.

Usage
-----
    /work/venv/bin/python benchmarks/suggest_vs_baselines.py run [--budget 10m] [--seeds 2]
        [--parallel 1] [--meta-steps 4000] [--data /work/data] [--weights /work/shared/weights]
        [--out benchmarks/results]
    /work/venv/bin/python benchmarks/suggest_vs_baselines.py report    # outputs from finished jobs only

`run` meta-trains the held-out surrogate if its cache file is missing, runs every (method, seed)
job whose result is missing (a job killed half-way is rerun from scratch: a timed run can not be
resumed fairly), then writes, into --out: suggest_vs_baselines.csv (long: method, seed, wall_s,
cpu_s, incumbent_acc, one row per epoch that moved or kept the incumbent, plus a row at 0 and at
the budget), suggest_vs_baselines_summary.json and suggest_vs_baselines.png (incumbent vs
wall-clock, one line per method: the mean over seeds, thin lines per seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "metadataset" / "campaign"))
import campaign_v1  # noqa: E402  (the campaign's models and training settings: one source of truth)

METHODS = ("quicktune", "random", "grid")
TARGET_FOLDER, TARGET_OPTIONS = "animal-mnist", "shots=50,vshots=30,test=0.2"
HELD_OUT_FAMILY = "animal-mnist"  # every meta-dataset task whose name starts with "animal-mnist/"
MODELS = list(campaign_v1.MODELS)
EPOCHS = campaign_v1.EPOCHS
BATCH_SIZE = campaign_v1.BATCH_SIZE
MAX_IMAGE_SIZE = campaign_v1.MAX_IMAGE_SIZE
N_CONFIGS = 32  # per model: `quicktune suggest`'s default (DEFAULT_CANDIDATES)
THREADS = 1
# The default surrogate's meta-training settings (`quicktune metatrain` defaults).
META_TRAIN = {"steps": 4000, "seed": 0, "batch_size": 64, "lr": 3e-3, "val_fraction": 0.2}
CACHE_ROOT = Path.home() / ".cache" / "quicktune" / "bench-suggest-vs-baselines"
PREFIX = "suggest_vs_baselines"
JOB_VERSION = 3  # 2: a test split, the selection's test accuracy; 3: the selection's weights copied when chosen


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------
def _atomic_json(doc: Any, path: Path) -> None:
    from quicktune.atomic import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False, default=_nan_to_none)


def _nan_to_none(x: Any) -> Any:
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def _clean(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def target_spec(data: Path) -> str:
    return f"{data / TARGET_FOLDER}:{TARGET_OPTIONS}"


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


# ------------------------------------------------------------------------------------------------
# The held-out surrogate
# ------------------------------------------------------------------------------------------------
def surrogate_file(table, weights: Path, settings: dict[str, Any]) -> tuple[Path, list[str]]:
    """Where the held-out surrogate of this meta-dataset content and these settings is cached,
    and the datasets it trains on (every task outside the held-out family)."""
    import numpy as np

    train = [d for d in table.datasets if not d.startswith(HELD_OUT_FAMILY + "/") and d != HELD_OUT_FAMILY]
    content = {d: int(table.task(d).n_runs) for d in train}
    epochs = {d: int(np.isfinite(table.task(d).perf).sum()) for d in train}
    blob = json.dumps({"v": 1, "content": content, "epochs": epochs, "features": table.pair_feature_names(),
                       "settings": settings, "weights": str(weights)}, sort_keys=True).encode()
    tag = hashlib.sha256(blob).hexdigest()[:10]
    return CACHE_ROOT / f"surrogate-heldout-{HELD_OUT_FAMILY}-{tag}.pt", train


def meta_train_held_out(metadataset: Path, weights: Path, settings: dict[str, Any]) -> Path:
    """Meta-train (once; cached) the surrogate on every v1 task outside the held-out family."""
    import torch

    from quicktune.hub import model_info
    from quicktune.metadataset import open_metadataset
    from quicktune.surrogate.fit import meta_train

    table = open_metadataset(metadataset)
    path, train = surrogate_file(table, weights, settings)
    if path.is_file():
        print(f"held-out surrogate: {path} (cached)", flush=True)
        return path
    held = [d for d in table.datasets if d not in train]
    if not held:
        raise SystemExit(f"error: the meta-dataset {metadataset} has no {HELD_OUT_FAMILY} task to hold out")
    print(f"meta-training the held-out surrogate on {len(train)} tasks (held out: {', '.join(held)}) ...", flush=True)
    torch.set_num_threads(THREADS)
    descriptors = {m: model_info(m, str(weights)).descriptors() for m in table.models}
    res = meta_train(table, datasets=train, model_descriptors=descriptors, progress=True, **settings)
    res.surrogate.info["finetune"] = {"batch_size": BATCH_SIZE, "max_image_size": MAX_IMAGE_SIZE}
    res.surrogate.info["held_out"] = held
    res.surrogate.save(path)
    print(f"wrote {path}: {res.seconds:.0f} s, validated on {res.val_datasets}: {res.val_metrics}", flush=True)
    return path


# ------------------------------------------------------------------------------------------------
# One job: one method, one seed, one budget, in its own process
# ------------------------------------------------------------------------------------------------
def job_identity(method: str, seed: int, budget: float, data: Path, weights: Path, surrogate: Path | None) -> dict:
    return {
        "version": JOB_VERSION, "method": method, "seed": seed, "budget_s": budget, "target": target_spec(data),
        "models": MODELS, "configs_per_model": N_CONFIGS, "epochs": EPOCHS, "batch_size": BATCH_SIZE,
        "max_image_size": MAX_IMAGE_SIZE, "threads": THREADS, "weights": str(weights),
        "surrogate": str(surrogate) if method == "quicktune" else None,
    }


def run_job(identity: dict, jobdir: Path) -> dict:
    """Run one (method, seed) job; returns its result (also written to jobdir/result.json)."""
    import shutil

    import numpy as np  # noqa: F401  (imported before the clock starts, like everything heavy)
    import torch

    from quicktune import suggest as qs
    from quicktune.baselines import GridSearch, RandomSearch
    from quicktune.objective import FinetuneObjective
    from quicktune.protocol import Observation, Trial
    from quicktune.space import SearchSpace
    from quicktune.stopping import StopRule
    from quicktune.surrogate.gp import Surrogate  # noqa: F401

    torch.set_num_threads(THREADS)
    method, seed, budget = identity["method"], int(identity["seed"]), float(identity["budget_s"])
    weights = identity["weights"]
    work = jobdir / "work"
    if work.exists():  # a killed job: start over (a timed run can not be resumed fairly)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    configs = qs.make_candidates(MODELS, N_CONFIGS, seed)
    events: list[dict[str, Any]] = []  # one per trained epoch
    selection = Selection(work, budget)
    info: dict[str, Any] = {"load_start": _load()}

    t0, c0 = time.perf_counter(), time.process_time()  # the budget's clock starts here, for every method
    if method == "quicktune":
        sur = qs.load_surrogate(identity["surrogate"])
        target = qs.open_target(identity["target"], MODELS, weights, MAX_IMAGE_SIZE)
        feats = qs.task_features(target, MODELS, settings=qs.feature_settings(sur), cache_dir=work / "features-cache")
        info["setup_s"] = time.perf_counter() - t0

        def on_event(kind: str, s: qs.Search) -> None:
            if kind == "step":
                st = s.steps[-1]
                events.append({"wall_s": st.elapsed, "cpu_s": time.process_time() - c0, "config_id": st.config_id,
                               "epoch": st.epoch, "acc": st.accuracy, "step_s": st.seconds, "overhead_s": st.overhead})
                selection.offer(s.objective, events[-1])

        # The full budget, like the baselines (the default stop rule would end some searches early).
        search = qs.Search.open(sur, configs, target, feats, budget_seconds=budget, max_epochs=EPOCHS,
                                workdir=work / "search", seed=seed, batch_size=BATCH_SIZE, threads=THREADS,
                                clock_start=t0, on_event=on_event, stop_rule=StopRule.parse("none"))
        target.release()
        info["stop_reason"] = search.run()
        info["optimizer_overhead"] = search.optimizer.overhead if hasattr(search.optimizer, "overhead") else None
        objective = search.objective
    else:
        space = SearchSpace(configs)
        objective = FinetuneObjective(space, identity["target"], EPOCHS, work / "search", seed,
                                      max_image_size=MAX_IMAGE_SIZE, batch_size=BATCH_SIZE, num_threads=THREADS,
                                      weights_dir=weights, keep_finished_models=True, keep_best_weights=True)
        opt = RandomSearch(space, EPOCHS, seed) if method == "random" else GridSearch(space, EPOCHS, seed)
        info["setup_s"] = time.perf_counter() - t0
        stop = "budget"
        while time.perf_counter() - t0 < budget:
            trial = opt.ask()
            if trial is None:
                stop = "every candidate is finished"
                break
            # Epoch by epoch (the run continues in memory; a checkpoint is written after every
            # epoch either way), so the incumbent is recorded after every epoch as for quicktune.
            obs, epoch_seconds = None, []
            for e in range(opt.epochs_done(trial.config_id) + 1, trial.epoch + 1):
                obs = objective.evaluate(Trial(trial.config_id, e))
                epoch_seconds.extend(obs.epoch_seconds)
                acc = obs.curve[-1] if obs.curve else math.nan
                events.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                               "config_id": trial.config_id, "epoch": len(obs.curve), "acc": acc,
                               "step_s": obs.seconds, "overhead_s": 0.0})
                selection.offer(objective, events[-1])
                if obs.finished or len(obs.curve) < e or time.perf_counter() - t0 >= budget:
                    break
            if obs is not None:
                opt.tell(Observation(trial, obs.curve, sum(epoch_seconds), tuple(epoch_seconds), obs.finished))
        info["stop_reason"] = stop
        if method == "grid":
            info["grid_assignment"] = [[list(p), cid] for p, cid in opt.assignment]
    info["wall_s"] = time.perf_counter() - t0
    info["cpu_s"] = time.process_time() - c0
    info["load_end"] = _load()
    t1 = time.perf_counter()
    info["test"] = test_of_selection(objective, events, budget, selection)
    info["test_eval_s"] = time.perf_counter() - t1

    result = {"identity": identity, "info": info, "events": events,
              "configs": [c.to_dict() for c in configs], "finished_at": time.time()}
    _atomic_json(_clean(result), jobdir / "result.json")
    shutil.rmtree(work, ignore_errors=True)  # checkpoints of up to ~100 runs: not needed any more
    return result


class Selection:
    """Keeps a copy of the incumbent epoch's weights each time the incumbent improves within the
    budget (the run's `best.pt` holds exactly that epoch then: its own best improved too), so a
    later epoch of the same run trained past the budget can not replace them. A file copy, inside
    the clock (milliseconds)."""

    def __init__(self, work: Path, budget: float) -> None:
        self.path, self.budget, self.best, self.key = work / "selection.pt", budget, -math.inf, None

    def offer(self, objective, ev: dict) -> None:
        import shutil

        acc = ev["acc"]
        if ev["wall_s"] > self.budget or acc is None or not math.isfinite(acc) or acc <= self.best:
            return
        ft = objective.finetuner(ev["config_id"])
        if ft.best_path is not None and ft.best_path.is_file() and ft.best_epoch == ev["epoch"]:
            shutil.copyfile(ft.best_path, self.path)
            self.best, self.key = acc, (ev["config_id"], int(ev["epoch"]))


def test_of_selection(objective, events: list[dict], budget: float, selection: Selection | None = None) -> dict | None:
    """The selected (config, epoch) - first epoch with the best validation accuracy within the
    budget - evaluated on the test split with that epoch's weights; None if there is none."""
    from quicktune.estimate import AccuracyEstimate

    evs = [e for e in events if e["wall_s"] <= budget and e["acc"] is not None and math.isfinite(e["acc"])]
    if not evs:
        return None
    best = max(evs, key=lambda e: e["acc"])  # the first of equal maxima: events are in time order
    ft = objective.finetuner(best["config_id"])
    if ft.data.test is None:
        return None
    epoch = int(best["epoch"])
    if selection is not None and selection.key == (best["config_id"], epoch):
        import copy

        import torch

        state = torch.load(selection.path, map_location="cpu", weights_only=True)
        assert state["epoch"] == epoch and state["run_key"] == ft.run_key
        model = copy.deepcopy(ft.model)
        model.load_state_dict(state["model"])
    elif epoch == ft.best_epoch or epoch == ft.epochs_done:
        model, got = ft.trained_model("best" if epoch == ft.best_epoch else "last")
        assert got == epoch
    else:  # a later epoch of that run, past the budget, beat it: its weights were replaced
        return {"config_id": best["config_id"], "epoch": epoch, "val_acc": best["acc"], "accuracy": None,
                "note": "the selected epoch's weights were replaced by a later epoch trained past the budget"}
    correct, n, _ = ft.score(ft.data.test, model)
    return {"config_id": best["config_id"], "epoch": epoch, "val_acc": best["acc"], **AccuracyEstimate(correct, n).to_dict()}


def job_dir(root: Path, identity: dict) -> Path:
    tag = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return root / f"{identity['method']}-seed{identity['seed']}-{int(identity['budget_s'])}s-{tag}"


def load_result(jobdir: Path, identity: dict) -> dict | None:
    p = jobdir / "result.json"
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    return doc if doc.get("identity") == identity else None


# ------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------
def incumbent_trace(events: list[dict], budget: float, clock: str = "wall_s") -> list[tuple[float, float]]:
    """[(time, incumbent)] at every epoch that ended within the budget (NaN epochs count as nothing)."""
    out, best = [], -math.inf
    for ev in sorted(events, key=lambda e: e[clock]):
        if ev[clock] > budget:
            continue
        acc = ev["acc"]
        if acc is not None and math.isfinite(acc) and acc > best:
            best = acc
        out.append((float(ev[clock]), best))
    return out


def incumbent_at(trace: list[tuple[float, float]], t: float) -> float:
    """The incumbent at time t (NaN before the first epoch)."""
    v = math.nan
    for ti, inc in trace:
        if ti > t:
            break
        v = inc if inc > -math.inf else math.nan
    return v


def summarize(results: list[dict], budget: float, n_classes: int) -> dict[str, Any]:
    import numpy as np

    checkpoints = {"B/4": budget / 4, "B/2": budget / 2, "B": budget}
    seeds = sorted({r["identity"]["seed"] for r in results})
    by = {(r["identity"]["method"], r["identity"]["seed"]): r for r in results}
    chance = 1.0 / n_classes
    per_run: list[dict[str, Any]] = []
    oracle: dict[int, float] = {}
    for s in seeds:
        vals = [incumbent_at(incumbent_trace(by[(m, s)]["events"], budget), budget) for m in METHODS if (m, s) in by]
        oracle[s] = float(np.nanmax(vals)) if vals and not all(math.isnan(v) for v in vals) else math.nan
    for (m, s), r in sorted(by.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        evs = [e for e in r["events"] if e["wall_s"] <= budget]
        trace = incumbent_trace(r["events"], budget)
        configs = r["configs"]
        best_ev = max((e for e in evs if e["acc"] is not None and math.isfinite(e["acc"])), key=lambda e: e["acc"],
                      default=None)
        runs: dict[int, int] = {}
        for e in evs:
            runs[e["config_id"]] = max(runs.get(e["config_id"], 0), e["epoch"])
        at = {k: incumbent_at(trace, t) for k, t in checkpoints.items()}
        row = {
            "method": m, "seed": s,
            "incumbent": at,
            "regret": {k: (oracle[s] - v) / (oracle[s] - chance) if math.isfinite(v) else 1.0 for k, v in at.items()},
            "epochs_trained": len(evs),
            "configs_started": len(runs),
            "configs_finished": sum(1 for v in runs.values() if v >= EPOCHS),
            "models_tried": sorted({configs[c]["model"] for c in runs}),
            "time_to_first_epoch_s": evs[0]["wall_s"] if evs else None,
            "best": None if best_ev is None else {**configs[best_ev["config_id"]], "accuracy": best_ev["acc"],
                                                   "epoch": best_ev["epoch"], "found_at_s": best_ev["wall_s"]},
            "setup_s": r["info"].get("setup_s"),
            "stop_reason": r["info"].get("stop_reason"),
            "median_optimizer_overhead_s": float(np.median([e["overhead_s"] for e in evs])) if evs else None,
            "total_optimizer_overhead_s": float(sum(e["overhead_s"] for e in evs)),
            "load_start": r["info"].get("load_start"), "load_end": r["info"].get("load_end"),
            "incumbent_at_B_by_cpu_clock": incumbent_at(incumbent_trace(r["events"], budget, "cpu_s"), budget),
            "test": r["info"].get("test"),
        }
        per_run.append(row)
    means: dict[str, Any] = {}
    for m in METHODS:
        rows = [r for r in per_run if r["method"] == m]
        if not rows:
            continue
        means[m] = {
            "seeds": len(rows),
            "incumbent": {k: float(np.nanmean([r["incumbent"][k] for r in rows])) for k in checkpoints},
            "incumbent_min_max": {k: [float(np.nanmin([r["incumbent"][k] for r in rows])),
                                      float(np.nanmax([r["incumbent"][k] for r in rows]))] for k in checkpoints},
            "regret": {k: float(np.mean([r["regret"][k] for r in rows])) for k in checkpoints},
            "epochs_trained": float(np.mean([r["epochs_trained"] for r in rows])),
            "configs_started": float(np.mean([r["configs_started"] for r in rows])),
            "configs_finished": float(np.mean([r["configs_finished"] for r in rows])),
            "best_configs": [r["best"] for r in rows],
        }
        tests = [r["test"] for r in rows if r.get("test") and r["test"].get("accuracy") is not None]
        if tests:  # the unbiased estimate: the selection's accuracy on the test split
            means[m]["test_accuracy"] = float(np.mean([t["accuracy"] for t in tests]))
            means[m]["test_accuracy_min_max"] = [float(min(t["accuracy"] for t in tests)),
                                                 float(max(t["accuracy"] for t in tests))]
            means[m]["selected_val_accuracy"] = float(np.mean([t["val_acc"] for t in tests]))
            means[m]["optimism"] = means[m]["selected_val_accuracy"] - means[m]["test_accuracy"]
            means[m]["test_images"] = int(tests[0]["n"])
            means[m]["test_seeds"] = len(tests)
    # Wins per seed at the budget (ties counted as ties).
    wins: dict[str, Any] = {}
    for s in seeds:
        vals = {r["method"]: r["incumbent"]["B"] for r in per_run if r["seed"] == s}
        top = max((v for v in vals.values() if math.isfinite(v)), default=math.nan)
        wins[str(s)] = sorted(m for m, v in vals.items() if v == top)
    return {"checkpoints_s": checkpoints, "oracle_per_seed": {str(k): v for k, v in oracle.items()}, "chance": chance,
            "mean_over_seeds": means, "best_at_budget_per_seed": wins, "runs": per_run}


def write_outputs(results: list[dict], budget: float, out: Path, extra: dict[str, Any]) -> dict[str, Path]:
    import pandas as pd

    from quicktune.data import load_task

    out.mkdir(parents=True, exist_ok=True)
    target = results[0]["identity"]["target"]
    n_classes = load_task(target, 32).n_classes
    summary = summarize(results, budget, n_classes)

    # Long CSV: a row at 0, one per epoch within the budget, one at the budget.
    rows = []
    for r in sorted(results, key=lambda r: (METHODS.index(r["identity"]["method"]), r["identity"]["seed"])):
        m, s = r["identity"]["method"], r["identity"]["seed"]
        evs = sorted((e for e in r["events"] if e["wall_s"] <= budget), key=lambda e: e["wall_s"])
        best = math.nan
        rows.append({"method": m, "seed": s, "wall_s": 0.0, "cpu_s": 0.0, "incumbent_acc": math.nan,
                     "config_id": None, "epoch": None, "acc": math.nan})
        for e in evs:
            if e["acc"] is not None and math.isfinite(e["acc"]) and not (e["acc"] <= best):
                best = e["acc"]
            rows.append({"method": m, "seed": s, "wall_s": round(e["wall_s"], 2), "cpu_s": round(e["cpu_s"], 2),
                         "incumbent_acc": best, "config_id": e["config_id"], "epoch": e["epoch"],
                         "acc": e["acc"] if e["acc"] is not None else math.nan})
        rows.append({"method": m, "seed": s, "wall_s": budget, "cpu_s": math.nan, "incumbent_acc": best,
                     "config_id": None, "epoch": None, "acc": math.nan})
    df = pd.DataFrame(rows)
    paths = {"csv": out / f"{PREFIX}.csv", "summary": out / f"{PREFIX}_summary.json", "png": out / f"{PREFIX}.png"}
    df.to_csv(paths["csv"], index=False, float_format="%.4f")
    doc = {**extra, "n_classes": n_classes, **summary}
    paths["summary"].write_text(json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n")
    plot(results, budget, summary, paths["png"], extra)
    return paths


def plot(results: list[dict], budget: float, summary: dict, path: Path, extra: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = {"quicktune": "tab:red", "random": "tab:blue", "grid": "tab:green"}
    grid_t = np.linspace(0, budget, 601)
    fig, ax = plt.subplots(figsize=(8, 5))
    for m in METHODS:
        rs = [r for r in results if r["identity"]["method"] == m]
        if not rs:
            continue
        curves = []
        for r in rs:
            tr = incumbent_trace(r["events"], budget)
            y = np.array([incumbent_at(tr, t) for t in grid_t])
            curves.append(y)
            ax.step(grid_t / 60, y, where="post", color=colors[m], alpha=0.35, lw=0.9)
        stack = np.vstack(curves)
        # The mean only where every seed has an incumbent (before that it would mix in fewer seeds).
        mean = np.where(np.isnan(stack).any(axis=0), np.nan, np.nanmean(np.where(np.isnan(stack), 0, stack), axis=0))
        mm = summary["mean_over_seeds"][m]
        ax.step(grid_t / 60, mean, where="post", color=colors[m], lw=2.4,
                label=f"{m} (mean of {len(rs)}): val {mm['incumbent']['B']:.3f} at {budget / 60:g} min"
                      + (f" (test {mm['test_accuracy']:.3f})" if "test_accuracy" in mm else "")
                      + f", {mm['epochs_trained']:.0f} epochs / {mm['configs_started']:.0f} configs")
    ax.set_xlabel("wall-clock (minutes; set-up and feature computation included)")
    ax.set_ylabel("incumbent validation accuracy")
    ax.set_xlim(0, budget / 60)
    lo = np.nanmin([v for r in summary["runs"] for v in r["incumbent"].values()] + [1.0])
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.grid(alpha=0.3)
    ax.set_title(f"{extra.get('task', '')}: real fine-tuning on 1 CPU thread, thin lines: seeds", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------
def warm_up(data: Path, weights: Path) -> None:
    """Untimed: decode the target at every training resolution and convert every model's weights
    (both cached on disk), so no method pays a one-off cost another one does not."""
    from quicktune import hub
    from quicktune.collect import training_size
    from quicktune.data import load_task

    for m in MODELS:
        load_task(target_spec(data), training_size(hub.model_info(m, str(weights)).input_size, MAX_IMAGE_SIZE))
        hub.create_model(m, weights_dir=str(weights), num_classes=10)


def order_for_seed(seed: int) -> list[str]:
    k = seed % len(METHODS)
    return list(METHODS[k:] + METHODS[:k])


def cmd_run(args: argparse.Namespace) -> int:
    from quicktune.cli._common import parse_duration

    budget = parse_duration(args.budget)
    settings = {**META_TRAIN, "steps": args.meta_steps}
    if "quicktune" in args.methods:
        surrogate = args.surrogate or meta_train_held_out(args.metadataset, args.weights, settings)
    else:
        surrogate = None
    warm_up(args.data, args.weights)
    root = args.work_root
    todo = []
    for s in range(args.seed0, args.seed0 + args.seeds):
        for m in order_for_seed(s):
            if m not in args.methods:
                continue
            ident = job_identity(m, s, budget, args.data, args.weights, Path(surrogate) if surrogate else None)
            jd = job_dir(root, ident)
            if load_result(jd, ident) is None:
                todo.append((ident, jd))
    print(f"{len(todo)} job(s) to run, {args.parallel} at a time, {budget:.0f} s each "
          f"(~{len(todo) * budget / args.parallel / 60:.0f} min)", flush=True)
    running: list[tuple[subprocess.Popen, dict, Path, float]] = []
    while todo or running:
        while todo and len(running) < args.parallel:
            ident, jd = todo.pop(0)
            jd.mkdir(parents=True, exist_ok=True)
            (jd / "identity.json").write_text(json.dumps(ident, indent=1))
            log = open(jd / "log.txt", "w")
            p = subprocess.Popen([sys.executable, __file__, "job", str(jd)], stdout=log, stderr=subprocess.STDOUT)
            running.append((p, ident, jd, time.time()))
            print(f"started {ident['method']} seed {ident['seed']} (pid {p.pid}, load {_load()[0]:.1f})", flush=True)
        time.sleep(2)
        for item in list(running):
            p, ident, jd, t = item
            if p.poll() is not None:
                running.remove(item)
                ok = p.returncode == 0 and load_result(jd, ident) is not None
                print(f"{'finished' if ok else 'FAILED'} {ident['method']} seed {ident['seed']} in "
                      f"{time.time() - t:.0f} s (rc {p.returncode}; log {jd / 'log.txt'})", flush=True)
    return cmd_report(args, surrogate)


def cmd_job(args: argparse.Namespace) -> int:
    jd = Path(args.jobdir)
    ident = json.loads((jd / "identity.json").read_text())
    r = run_job(ident, jd)
    tr = incumbent_trace(r["events"], ident["budget_s"])
    print(f"{ident['method']} seed {ident['seed']}: {len(r['events'])} epochs, incumbent at budget "
          f"{incumbent_at(tr, ident['budget_s']):.4f}, stop: {r['info']['stop_reason']}", flush=True)
    return 0


def cmd_report(args: argparse.Namespace, surrogate: str | Path | None = None) -> int:
    from quicktune.cli._common import parse_duration

    budget = parse_duration(args.budget)
    results = []
    for jd in sorted(args.work_root.glob(f"*-{int(budget)}s-*")):
        p = jd / "result.json"
        if p.is_file():
            r = json.loads(p.read_text())
            ident = r["identity"]
            if ident.get("version") != JOB_VERSION:  # a job of an older version of this script
                continue
            if ident["target"] != target_spec(args.data) or not (args.seed0 <= ident["seed"] < args.seed0 + args.seeds):
                continue
            if surrogate is not None and ident["method"] == "quicktune" and ident["surrogate"] != str(surrogate):
                continue
            results.append(r)
    if not results:
        print(f"no finished jobs with budget {budget:.0f} s under {args.work_root}", file=sys.stderr)
        return 1
    sur_path = next((r["identity"]["surrogate"] for r in results if r["identity"]["method"] == "quicktune"), None)
    sur_info = {}
    if sur_path and Path(sur_path).is_file():
        from quicktune.surrogate.gp import Surrogate

        info = Surrogate.load(sur_path).info
        sur_info = {k: info.get(k) for k in ("steps", "seed", "lr", "batch_size", "best_step", "train_datasets",
                                              "val_datasets", "val_metrics", "held_out", "finetune", "seconds")}
    extra = {
        "task": "animal-mnist/k50-vk30", "target": target_spec(args.data), "budget_s": budget,
        "methods": list(METHODS), "seeds": sorted({r["identity"]["seed"] for r in results}),
        "models": MODELS, "candidates": len(MODELS) * N_CONFIGS, "epochs": EPOCHS, "batch_size": BATCH_SIZE,
        "max_image_size": MAX_IMAGE_SIZE, "torch_threads": THREADS, "jobs_at_once": args.parallel,
        "held_out_surrogate": {"path": sur_path, **sur_info},
        "command": "python benchmarks/suggest_vs_baselines.py " + " ".join(sys.argv[1:]),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    paths = write_outputs(results, budget, args.out, extra)
    summary = json.loads(paths["summary"].read_text())
    for m, v in summary["mean_over_seeds"].items():
        inc = v["incumbent"]
        def f(x, spec=".4f"):  # None: nothing had finished by then (a tiny budget)
            return "-" if x is None else format(x, spec)

        print(f"{m:>10} ({v['seeds']} seeds): incumbent B/4 {f(inc['B/4'])}  B/2 {f(inc['B/2'])}  B {f(inc['B'])}  "
              f"regret B {f(v['regret']['B'], '.3f')}  epochs {f(v['epochs_trained'], '.0f')}  "
              f"configs {f(v['configs_started'], '.0f')}  test acc {f(v.get('test_accuracy'))}", flush=True)
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--budget", default="10m", help="wall-clock budget per job (90s, 10m, ...)")
        p.add_argument("--seeds", type=int, default=2)
        p.add_argument("--seed0", type=int, default=0)
        p.add_argument("--methods", default=",".join(METHODS))
        p.add_argument("--parallel", type=int, default=1, help="jobs at once (each has 1 torch thread)")
        p.add_argument("--meta-steps", type=int, default=META_TRAIN["steps"])
        p.add_argument("--surrogate", type=Path, default=None, help="use this surrogate instead of meta-training one")
        p.add_argument("--metadataset", type=Path, default=REPO / "metadataset" / "v1")
        p.add_argument("--data", type=Path, default=Path(os.environ.get("QUICKTUNE_DATA", "/work/data")))
        p.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights")
        p.add_argument("--work-root", type=Path, default=CACHE_ROOT / "jobs")
        p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    pj = sub.add_parser("job")
    pj.add_argument("jobdir")
    args = ap.parse_args(argv)
    if args.cmd == "job":
        return cmd_job(args)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; known: {list(METHODS)}")
    return cmd_run(args) if args.cmd == "run" else cmd_report(args, args.surrogate)


if __name__ == "__main__":
    sys.exit(main())
