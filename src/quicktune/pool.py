"""Worker pools that answer trials in parallel: N local processes, or Ray actors on a cluster.

A pool holds `workers` workers, each with its own `Objective` built in the worker by a picklable
`factory()` (e.g. `functools.partial(FinetuneObjective, space, spec, ...)`). `submit(trial)` hands
a trial to a free worker; `wait()` returns the trials that completed, each with its Observation or
the error that ended it. The caller (the parallel search loop) keeps at most `workers` trials in
flight and never submits a config that is already running (the optimizer's pending set).

Workers share nothing but the objective's work dir: every run is checkpointed there after every
epoch, so whichever worker gets a run's next epoch continues from the checkpoint. A worker's
objective must therefore not keep run state in memory between trials (`FinetuneObjective` with
`live_models=0`), and on a cluster the work dir must be a path every node reaches (a shared
filesystem).

- `ProcessPool`: spawned processes on this machine. With GPUs, one worker per GPU
  (`CUDA_VISIBLE_DEVICES` set per worker before torch initialises CUDA); on CPU, `threads` torch
  threads each (the caller splits the cores). Workers die with the parent (Linux
  PR_SET_PDEATHSIG), so a killed search leaves no orphan training and writing.
- `RayPool`: one Ray actor per worker (`num_cpus=threads`, `num_gpus=1` with GPUs: Ray sets
  `CUDA_VISIBLE_DEVICES`), on the cluster at `address` or on a local Ray started for the search
  (and shut down by `close`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quicktune.protocol import Objective, Observation, Trial

ObjectiveFactory = Callable[[], Objective]


class PoolError(RuntimeError):
    """A pool could not be started (e.g. Ray is not installed or the cluster is unreachable)."""


@dataclass(frozen=True)
class Completed:
    """A trial that left its worker: `observation` when it ran, else the `error` that ended it."""

    trial: Trial
    observation: Observation | None = None
    error: str | None = None


class WorkerPool(ABC):
    """`workers` workers answering trials; see the module docstring."""

    workers: int

    @property
    @abstractmethod
    def running(self) -> list[Trial]:
        """The trials submitted and not yet returned by `wait`."""

    @property
    def free(self) -> int:
        return self.workers - len(self.running)

    @abstractmethod
    def submit(self, trial: Trial) -> None:
        """Start `trial` on a free worker (the caller checks `free > 0`)."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Completed]:
        """Block until at least one running trial completes (or `timeout` seconds pass: then
        possibly []); returns every completed trial."""

    @abstractmethod
    def close(self) -> None:
        """Stop the workers (trials still running are abandoned; their checkpoints stay)."""

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


# -- local processes ----------------------------------------------------------------------------
_OBJECTIVE: Objective | None = None


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: workers end when their pipe closes instead
        pass


def _init_process(factory: ObjectiveFactory, threads: int, gpu_queue: Any) -> None:
    global _OBJECTIVE
    _die_with_parent()
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())  # before torch touches CUDA
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _OBJECTIVE = factory()


def _evaluate(trial: Trial) -> Observation:
    assert _OBJECTIVE is not None, "worker not initialised"
    return _OBJECTIVE.evaluate(trial)


class ProcessPool(WorkerPool):
    """`workers` spawned processes on this machine (one per GPU when `gpus` > 0)."""

    def __init__(self, factory: ObjectiveFactory, workers: int, threads: int = 1, gpus: int = 0) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if workers < 1:
            raise ValueError(f"`workers >= 1` must hold, but got {workers=}")
        if gpus and workers > gpus:
            raise ValueError(f"one worker per GPU: `workers <= gpus` must hold, but got {workers=}, {gpus=}")
        self.workers = int(workers)
        ctx = mp.get_context("spawn")  # fork after torch (and its thread pools) is unsafe
        gpu_queue = None
        if gpus:
            gpu_queue = ctx.Queue()
            for i in range(workers):
                gpu_queue.put(i)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_process,
                                         initargs=(factory, max(1, int(threads)), gpu_queue))
        self._futures: dict[Any, Trial] = {}

    @property
    def running(self) -> list[Trial]:
        return list(self._futures.values())

    def submit(self, trial: Trial) -> None:
        self._futures[self._pool.submit(_evaluate, trial)] = trial

    def wait(self, timeout: float | None = None) -> list[Completed]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures

        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            trial = self._futures.pop(f)
            try:
                out.append(Completed(trial, observation=f.result()))
            except Exception as e:  # the run's own error, or BrokenProcessPool (a worker was killed)
                out.append(Completed(trial, error=_one_line(e)))
        return out

    def close(self) -> None:
        for f in self._futures:
            f.cancel()
        self._futures.clear()
        # Do not wait for a running epoch: its checkpoint is the last finished one.
        for p in list(getattr(self._pool, "_processes", {}).values()):
            p.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- Ray ----------------------------------------------------------------------------------------
class _RayWorker:
    """The body of one Ray actor: an objective answering trials."""

    def __init__(self, factory: ObjectiveFactory, threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        self.objective = factory()

    def evaluate(self, trial: Trial) -> Observation:
        return self.objective.evaluate(trial)


class RayPool(WorkerPool):
    """`workers` Ray actors (`threads` CPUs each, one GPU each when `gpus`; None: when the
    cluster has GPUs), on the cluster at `address` (None: $RAY_ADDRESS if set, else a local Ray
    sized to the workers)."""

    def __init__(self, factory: ObjectiveFactory, workers: int, threads: int = 1, gpus: int | None = 0,
                 address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise PoolError("the ray executor needs Ray, which is not installed: pip install 'quicktune[ray]'") from None
        if workers < 1:
            raise ValueError(f"`workers >= 1` must hold, but got {workers=}")
        self.workers = int(workers)
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            address = address or os.environ.get("RAY_ADDRESS") or None
            if address:
                kw["address"] = address
            else:
                kw["num_cpus"] = workers * max(1, int(threads))
                if gpus:
                    kw["num_gpus"] = gpus
            try:
                ray.init(**kw)
            except Exception as e:  # ConnectionError and Ray's own errors for a wrong address
                raise PoolError(f"could not start or join Ray{f' at {address}' if address else ''}: {_one_line(e)}") from None
            self._started = True
        if gpus is None:
            gpus = int(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]  # (unannotated in ray)
        actor = ray.remote(_RayWorker).options(num_cpus=max(1, int(threads)), num_gpus=1 if gpus else 0)
        # Actor handles: Any, as ray's stubs type `.options(...).remote(...)` as the class itself.
        self._actors: list[Any] = [actor.remote(factory, max(1, int(threads))) for _ in range(workers)]
        self._idle = list(self._actors)
        self._refs: dict[Any, tuple[Trial, Any]] = {}

    @property
    def running(self) -> list[Trial]:
        return [t for t, _ in self._refs.values()]

    def submit(self, trial: Trial) -> None:
        actor = self._idle.pop()
        self._refs[actor.evaluate.remote(trial)] = (trial, actor)

    def wait(self, timeout: float | None = None) -> list[Completed]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            trial, actor = self._refs.pop(ref)
            try:
                out.append(Completed(trial, observation=self._ray.get(ref)))
                self._idle.append(actor)
            except Exception as e:  # RayTaskError wraps the run's error; RayActorError: the actor died
                cause = getattr(e, "cause", None)
                out.append(Completed(trial, error=_one_line(cause if isinstance(cause, BaseException) else e)))
                if isinstance(e, self._ray.exceptions.RayActorError):
                    self._ray.kill(actor, no_restart=True)
                    self._actors.remove(actor)
                    self.workers -= 1  # a lost actor is not replaced: the search goes on with fewer
                else:
                    self._idle.append(actor)
        return out

    def close(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self._refs.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_pool(executor: str, factory: ObjectiveFactory, workers: int, threads: int = 1, gpus: int | None = 0,
              address: str | None = None) -> WorkerPool:
    """`executor` "local" (processes; `gpus` None: this machine's) or "ray" (None: the cluster's)."""
    if executor == "local":
        if address:
            raise PoolError(f"a Ray address is only used with the ray executor, but got executor={executor!r}")
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ProcessPool(factory, workers, threads, gpus)
    if executor == "ray":
        return RayPool(factory, workers, threads, gpus, address)
    raise PoolError(f"the executor must be 'local' or 'ray', but got {executor!r}")


def split_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per CPU worker: the cores divided among the workers (at least 1)."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    return max(1, int(cores) // max(1, int(workers)))


__all__ = ["Completed", "PoolError", "ProcessPool", "RayPool", "WorkerPool", "make_pool", "split_threads"]


