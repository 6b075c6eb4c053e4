"""Running the plan's jobs: in this process, a process pool or Ray."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quicktune.collect.features import collect_features
from quicktune.collect.job import JobContext, JobResult, run_job
from quicktune.collect.plan import CollectError, Job, Plan
from quicktune.metadataset.schema import DEFAULT_FEATURE_SETTINGS, FeatureSettings

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
    features: int = 0  # (model, task) pairs whose domain features were computed


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
    features: bool = True,
    feature_settings: FeatureSettings = DEFAULT_FEATURE_SETTINGS,
) -> CollectSummary:
    """Run every job of `plan`, then (features=True) compute the domain features of every
    (model, task) the store lacks (`collect_features`). `on_event` sees each finished epoch, each
    job's end ({"kind": "job", "result": JobResult} or {"kind": "failed", "job": Job, "error": str})
    and each features computation ({"kind": "features", ...})."""
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
    if features:
        summary.features = collect_features(plan, feature_settings, on_event)
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
