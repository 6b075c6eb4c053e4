"""The replay benchmark: recorded curves answer trials (replay.py), experiments run methods under
a simulated wall-clock budget and measure normalized regret (folds.py, loop.py, stats.py, outputs.py;
experiment.py re-exports them), methods are looked up
by name (methods.py), results are plotted (plots.py)."""

from quicktune.benchmark.experiment import (
    REPORT_TIMES,
    BenchmarkResult,
    RunResult,
    aggregate,
    make_folds,
    run_benchmark,
    run_experiment,
    summarize,
    write_outputs,
)
from quicktune.benchmark.methods import METHODS, FoldContext, Method, MethodContext, get_method, register_method
from quicktune.benchmark.replay import ReplayObjective

__all__ = [
    "METHODS",
    "REPORT_TIMES",
    "BenchmarkResult",
    "FoldContext",
    "Method",
    "MethodContext",
    "ReplayObjective",
    "RunResult",
    "aggregate",
    "get_method",
    "make_folds",
    "register_method",
    "run_benchmark",
    "run_experiment",
    "summarize",
    "write_outputs",
]
