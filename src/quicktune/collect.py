"""The collection stage: plan (tasks x models x configs), skip what is done, run the rest.

    plan_collection(...)  -> Plan: the jobs still to run (complete run_keys skipped; partial
                             ones continue), with the tasks validated and their data cached
    run_collection(plan)  -> CollectSummary: runs the jobs with an executor and appends every
                             finished epoch to the store as it finishes

Executors:
- "local" (default): one job at a time in this process when workers == 1, else a process pool
  (spawn context). With GPUs, one job per GPU (CUDA_VISIBLE_DEVICES); on CPU, torch threads per
  job = max(1, cores // workers) so cores are not oversubscribed.
- "ray": Ray core tasks (num_cpus = threads per job, retries), when `ray` is importable.

Resumability: each run checkpoints after every epoch under `work_dir/<run_key>/` (kept out of the
store: checkpoints are large) and appends each epoch's row atomically. A rerun skips complete
runs and continues partial ones from their checkpoint; a run whose checkpoint is gone is
retrained (deterministically, so it reproduces the stored epochs) and only new epochs are
appended. Epochs that a killed job checkpointed but had not yet appended are appended on the
rerun. A finished run's checkpoint is deleted once its rows are stored.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from quicktune.data import TaskSpec
from quicktune.metadataset.schema import DATASET_DESCRIPTORS
from quicktune.metadataset.storage import MetaDatasetStore
from quicktune.space import Config

# The default space the collection samples configs from (Li et al. 2020 style ranges).
ELR_RANGE = (1e-3, 1.0)  # log-uniform
WEIGHT_DECAY_RANGE = (1e-6, 1e-2)  # log-uniform ...
P_ZERO_WEIGHT_DECAY = 0.2  # ... or exactly 0 with this probability
MOMENTA = (0.0, 0.5, 0.9)
TERMINAL_STATUSES = ("diverged",)


class CollectError(ValueError):
    """Bad collection input (configs, grid file, executor, models)."""


# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------
def sample_hyperparameters(n: int, seed: int = 0) -> list[dict[str, float]]:
    """`n` (elr, weight_decay, momentum) draws from the default space, reproducible by `seed`."""
    if n < 1:
        raise CollectError(f"`configs >= 1` must hold, but got configs={n}")
    rng = np.random.default_rng([seed, 0xC0FF16])
    out = []
    for _ in range(n):
        elr = 10 ** rng.uniform(math.log10(ELR_RANGE[0]), math.log10(ELR_RANGE[1]))
        wd_draw = 10 ** rng.uniform(math.log10(WEIGHT_DECAY_RANGE[0]), math.log10(WEIGHT_DECAY_RANGE[1]))
        wd = 0.0 if rng.random() < P_ZERO_WEIGHT_DECAY else wd_draw
        momentum = float(MOMENTA[int(rng.integers(len(MOMENTA)))])
        # 4 significant digits: readable in tables, and stable under a JSON round trip.
        out.append({"elr": float(f"{elr:.4g}"), "weight_decay": float(f"{wd:.4g}"), "momentum": momentum})
    return out


def load_grid(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Configs from a JSON file: a list of objects {"elr", "weight_decay"?, "momentum"?,
    "model"?, any extra hyperparameter}, or one object of lists {"elr": [...], "weight_decay":
    [...], "momentum": [...]} meaning their full factorial grid. Entries without "model" are
    crossed with the collection's models."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise CollectError(f"{p}: no such grid file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CollectError(f"{p}: not a readable JSON grid ({str(e).splitlines()[0]})") from None
    if isinstance(raw, dict):
        keys = ["elr", "weight_decay", "momentum"]
        if "elr" not in raw or not all(isinstance(raw.get(k, []), list) for k in keys):
            raise CollectError(f"{p}: a grid object maps elr (and optionally weight_decay, momentum) to lists of values")
        raw = [{"elr": e, "weight_decay": w, "momentum": m} for e in raw["elr"]
               for w in raw.get("weight_decay", [0.0]) for m in raw.get("momentum", [0.9])]
    if not isinstance(raw, list) or not raw or not all(isinstance(c, dict) and "elr" in c for c in raw):
        raise CollectError(f"{p}: the grid must be a non-empty list of objects, each with at least an 'elr'")
    return raw


def make_configs(models: Sequence[str], hyperparams: Sequence[Mapping[str, Any]]) -> list[Config]:
    """models x hyperparameters (entries that name a model are kept as they are), de-duplicated."""
    out: list[Config] = []
    for hp in hyperparams:
        hp = dict(hp)
        elr, wd, mom = hp.pop("elr"), hp.pop("weight_decay", 0.0), hp.pop("momentum", 0.9)
        named = hp.pop("model", None)
        extras = hp.pop("extras", {}) or {}
        extras.update(hp)
        for m in [named] if named else models:
            try:
                out.append(Config(m, float(elr), float(wd), float(mom), extras))
            except (TypeError, ValueError) as e:
                raise CollectError(f"bad config {dict(elr=elr, weight_decay=wd, momentum=mom)}: {e}") from None
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------------
# Plan
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One run to (continue to) train. `stored` are the epochs already in the store."""

    spec: TaskSpec  # the task, with `size` set when the collection fixes the resolution
    config: Config
    seed: int
    max_epochs: int
    dataset: str
    run_key: str
    image_size: int  # resolution the run trains at
    stored: tuple[int, ...] = ()
    batch_size: int = 64
    pretrained: bool = True

    def describe(self) -> str:
        return f"{self.dataset} {self.config.describe()}"


@dataclass
class Plan:
    store: Path
    work_dir: Path
    jobs: list[Job]
    n_runs: int  # runs planned in all (complete ones included)
    n_complete: int  # skipped: already complete in the store
    descriptors: dict[str, dict[str, float]]  # task name -> dataset descriptors
    weights_dir: str | None = None
    skip_unreadable: bool = False

    @property
    def epochs_to_train(self) -> int:
        return sum(j.max_epochs - len(j.stored) for j in self.jobs)


def default_work_dir(store: str | os.PathLike[str]) -> Path:
    """Checkpoints live beside the store, never inside it: <store>/../.checkpoints."""
    return Path(store).resolve().parent / ".checkpoints"


def _store_state(store: MetaDatasetStore) -> dict[str, tuple[set[int], bool]]:
    """run_key -> (epochs stored, ended early: a terminal status such as diverged)."""
    df = store.read()
    out: dict[str, tuple[set[int], bool]] = {}
    for key, g in df.groupby("run_key"):
        out[str(key)] = (set(int(e) for e in g["epoch"]), bool(g["status"].isin(TERMINAL_STATUSES).any()))
    return out


def _check_models(models: Sequence[str], weights_dir: str | None, pretrained: bool) -> None:
    from quicktune import hub

    for m in models:
        hub.model_info(m, weights_dir)  # HubError (a ValueError) for unknown names
        if pretrained and m in hub.registered_models():
            hub.weights_file(m, weights_dir)  # HubError when the weights are not there


def training_size(input_size: int, max_image_size: int | None) -> int:
    """The resolution a model trains at: its input size, capped at `max_image_size` when given."""
    if max_image_size is not None and max_image_size < 4:
        raise CollectError(f"`max_image_size >= 4` must hold, but got max_image_size={max_image_size}")
    return int(input_size if max_image_size is None else min(input_size, max_image_size))


def plan_collection(
    specs: Sequence[TaskSpec | str],
    models: Sequence[str],
    hyperparams: Sequence[Mapping[str, Any]],
    max_epochs: int,
    store: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int | None = None,
    max_image_size: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    pretrained: bool = True,
    skip_unreadable: bool = False,
    write_descriptors: bool = True,
) -> Plan:
    """Validate the inputs, cache every task's decoded data, and list the runs still to train.

    Resolution: a task spec's own `size` wins, then `image_size` for every task, else each model
    trains at its input size capped at `max_image_size` (e.g. 64 px on a CPU: the task name stays
    the same for every model and the resolution joins the run key).

    Raises DataError / HubError / CollectError (all ValueErrors) on bad input, before anything
    is trained. Dataset descriptors are appended to the store's features (model "").
    """
    from quicktune.data import load_task
    from quicktune.finetune import run_identity
    from quicktune.hub import model_info

    if max_epochs < 1:
        raise CollectError(f"`epochs >= 1` must hold, but got epochs={max_epochs}")
    if not models:
        raise CollectError("give at least one model (--models NAME,...)")
    wd = str(weights_dir) if weights_dir is not None else None
    _check_models(models, wd, pretrained)
    configs = make_configs(models, hyperparams)
    st = MetaDatasetStore(store)
    state = _store_state(st)
    # Absolute paths: workers (spawned processes, Ray workers) need not share our working directory.
    tasks = [s if isinstance(s, TaskSpec) else TaskSpec.parse(s) for s in specs]
    tasks = [replace(t, path=str(Path(t.path).expanduser().resolve())) for t in tasks]
    if not tasks:
        raise CollectError("give at least one dataset (--datasets PATH[:options],...)")
    jobs: list[Job] = []
    descriptors: dict[str, dict[str, float]] = {}
    n_runs = n_complete = 0
    for spec in tasks:
        spec = spec.with_size(image_size)
        loaded: dict[int, Any] = {}
        for config in configs:
            size = spec.size or training_size(model_info(config.model, wd).input_size, max_image_size)
            if size not in loaded:
                loaded[size] = load_task(spec, size, skip_unreadable=skip_unreadable)  # validates + caches
            data = loaded[size]
            dataset, key = run_identity(data, config, max_epochs, seed, batch_size=batch_size, pretrained=pretrained,
                                        weights_dir=wd)
            descriptors.setdefault(data.name, data.descriptors())
            n_runs += 1
            stored, ended = state.get(key, (set(), False))
            if ended or len(stored) >= max_epochs:
                n_complete += 1
                continue
            jobs.append(Job(spec, config, int(seed), int(max_epochs), dataset, key, int(size),
                            tuple(sorted(stored)), int(batch_size), bool(pretrained)))
        loaded.clear()  # free the tensors: workers read the disk cache
    if write_descriptors:
        _write_descriptors(st, descriptors)
    return Plan(Path(store).resolve(), Path(work_dir).resolve() if work_dir else default_work_dir(store), jobs, n_runs,
                n_complete, descriptors, str(Path(wd).expanduser().resolve()) if wd else None, skip_unreadable)


def _write_descriptors(store: MetaDatasetStore, descriptors: Mapping[str, Mapping[str, float]]) -> None:
    have = store.read_features()
    known = {(r.dataset, r.model, r.name): r.value for r in have.itertuples()} if len(have) else {}
    rows = [
        {"dataset": d, "model": "", "name": n, "value": float(v[n])}
        for d, v in descriptors.items() for n in DATASET_DESCRIPTORS
        if known.get((d, "", n)) != float(v[n])
    ]
    if rows:
        store.append_features(rows)


# ------------------------------------------------------------------------------------------------
# One job (runs in a worker)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobContext:
    store: str
    work_dir: str
    threads: int
    weights_dir: str | None = None
    device: str = "cpu"
    skip_unreadable: bool = False
    cache_dir: str | None = None  # the data cache (the driver's, so workers in other environments share it)


@dataclass
class JobResult:
    run_key: str
    model: str
    dataset: str
    status: str  # ok | diverged
    epochs: list[int]  # newly appended
    seconds: list[float]  # their seconds
    final_acc: float


def _stored_marker(ckpt_dir: Path) -> Path:
    return ckpt_dir / "stored.json"


def run_job(job: Job, ctx: JobContext, emit: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
    """Train `job` to its horizon, appending each epoch's row to the store as it finishes.

    `emit` receives progress events: {"kind": "epoch", "run_key", "epoch", "val_acc", "seconds"}.
    """
    import torch

    from quicktune.data import load_task
    from quicktune.finetune import Finetuner

    torch.set_num_threads(max(1, int(ctx.threads)))
    store = MetaDatasetStore(ctx.store)
    data = load_task(job.spec, job.image_size, skip_unreadable=ctx.skip_unreadable,
                     cache_dir=ctx.cache_dir if ctx.cache_dir is not None else True)
    ckpt_dir = Path(ctx.work_dir) / job.run_key
    ft = Finetuner(data, job.config, job.max_epochs, job.seed, ckpt_dir, batch_size=job.batch_size,
                   num_threads=ctx.threads, weights_dir=ctx.weights_dir, pretrained=job.pretrained,
                   device=ctx.device, keep_model=False, dataset=job.dataset)
    if ft.run_key != job.run_key:  # the plan and the worker must agree on what the run is
        raise RuntimeError(f"run key mismatch for {job.describe()}: planned {job.run_key}, worker {ft.run_key}")
    marker = _stored_marker(ckpt_dir)
    stored = set(job.stored)
    if marker.exists():
        stored |= set(json.loads(marker.read_text()))
    new_epochs: list[int] = []
    new_seconds: list[float] = []

    def mark(epochs: set[int]) -> None:
        tmp = marker.with_name(f".tmp-{os.getpid()}-{marker.name}")
        tmp.write_text(json.dumps(sorted(epochs)))
        os.replace(tmp, marker)

    # Epochs a killed job checkpointed but never appended.
    backlog = [r for r in ft.results if r.epoch not in stored]
    if backlog:
        store.append(ft.rows(backlog))
        stored |= {r.epoch for r in backlog}
        mark(stored)
        for r in backlog:
            new_epochs.append(r.epoch)
            new_seconds.append(r.seconds)
            if emit:
                emit({"kind": "epoch", "run_key": job.run_key, "epoch": r.epoch, "val_acc": r.val_acc,
                      "seconds": r.seconds, "model": job.config.model})

    def on_epoch(r: Any) -> None:
        if r.epoch in stored:  # retrained after a lost checkpoint: the store has this epoch already
            return
        store.append(ft.rows([r]))
        stored.add(r.epoch)
        mark(stored)
        new_epochs.append(r.epoch)
        new_seconds.append(r.seconds)
        if emit:
            emit({"kind": "epoch", "run_key": job.run_key, "epoch": r.epoch, "val_acc": r.val_acc,
                  "seconds": r.seconds, "model": job.config.model})

    ft.train_until(job.max_epochs, on_epoch=on_epoch)
    if ft.finished:
        ft.delete_checkpoint()  # every row is stored; nothing left to continue
    final = ft.results[-1].val_acc if ft.results else math.nan
    return JobResult(job.run_key, job.config.model, job.dataset, ft.status, new_epochs, new_seconds, final)


# -- local process pool ---------------------------------------------------------------------------
_QUEUE: Any = None


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when the collecting process dies (e.g. kill -9),
    so no orphan keeps training and writing."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _init_worker(queue: Any, threads: int, gpu_queue: Any) -> None:
    global _QUEUE
    _die_with_parent()
    _QUEUE = queue
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


def _pool_job(job: Job, ctx: JobContext) -> JobResult:
    return run_job(job, ctx, _QUEUE.put if _QUEUE is not None else None)


def _ray_job(job: Job, ctx: JobContext, queue: Any) -> JobResult:
    return run_job(job, ctx, queue.put)


# ------------------------------------------------------------------------------------------------
# Running a plan
# ------------------------------------------------------------------------------------------------
@dataclass
class CollectSummary:
    n_runs: int
    n_complete_before: int
    n_jobs: int
    epochs_trained: int = 0
    finished: int = 0
    diverged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job description, error)
    seconds_per_epoch: dict[str, list[float]] = field(default_factory=dict)  # model -> seconds
    best: dict[str, float] = field(default_factory=dict)  # task -> best val_acc among new epochs
    wall_seconds: float = 0.0

    def mean_seconds(self) -> dict[str, float]:
        return {m: float(np.mean(v)) for m, v in self.seconds_per_epoch.items() if v}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_collection(
    plan: Plan,
    *,
    workers: int = 1,
    executor: str = "local",
    threads: int | None = None,
    max_retries: int = 2,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> CollectSummary:
    """Run every job of `plan`; `on_event` sees each finished epoch and each job's end
    ({"kind": "job", "result": JobResult} or {"kind": "failed", "job": Job, "error": str})."""
    if executor not in ("local", "ray"):
        raise CollectError(f"the executor must be 'local' or 'ray', but got {executor!r}")
    if workers < 1:
        raise CollectError(f"`workers >= 1` must hold, but got workers={workers}")
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and executor == "local":
        workers = min(workers, gpus) if workers > 1 else 1
    per_job = threads or max(1, available_cores() // workers)
    summary = CollectSummary(plan.n_runs, plan.n_complete, len(plan.jobs))
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    from quicktune.data import default_cache_dir

    ctx = JobContext(str(plan.store), str(plan.work_dir), per_job, plan.weights_dir,
                     "cuda" if gpus else "cpu", plan.skip_unreadable, str(default_cache_dir().resolve()))
    t0 = time.perf_counter()

    def event(ev: dict[str, Any]) -> None:
        if ev["kind"] == "epoch":
            summary.epochs_trained += 1
            summary.seconds_per_epoch.setdefault(ev["model"], []).append(float(ev["seconds"]))
        if on_event is not None:
            on_event(ev)

    def finished(job: Job, result: JobResult | None, error: BaseException | None) -> None:
        if error is not None:
            msg = str(error).splitlines()[0] if str(error) else type(error).__name__
            summary.failed.append((job.describe(), f"{type(error).__name__}: {msg}"))
            if on_event is not None:
                on_event({"kind": "failed", "job": job, "error": msg})
            return
        assert result is not None
        summary.finished += 1
        summary.diverged += result.status == "diverged"
        if not math.isnan(result.final_acc):
            summary.best[result.dataset] = max(summary.best.get(result.dataset, 0.0), result.final_acc)
        if on_event is not None:
            on_event({"kind": "job", "job": job, "result": result})

    if not plan.jobs:
        pass
    elif executor == "ray":
        _run_ray(plan.jobs, ctx, workers, gpus, max_retries, event, finished)
    elif workers == 1:
        for job in plan.jobs:
            try:
                result = run_job(job, ctx, event)
            except Exception as e:  # one broken run must not stop the collection
                finished(job, None, e)
            else:
                finished(job, result, None)
    else:
        _run_pool(plan.jobs, ctx, workers, gpus, event, finished)
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _run_pool(jobs: Sequence[Job], ctx: JobContext, workers: int, gpus: int,
              event: Callable[[dict[str, Any]], None], finished: Callable[..., None]) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    spawn = mp.get_context("spawn")
    events = spawn.Queue()
    gpu_queue = None
    if gpus:
        gpu_queue = spawn.Queue()
        for i in range(workers):
            gpu_queue.put(i % gpus)

    def drain() -> None:
        while True:
            try:
                event(events.get_nowait())
            except queue_mod.Empty:
                return

    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=spawn, initializer=_init_worker,
                             initargs=(events, ctx.threads, gpu_queue)) as pool:
        pending = {pool.submit(_pool_job, job, ctx): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for f in done:
                    job = pending.pop(f)
                    try:
                        finished(job, f.result(), None)
                    except Exception as e:  # includes BrokenProcessPool (a worker was killed)
                        finished(job, None, e)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            time.sleep(0.05)
            drain()


def _run_ray(jobs: Sequence[Job], ctx: JobContext, workers: int, gpus: int, max_retries: int,
             event: Callable[[dict[str, Any]], None], finished: Callable[..., None]) -> None:
    try:
        import ray
        from ray.util.queue import Queue
    except ImportError:
        raise CollectError(
            "the ray executor needs Ray, which is not installed: pip install 'quicktune[ray]' (or use --executor local)"
        ) from None
    started = False
    if not ray.is_initialized():
        # RAY_ADDRESS (if set) joins an existing cluster; otherwise a local one sized to the job.
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if not os.environ.get("RAY_ADDRESS"):
            kw["num_cpus"] = workers * ctx.threads
        ray.init(**kw)
        started = True
    try:
        queue = Queue()
        remote = ray.remote(num_cpus=ctx.threads, num_gpus=1 if gpus else 0, max_retries=max_retries,
                            retry_exceptions=True)(_ray_job)
        refs = {remote.remote(job, ctx, queue): job for job in jobs}

        def drain() -> None:
            n = queue.qsize()
            if n:
                for ev in queue.get_nowait_batch(n):
                    event(ev)

        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
            drain()
            for ref in ready:
                job = refs.pop(ref)
                try:
                    finished(job, ray.get(ref), None)
                except Exception as e:  # RayTaskError wraps the job's own error
                    cause = getattr(e, "cause", None) or e
                    finished(job, None, cause if isinstance(cause, BaseException) else e)
        drain()
        queue.shutdown()
    finally:
        if started:
            ray.shutdown()


__all__ = [
    "CollectError",
    "CollectSummary",
    "Job",
    "JobContext",
    "JobResult",
    "Plan",
    "available_cores",
    "default_work_dir",
    "load_grid",
    "make_configs",
    "plan_collection",
    "run_collection",
    "run_job",
    "sample_hyperparameters",
]
