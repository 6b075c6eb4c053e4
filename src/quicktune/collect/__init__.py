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
store: checkpoints are large; the default work dir belongs to one store, see `default_work_dir`)
and appends each epoch's row atomically. What is stored is always read from the store itself. A rerun skips complete
runs and continues partial ones from their checkpoint; a run whose checkpoint is gone is
retrained (deterministically, so it reproduces the stored epochs) and only new epochs are
appended. Epochs that a killed job checkpointed but had not yet appended are appended on the
rerun. A finished run's checkpoint is deleted once its rows are stored. Each run trains under an
exclusive per-run lock, so two collects on one store (at once or not) train every run once.
"""

from quicktune.collect.executors import (  # noqa: F401
    _QUEUE,
    CollectSummary,
    _die_with_parent,
    _init_worker,
    _pool_job,
    _ray_job,
    _run_pool,
    _run_ray,
    available_cores,
    run_collection,
)
from quicktune.collect.features import FeatureJob, collect_features, missing_features  # noqa: F401
from quicktune.collect.job import (  # noqa: F401
    JobContext,
    JobResult,
    run_lock_path,
    run_job,
)
from quicktune.collect.plan import (  # noqa: F401
    ELR_RANGE,
    MOMENTA,
    P_ZERO_WEIGHT_DECAY,
    TERMINAL_STATUSES,
    WEIGHT_DECAY_RANGE,
    CollectError,
    Job,
    Plan,
    _check_models,
    _store_state,
    _write_descriptors,
    default_work_dir,
    load_grid,
    make_configs,
    plan_collection,
    sample_hyperparameters,
    training_size,
)

__all__ = [
    "CollectError",
    "CollectSummary",
    "FeatureJob",
    "Job",
    "JobContext",
    "JobResult",
    "Plan",
    "available_cores",
    "collect_features",
    "default_work_dir",
    "load_grid",
    "make_configs",
    "plan_collection",
    "run_collection",
    "run_job",
    "sample_hyperparameters",
]
