"""A tiny hand-made directory in the published Quick-Tune meta-dataset format (for tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# run id -> (model, timm optimizer, lr, momentum, weight_decay, sched, opt_betas, batch_size, drop)
TABLE = {
    "11": ("net_a", "sgd", 0.01, 0.9, 1e-4, "cosine", "None", 32, 0.1),  # timm sgd = Nesterov: ELR 0.1
    "12": ("net_b", "momentum", 0.01, 0.5, 0.0, "step", "None", 64, 0.0),  # heavy ball: ELR 0.02
    "13": ("net_a", "adam", 0.001, 0.9, 1e-2, "cosine", "[0.9, 0.999]", 16, 0.2),  # Adam: ELR = lr
    "14": ("net_b", "momentum", 0.05, 0.0, 1e-5, "step", "None", 8, 0.3),  # momentum 0: ELR = lr
    "15": ("net_a", "adamw", 0.002, 0.9, 0.0, "cosine", "None", 8, 0.0),  # in the table, no curve
}
EXPECTED_ELR = {"11": 0.1, "12": 0.02, "13": 0.001, "14": 0.05}
EXPECTED_OPTIMIZER = {"11": "nesterov", "12": "momentum", "13": "adam", "14": "momentum"}

PERF = {
    "d1": {"11": [10.0, 20.0, 30.0], "12": [50.0, None]},  # None: a diverged epoch
    "d2": {"13": [5.0], "14": [1.0, 2.0, 3.0, 4.0], "11": [40.0, 45.0, 50.0]},
}
DESCRIPTORS = {"d1": [1000, 10, 128, 3], "d2": [500, 5, 64, 1], "d3": [1, 2, 3, 4]}


def cost_of(perf: dict) -> dict:
    return {d: {r: [10.0 + i for i in range(len(c))] for r, c in runs.items()} for d, runs in perf.items()}


def table_frame() -> pd.DataFrame:
    models = sorted({v[0] for v in TABLE.values()})
    opts = ["adam", "adamw", "momentum", "sgd"]
    scheds = ["cosine", "step"]
    betas = ["None", "[0.9, 0.999]"]
    rows = {}
    for rid, (m, o, lr, mom, wd, sched, beta, bs, drop) in TABLE.items():
        row = {"batch_size": bs, "drop": drop}
        row |= {f"cat:model:{x}": int(x == m) for x in models}
        row |= {f"cat:opt:{x}": int(x == o) for x in opts}
        row |= {f"cat:opt_betas:{x}": int(x == beta) for x in betas}
        row |= {f"cat:sched:{x}": int(x == sched) for x in scheds}
        row |= {"lr": lr, "momentum": mom, "weight_decay": wd}
        rows[int(rid)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def write_quicktune_dir(
    root: Path,
    table: pd.DataFrame | None = None,
    perf: dict | None = None,
    cost: dict | None = None,
    descriptors: dict | None = None,
    info: dict | None = None,
) -> Path:
    """Write the format: table.csv, curves/perf.json (+ `info`), curves/cost.json, meta/descriptors.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "curves").mkdir(exist_ok=True)
    (root / "meta").mkdir(exist_ok=True)
    (table if table is not None else table_frame()).to_csv(root / "table.csv")
    perf = PERF if perf is None else perf
    info = {"version": "mini", "metric": "Top1 Accuracy in %"} if info is None else info
    (root / "curves" / "perf.json").write_text(json.dumps({**perf, "info": info}))
    (root / "curves" / "cost.json").write_text(json.dumps(cost_of(perf) if cost is None else cost))
    (root / "meta" / "descriptors.json").write_text(json.dumps(DESCRIPTORS if descriptors is None else descriptors))
    return root
