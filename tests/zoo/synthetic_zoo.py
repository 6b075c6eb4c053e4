"""A small synthetic meta-dataset in the published Quick-Tune format over two tiny timm models,
drawn from a conditional grid like Quick-Tune's (betas only for AdamW, decay epochs only for the
step schedule, a smaller batch-size cap for the larger model, an option the fine-tuner cannot run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

# Recorded names are timm architecture names; the zoo maps them to timm's default pretrained tags.
MODELS = ("resnet10t", "mobilenetv3_small_050")
CAP = {"resnet10t": 16, "mobilenetv3_small_050": 64}
DATASETS = {"ds_a": [800, 10, 128, 3], "ds_b": [3000, 40, 128, 3], "ds_c": [1500, 20, 128, 3], "ds_d": [6000, 60, 128, 3]}
EPOCHS = 6


def write_synthetic_zoo(root: Path, runs_per_dataset: int = 36, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows, perf, cost = {}, {}, {}
    rid = 1000
    for di, (d, desc) in enumerate(DATASETS.items()):
        perf[d], cost[d] = {}, {}
        for _ in range(runs_per_dataset):
            m = MODELS[int(rng.integers(2))]
            opt = ["sgd", "adamw"][int(rng.integers(2))]
            sched = ["cosine", "step"][int(rng.integers(2))]
            lr = float(rng.choice([1e-4, 1e-3, 1e-2]))
            bs = int(rng.choice([b for b in (8, 16, 32, 64) if b <= CAP[m]]))
            row = {"batch_size": bs, "bss_reg": float(rng.choice([0.0, 0.01])), "lr": lr,
                   "momentum": 0.9, "weight_decay": float(rng.choice([0.0, 1e-4])),
                   "decay_epochs": float(rng.choice([2.0, 4.0])) if sched == "step" else 90.0}
            row |= {f"cat:model:{x}": int(x == m) for x in MODELS}
            row |= {f"cat:opt:{x}": int(x == opt) for x in ("adamw", "sgd")}
            beta = str(rng.choice(["[0.9, 0.999]", "[0.0, 0.99]"])) if opt == "adamw" else "None"
            row |= {f"cat:opt_betas:{x}": int(x == beta) for x in ("None", "[0.0, 0.99]", "[0.9, 0.999]")}
            row |= {f"cat:sched:{x}": int(x == sched) for x in ("cosine", "step")}
            rows[rid] = row
            # Larger datasets and the larger model do better; lr 1e-3 is best; curves rise.
            final = 40 + 8 * di + (10 if m == "resnet10t" else 0) - 15 * abs(np.log10(lr) + 3) + rng.normal(0, 2)
            perf[d][str(rid)] = [float(np.clip(final * (1 - np.exp(-0.7 * t)), 0, 100)) for t in range(1, EPOCHS + 1)]
            cost[d][str(rid)] = [float((30 if m == "resnet10t" else 10) * desc[0] / 1000) for _ in range(EPOCHS)]
            rid += 1
    root.mkdir(parents=True, exist_ok=True)
    (root / "curves").mkdir(exist_ok=True)
    (root / "meta").mkdir(exist_ok=True)
    pd.DataFrame.from_dict(rows, orient="index").to_csv(root / "table.csv")
    (root / "curves" / "perf.json").write_text(json.dumps({**perf, "info": {"version": "synthetic"}}))
    (root / "curves" / "cost.json").write_text(json.dumps(cost))
    (root / "meta" / "descriptors.json").write_text(json.dumps(DATASETS))
    return root
