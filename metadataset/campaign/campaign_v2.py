"""The CPU collection campaign behind metadataset/v2: v1 plus the dimensions v1 never varied.

metadataset/v1 fine-tuned every run with momentum SGD, a cosine schedule, no warm-up, nothing
frozen and no reference regularisation. v2 starts as a copy of v1 (phase `seed`) and adds, on
the same 21 tasks and 4 models (so v1's domain features hold for every v2 run), the runs that
give the CPU surrogate the new hyperparameters of the fine-tuner:

  optimizer family   SGD without momentum, momentum SGD (v1) and AdamW; for AdamW the lr itself
                     plays the role of the ELR (no momentum rescaling)
  freeze_embedding   the first layer (stem conv / patch embedding) frozen, SGD and AdamW
  sched              step and plateau against v1's cosine, each with and without warm-up
  sp_reg (L2-SP)     reference-based regularisation strength (Li et al. 2018) vs none
  random configs     random points of the whole space (the phase v1 skipped)

plus v1's skipped `momentum-0-mobilenetv2`. Every phase is one resumable `quicktune collect`
call into the same store (kill it and rerun: finished epochs are skipped, a half-trained run
continues from its checkpoint). Phases are ordered by information per CPU-second: the new
dimensions on the two cheap models first (ResNet20 at 32 px ~3 s/epoch, MobileNetV1 x0.25 at
64 px ~1.4 s/epoch), the expensive MobileNetV2s last.

Keep the store and above all the work dir (run checkpoints) OUT of the repository: collect into
a scratch store, then `--phases compact` and copy only the compacted store (runs/ + features/ +
manifest.json, a few hundred KB) into metadataset/v2 (`--phases publish`).

Usage:
    python metadataset/campaign/prepare_data.py --out $QUICKTUNE_DATA
    python metadataset/campaign/campaign_v2.py --data $QUICKTUNE_DATA --weights ../shared/weights \
        --out /scratch/v2-store --work-dir /scratch/v2-work            # all phases, resumable
    python metadataset/campaign/campaign_v2.py ... --phases status            # how far each phase got
    python metadataset/campaign/campaign_v2.py ... --phases compact,publish   # into metadataset/v2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import campaign_v1 as v1  # (the same tasks, models, epochs, batch size and resolution)

REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "metadataset" / "v1"
V2 = REPO / "metadataset" / "v2"
WD = v1.WEIGHT_DECAY
CHEAP, MOBILENETV2 = v1.CHEAP_MODELS, v1.MODELS[2:]
# The reference ELR of each cheap model for the single-dimension contrasts: its best momentum-SGD
# ELR on v1 (README, Li et al. section: ResNet20 0.316 on CIFAR-10 and larger elsewhere,
# MobileNetV1 x0.25 around 0.1). The full sweeps add the other one.
REF_ELR = {"resnet20.cifar10": 0.316, "mobilenetv1_025.coral_in1k": 0.1}
SGD_ELR = (0.1, 0.316)
ADAMW_LR = (1e-4, 1e-3)  # Adam-family: the lr is the effective step size (no momentum rescaling)


def sgd(elr: float, momentum: float = 0.9, **extra: Any) -> dict[str, Any]:
    return {"elr": elr, "weight_decay": WD, "momentum": momentum, **extra}


def adamw(lr: float, **extra: Any) -> dict[str, Any]:
    # weight decay is decoupled in AdamW: the same nominal 1e-4 as SGD's is a much weaker pull.
    return {"elr": lr, "weight_decay": ADAMW_WEIGHT_DECAY, "momentum": 0.9, "optimizer": "adamw", **extra}


def per_model(**extra: Any) -> list[dict[str, Any]]:
    """Momentum SGD at each cheap model's reference ELR, plus `extra` (grid entries naming their model)."""
    return [{**sgd(elr, **extra), "model": m} for m, elr in REF_ELR.items()]


# phase -> (configs, models). The hyperparameter names are the fine-tuner's Config extras
# (/work/coord/FT_API.md, = the Quick-Tune table's column names): optimizer, freeze_embedding,
# sched, warmup_epochs, sp_reg; a config without them is exactly a v1 run. With a 5-epoch horizon
# timm's defaults would never act (step decay_epochs 90, plateau patience 10): set them to fit.
from quicktune.design import ADAMW_WEIGHT_DECAY, COSINE, PLATEAU, STEP  # noqa: E402 (after the sys.path line)
PHASES: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    # First every new dimension once, against v1's run at the same ELR (a campaign cut short
    # still gives the surrogate every dimension): AdamW, plain SGD, frozen embedding, step,
    # plateau, timm cosine with and without warm-up, L2-SP.
    "core": ([adamw(1e-3), *per_model(momentum=0.0), *per_model(freeze_embedding=True), *per_model(**STEP),
              *per_model(**PLATEAU), *per_model(**COSINE), *per_model(**COSINE, warmup_epochs=1),
              *per_model(sp_reg=1e-2)], CHEAP),
    # Kumar et al.: AdamW vs SGD (with and without momentum), then SGD/AdamW with the embedding frozen.
    "optimizer": ([*(adamw(lr) for lr in ADAMW_LR), *(sgd(e, momentum=0.0) for e in SGD_ELR)], CHEAP),
    "freeze-embedding": ([*(sgd(e, freeze_embedding=True) for e in SGD_ELR),
                          adamw(ADAMW_LR[1], freeze_embedding=True)], CHEAP),
    # Schedules with and without warm-up (v1 holds its own cosine without warm-up).
    "schedule": ([sgd(e, **s, warmup_epochs=w) for e in SGD_ELR for s in (STEP, PLATEAU, COSINE)
                  for w in (0, 1)], CHEAP),
    # L2-SP (Li et al. 2018): pull towards the pretrained weights, two strengths.
    "l2sp": ([sgd(e, sp_reg=s) for e in SGD_ELR for s in (1e-2, 1e-1)], CHEAP),
    "momentum-0-mobilenetv2": v1.PHASES["momentum-0-mobilenetv2"],
    "optimizer-mobilenetv2": ([adamw(ADAMW_LR[1]), sgd(0.0316, freeze_embedding=True)], MOBILENETV2),
}
N_RANDOM = 4  # random configs over the whole v2 space, the same for every task and cheap model


def random_configs(n: int, seed: int = 2) -> list[dict[str, Any]]:
    """`n` random points of the v2 space (`quicktune.design.recipe_hyperparameters`: optimizer
    family, ELR / AdamW lr, freeze_embedding, schedule with or without warm-up, sp_reg)."""
    from quicktune.design import recipe_hyperparameters

    return recipe_hyperparameters(n, seed, weight_decay=WD)

DEFAULT_PHASES = ("seed,core,optimizer,freeze-embedding,random,schedule,l2sp,momentum-0-mobilenetv2,"
                  "optimizer-mobilenetv2,compact")


def seed(store_root: Path) -> None:
    """Copy the committed meta-dataset into an empty scratch store: metadataset/v2 when it has been
    published (a later session continues the campaign from there), else v1 (v2 = v1 + new runs)."""
    from quicktune.metadataset.storage import MetaDatasetStore

    store = MetaDatasetStore(store_root)
    if not store.is_empty():
        print(f"seed: {store_root} already holds runs; nothing copied", flush=True)
        return
    source = V2 if (V2 / "manifest.json").is_file() else V1
    src = MetaDatasetStore(source, create=False)
    runs, feats = src.read(), src.read_features()
    store.append(runs)
    store.append_features(feats)
    print(f"seed: copied {runs['run_key'].nunique()} runs ({len(runs)} epochs) and {len(feats)} feature rows "
          f"from {source.relative_to(REPO)}", flush=True)


def collect(args: argparse.Namespace, configs: list[dict[str, Any]], models: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(configs, f)
    v1.collect(args, v1.task_specs(args.data), models, ["--grid", f.name])


def phase_configs(phase: str) -> tuple[list[dict[str, Any]], list[str]]:
    return (random_configs(N_RANDOM), CHEAP) if phase == "random" else PHASES[phase]


def status(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    """Per collection phase: runs planned, complete in the store, and epochs still to train."""
    from quicktune.collect import plan_collection

    out = {}
    for phase in [*PHASES, "random"]:
        configs, models = phase_configs(phase)
        plan = plan_collection(v1.task_specs(args.data), models, configs, v1.EPOCHS, args.out,
                               max_image_size=v1.MAX_IMAGE_SIZE, work_dir=args.work_dir, weights_dir=args.weights,
                               batch_size=v1.BATCH_SIZE, write_descriptors=False)
        out[phase] = {"runs": plan.n_runs, "complete": plan.n_complete, "epochs_to_train": plan.epochs_to_train}
        print(f"status {phase:24s} {plan.n_complete:4d} / {plan.n_runs:4d} runs complete, "
              f"{plan.epochs_to_train:5d} epochs to train", flush=True)
    return out


def publish(store_root: Path, dest: Path) -> None:
    """Copy a compacted store (manifest + one snapshot per kind, nothing else) into `dest`."""
    from quicktune.metadataset.storage import MetaDatasetStore

    store = MetaDatasetStore(store_root, create=False)
    manifest = store.manifest()
    parts = sorted(p.name for kind in ("runs", "features") for p in (store_root / kind).glob("part-*.parquet"))
    if manifest is None or parts:
        raise SystemExit(f"error: compact {store_root} first (manifest: {manifest is not None}, parts: {len(parts)})")
    for kind in ("runs", "features"):
        (dest / kind).mkdir(parents=True, exist_ok=True)
        for old in (dest / kind).glob("*.parquet"):
            old.unlink()
        for snap in (store_root / kind).glob("snapshot-*.parquet"):
            shutil.copy2(snap, dest / kind / snap.name)
    shutil.copy2(store_root / "manifest.json", dest / "manifest.json")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"publish: {dest} ({size / 1e3:.0f} KB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("QUICKTUNE_DATA", Path.home() / ".cache/quicktune/data")))
    ap.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights")
    ap.add_argument("--out", type=Path, required=True, help="the store to collect into (outside the repository)")
    ap.add_argument("--work-dir", type=Path, required=True, help="run checkpoints (outside the repository)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--phases", default=DEFAULT_PHASES)
    args = ap.parse_args(argv)
    for p in (args.out, args.work_dir):
        if p.resolve().is_relative_to(REPO):
            print(f"error: {p} is inside the repository; collect into a scratch folder and `publish`", file=sys.stderr)
            return 2
    missing = [f for f, _ in v1.TASKS if not (args.data / f).exists()]
    phases = args.phases.split(",")
    if missing and set(phases) - {"seed", "seed-v1", "compact", "publish"}:  # status plans runs: it needs the data too
        print(f"error: prepare the data first (prepare_data.py --out {args.data}); missing: {sorted(set(missing))}",
              file=sys.stderr)
        return 2
    for phase in phases:
        t0 = time.perf_counter()
        print(f"== phase {phase}", flush=True)
        if phase in ("seed", "seed-v1"):  # seed-v1: the name of the first session's runs
            seed(args.out)
        elif phase in PHASES or phase == "random":
            collect(args, *phase_configs(phase))
        elif phase == "status":
            status(args)
        elif phase == "compact":
            subprocess.run([sys.executable, "-m", "quicktune.cli", "metadataset", "compact", str(args.out)], check=True)
        elif phase == "publish":
            publish(args.out, V2)
        else:
            print(f"error: unknown phase {phase!r}; known: seed, {', '.join(PHASES)}, random, status, compact, "
                  "publish",
                  file=sys.stderr)
            return 2
        print(f"== phase {phase} done in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
