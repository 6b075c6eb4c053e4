"""How long a timed `quicktune suggest --budget B` really takes, measured from outside.

The budget is wall-clock from the user's point of view (issue 8 item 5): from pressing Enter to
the prompt coming back. For each budget this starts the real command in a fresh work dir (warm
feature/data caches after the first run, as a user's second search would have), times it from
outside with `time.perf_counter()`, and records the search's own clock, the set-up share, the
reserve kept for the shut-down and the measured shut-down. Writes
benchmarks/results/suggest_wallclock.json.

    python benchmarks/suggest_wallclock.py [--data PATH:shots=20,classes=3] [--budgets 20,40] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUICKTUNE_SHARED", REPO.parent / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=f"{SHARED / 'data' / 'cifar10-small'}:classes=3,shots=20")
    ap.add_argument("--weights-dir", default=str(SHARED / "weights"))
    ap.add_argument("--models", default="resnet20.cifar10")
    ap.add_argument("--budgets", default="20,40")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "suggest_wallclock.json"))
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["QUICKTUNE_CACHE"] = str(Path(tmp) / "cache")
        for rep in range(a.repeats):
            for b in [float(x) for x in a.budgets.split(",")]:
                wd = Path(tmp) / f"work-{rep}-{b:g}"
                cmd = [sys.executable, "-m", "quicktune.cli", "suggest", "--data", a.data, "--budget", f"{b:g}s",
                       "--models", a.models, "--weights-dir", a.weights_dir, "--workdir", str(wd), "--threads", "1",
                       "--json"]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if p.returncode != 0:
                    raise SystemExit(f"suggest failed ({p.returncode}): {p.stderr[-2000:]}")
                rep_json = json.loads(p.stdout)
                first_step = rep_json["step_log"][0] if rep_json["step_log"] else None
                rows.append({
                    "budget_seconds": b, "repeat": rep, "wall_seconds": wall, "over_budget_seconds": wall - b,
                    "search_elapsed_seconds": rep_json["elapsed_seconds"], "epochs": rep_json["epochs_trained"],
                    "stop_reason": rep_json["stop_reason"], "reserve_seconds": rep_json.get("reserve_seconds"),
                    "shutdown_seconds": rep_json.get("shutdown_seconds"),
                    "setup_seconds": (first_step["elapsed"] - first_step["seconds"]) if first_step else None,
                })
                print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    doc = {"data": a.data, "models": a.models, "machine": f"{os.cpu_count()} cores, load average {load[0]:.1f}",
           "note": "wall_seconds is timed from outside: process start to exit", "runs": rows}
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
