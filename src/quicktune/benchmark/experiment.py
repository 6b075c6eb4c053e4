"""Replay experiments: run methods on recorded datasets under a simulated wall-clock budget and
measure normalized regret over time.

One job is (method, dataset, seed). The clock is the recorded compute the method spends: the
loop asks, the replay objective answers and charges the recorded seconds of the newly trained
epochs, the optimizer is told; it stops when the clock passes the budget or `ask()` returns None.
The trajectory holds the incumbent (best finite validation accuracy seen so far, at any epoch)
after *every* epoch, stamped with the clock at the end of that epoch, so a trial of several epochs
advances the clock epoch by epoch, as a user watching the search would see it. The optimizer's
own wall time (ask + tell, per step) is measured separately and never charged to the clock.

Normalized regret = (best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset)
(`TaskCurves.regret`), 1 before the first observation; it is read off the trajectory on a
log-spaced time grid that includes the report times (1 h, 4 h, 16 h) within the budget.

Leave-datasets-out: the table's datasets (all of them, sorted, so a `datasets=` subset keeps the
same folds) are dealt round-robin into k folds; a job on a dataset of fold f gets a `FoldContext`
whose `train` table holds only the other folds' datasets (meta-learned methods train on it;
baselines ignore it).

Outputs (`write_outputs`): the long CSV (method, dataset, fold, seed, time_s, regret), a per-job
CSV, a summary CSV + JSON (mean regret and a 95% bootstrap CI per method at the report times, per
dataset and averaged over datasets, plus the median optimizer overhead per step) and the plots.
"""

from quicktune.benchmark.folds import (  # noqa: F401
    fold_contexts,
    make_folds,
    restrict_table,
)
from quicktune.benchmark.loop import (  # noqa: F401
    _WORKER,
    RunResult,
    _init_worker,
    _prepare_job,
    _run_job,
    run_benchmark,
    run_experiment,
)
from quicktune.benchmark.outputs import (  # noqa: F401
    write_outputs,
)
from quicktune.benchmark.stats import (  # noqa: F401
    ALL,
    LONG_COLUMNS,
    REPORT_TIMES,
    BenchmarkResult,
    aggregate,
    report_times,
    summarize,
    time_grid,
)
from quicktune.durations import format_duration  # noqa: F401

__all__ = [
    "ALL",
    "BenchmarkResult",
    "LONG_COLUMNS",
    "REPORT_TIMES",
    "RunResult",
    "aggregate",
    "fold_contexts",
    "format_duration",
    "make_folds",
    "report_times",
    "restrict_table",
    "run_benchmark",
    "run_experiment",
    "summarize",
    "time_grid",
    "write_outputs",
]
