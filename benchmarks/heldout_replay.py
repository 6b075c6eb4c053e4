"""The replay benchmark's second number: the selected config's held-out-epoch accuracy.

Runs `quicktune benchmark` on the embedded meta-dataset (the README's main job, with 3 seeds
instead of 5 to save CPU) and writes its outputs to benchmarks/results/heldout_replay/: besides the
regret, `benchmark_runs.csv` holds each job's selected (config, epoch), its validation accuracy and
its held-out-epoch accuracy (`quicktune.benchmark.heldout`: the recorded accuracy of the selected
config at the epoch after the selected one, or before it at the recording's last epoch), and
`benchmark_summary.json` ("heldout_epoch") their means over datasets with 95% bootstrap CIs.
The per-fold surrogates are cached outside the repo (the cache of benchmarks/stop_rule.py: same
folds and settings).

    python benchmarks/heldout_replay.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    out = REPO / "benchmarks" / "results" / "heldout_replay"
    cache = Path.home() / ".cache" / "quicktune" / "bench-stop-rule" / "v1"
    sys.exit(subprocess.call([
        sys.executable, "-m", "quicktune.cli", "benchmark", "--budget", "16m", "--report-at", "1m,4m,16m",
        "--methods", "random,grid,hyperband,quicktune", "--seeds", "3", "--out", str(out), "--cache-dir", str(cache),
    ]))
