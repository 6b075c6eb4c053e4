"""Worker pools: N trials at once in separate processes, errors come back, threads are split."""

from functools import partial
from pathlib import Path

import pytest

from quicktune.pool import PoolError, ProcessPool, make_pool, split_threads
from quicktune.protocol import Trial
from tests.parallel.toy import BarrierObjective


def test_two_processes_run_two_trials_at_once_and_report_errors(tmp_path: Path):
    factory = partial(BarrierObjective, str(tmp_path), barrier=2)
    with ProcessPool(factory, workers=2, threads=1) as pool:
        pool.submit(Trial(3, 1))
        pool.submit(Trial(5, 2))
        assert pool.free == 0 and {t.config_id for t in pool.running} == {3, 5}
        done = []
        while pool.running:
            done += pool.wait(timeout=120)
        # Each waited for the other to start (the barrier): they ran at the same time.
        by = {c.trial.config_id: c for c in done}
        assert by[3].observation.curve == (0.03,) and by[5].observation.curve == (0.05, 0.05)
        pids = {(tmp_path / f"{i}.started").read_text().split()[0] for i in (3, 5)}
        assert len(pids) == 2
        assert {(tmp_path / f"{i}.started").read_text().split()[1] for i in (3, 5)} == {"1"}  # threads per worker
        pool.submit(Trial(99, 1))
        (failed,) = pool.wait(timeout=120)
        assert failed.observation is None and failed.error == "ValueError: config 99 always fails"
        assert pool.free == 2


def test_threads_are_split_and_bad_executors_are_refused(tmp_path: Path):
    assert split_threads(2, cores=8) == 4 and split_threads(3, cores=8) == 2 and split_threads(16, cores=8) == 1
    factory = partial(BarrierObjective, str(tmp_path))
    with pytest.raises(PoolError, match="'local' or 'ray', but got 'dask'"):
        make_pool("dask", factory, 2)
    with pytest.raises(PoolError, match="only used with the ray executor"):
        make_pool("local", factory, 2, address="ray://head:10001")
    with pytest.raises(ValueError, match="workers <= gpus"):
        ProcessPool(factory, workers=3, gpus=2)


def test_the_gpu_smoke_script_says_it_skipped_without_cuda(monkeypatch, capsys):
    import importlib.util

    import torch

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_smoke.py"
    spec = importlib.util.spec_from_file_location("gpu_smoke", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main([]) == 0
    assert capsys.readouterr().out == "skipped: no CUDA\n"
