"""The README's main job: the replay benchmark on the embedded meta-dataset metadataset/v1.

Runs exactly `quicktune benchmark --budget 16m --report-at 1m,4m,16m --methods
random,grid,hyperband,quicktune --seeds 5` (leave-datasets-out, 5 folds; the quicktune surrogate
of each fold is meta-trained on the other folds' tasks) and writes its CSVs, JSON and PNG to
benchmarks/results/v1_replay/ (the per-fold surrogates go to a cache directory outside the repo).
About 8 minutes on one core.

    python benchmarks/v1_replay.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    out = REPO / "benchmarks" / "results" / "v1_replay"
    with tempfile.TemporaryDirectory() as cache:
        sys.exit(subprocess.call([
            sys.executable, "-m", "quicktune.cli", "benchmark", "--budget", "16m", "--report-at", "1m,4m,16m",
            "--methods", "random,grid,hyperband,quicktune", "--seeds", "5", "--out", str(out), "--cache-dir", cache,
        ]))
