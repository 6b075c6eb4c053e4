"""The README's main job: the replay benchmark on the embedded meta-dataset metadataset/v1.

Runs exactly `quicktune benchmark --budget 16m --report-at 1m,4m,16m --methods
random,grid,hyperband,quicktune --seeds 5` (leave-datasets-out, 5 folds; the quicktune surrogate
of each fold is meta-trained on the other folds' tasks) and writes its CSVs, JSON and PNG to
benchmarks/results/v1_replay/ (the per-fold surrogates go to a cache directory outside the repo).
About 8 minutes on one core. `--metadataset v2` runs the same command on metadataset/v2 (v1 plus
the optimizer, schedule, frozen-embedding and L2-SP runs) into benchmarks/results/v2_replay/.

    python benchmarks/v1_replay.py [--metadataset v1|v2] [--workers N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--metadataset", choices=("v1", "v2"), default="v1")
    ap.add_argument("--workers", type=int, default=1, help="jobs replayed at once (the results do not depend on it)")
    args = ap.parse_args()
    name = args.metadataset
    out = REPO / "benchmarks" / "results" / f"{name}_replay"
    # v1 is the command's default meta-dataset; v2 is named explicitly
    store = [] if name == "v1" else ["--metadataset", str(REPO / "metadataset" / name)]
    with tempfile.TemporaryDirectory() as cache:
        sys.exit(subprocess.call([
            sys.executable, "-m", "quicktune.cli", "benchmark", *store, "--budget", "16m", "--report-at", "1m,4m,16m",
            "--methods", "random,grid,hyperband,quicktune", "--seeds", "5", "--out", str(out), "--cache-dir", cache,
            "--workers", str(args.workers),
        ]))
