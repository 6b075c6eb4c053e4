"""The CPU collection campaign behind the embedded meta-dataset metadataset/v1.

Real pretrained models (../shared/weights: CIFAR-10 ResNet, ImageNet MobileNets) fine-tuned on
21 small real tasks (CIFAR-10, Fashion-MNIST, MNIST-5k, Animal-MNIST, digits, Omniglot alphabets
and tasks derived from them: class subsets, fewer shots, other resolutions), epoch by epoch, on
this 2-core CPU. Every phase is one `quicktune collect` call into the same store, so the campaign
is resumable at any point: run this script again and it continues where it stopped (finished
epochs are never retrained; a half-trained run continues from its checkpoint).

Phases (most important information first, so a campaign cut short is still useful):
  1. ELR sweep at momentum 0.9 (5 values, half-decade steps, 3.16e-3 .. 0.316), weight decay
     1e-4, every model
  1b. the sweep extended to ELR 1 and 3.16 for the two cheaper models (ResNet20 was best at the
     top edge, 0.316, on every task)
  2. momentum 0 at ELR 0.01 and 0.0316 (the two cheaper models): with phase 1 this gives Li et
     al.'s comparisons at equal ELR (0.01, 0.0316) and at equal lr (lr 0.01: m=0 ELR 0.01 vs
     m=0.9 ELR 0.1; lr 0.0316: m=0 ELR 0.0316 vs m=0.9 ELR 0.316)
  3. random configs (ELR, weight decay, momentum) for coverage of the whole space (cheaper models)
  4. phase 2 for the MobileNetV2s
  5. domain features (EMD similarity, LogME, LEEP) per (model, task), then compaction

Sizing (measured on this 2-core machine with other work running, seconds per epoch): ResNet20 at
32 px ~3.5 s, MobileNetV1 x0.25 at 64 px ~1.4 s, MobileNetV2 at 64 px ~7.6 s, on tasks of <= 500
training and <= 300 validation images: ~9,000 CPU-seconds in all, ~1.5 h on 2 workers.

Usage (reproduce from scratch on a machine with the development data):
    python metadataset/campaign/prepare_data.py --out $QUICKTUNE_DATA
    python metadataset/campaign/campaign_v1.py --data $QUICKTUNE_DATA --weights ../shared/weights
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

REPO = Path(__file__).resolve().parents[2]

# (folder under --data, options). 21 tasks; vshots caps validation at 30 images a class (cheaper
# evaluation after every epoch).
TASKS = [
    ("cifar10-small", "shots=50,vshots=30"),
    ("cifar10-small", "classes=5,shots=50,vshots=30"),
    ("cifar10-small", "classes=2,shots=50,vshots=30,seed=1"),
    ("cifar10-small", "shots=20,vshots=30,seed=1"),
    ("cifar10-small", "classes=5,shots=50,vshots=30,size=48,seed=2"),
    ("fashion-mnist", "shots=50,vshots=30"),
    ("fashion-mnist", "classes=5,shots=20,vshots=30"),
    ("mnist-5k", "shots=50,vshots=30"),
    ("mnist-5k", "shots=10,vshots=30"),
    ("mnist-5k", "shots=50,vshots=30,size=16,seed=1"),
    ("animal-mnist", "shots=50,vshots=30"),
    ("animal-mnist", "classes=5,shots=50,vshots=30"),
    ("digits", "shots=50,vshots=30"),
    ("omniglot-1-balinese", ""),
    ("omniglot-1-earlyaramaic", ""),
    ("omniglot-1-korean", ""),
    ("omniglot-1-latin", ""),
    ("omniglot-2-greek", ""),
    ("omniglot-2-japanesekatakana", ""),
    ("omniglot-2-sanskrit", ""),
    ("omniglot-2-tagalog", ""),
]
# Three source domains: CIFAR-10 (ResNet20), ImageNet (MobileNetV1 x0.25, MobileNetV2) and
# iNaturalist insects (MobileNetV2).
MODELS = ["resnet20.cifar10", "mobilenetv1_025.coral_in1k", "mobilenetv2_100.coral_in1k",
          "mobilenetv2_100.coral_inat_insects"]
CHEAP_MODELS = MODELS[:2]  # MobileNetV2 costs ~2x the other two together: fewer configs for it
EPOCHS = 5
BATCH_SIZE = 32
MAX_IMAGE_SIZE = 64  # each model trains at its input size capped at 64 px (ResNet: 32, MobileNets: 64)
WEIGHT_DECAY = 1e-4
ELR_SWEEP = [3.16e-3, 1e-2, 3.16e-2, 1e-1, 3.16e-1]
PHASES = {  # phase -> (configs, models)
    "elr-sweep": ([{"elr": e, "weight_decay": WEIGHT_DECAY, "momentum": 0.9} for e in ELR_SWEEP], MODELS),
    # ResNet20 (and MobileNetV1 x0.25 on some tasks) were best at the sweep's top edge: extend it.
    "elr-sweep-high": ([{"elr": e, "weight_decay": WEIGHT_DECAY, "momentum": 0.9} for e in (1.0, 3.16)], CHEAP_MODELS),
    "momentum-0": ([{"elr": e, "weight_decay": WEIGHT_DECAY, "momentum": 0.0} for e in (1e-2, 3.16e-2)], CHEAP_MODELS),
    "momentum-0-mobilenetv2": (
        [{"elr": e, "weight_decay": WEIGHT_DECAY, "momentum": 0.0} for e in (1e-2, 3.16e-2)], MODELS[2:]),
}
N_RANDOM = 2


def task_specs(data: Path) -> list[str]:
    return [str(data / folder) + (f":{opts}" if opts else "") for folder, opts in TASKS]


def collect(args: argparse.Namespace, specs: list[str], models: list[str], extra: list[str]) -> None:
    cmd = [
        sys.executable, "-m", "quicktune.cli", "collect",
        "--datasets", ",".join(specs), "--models", ",".join(models), "--epochs", str(EPOCHS),
        "--batch-size", str(BATCH_SIZE), "--max-image-size", str(MAX_IMAGE_SIZE),
        "--weights-dir", str(args.weights), "--workers", str(args.workers), "--threads", "1",
        "--out", str(args.out), "--work-dir", str(args.work_dir), *extra,
    ]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def domain_features(args: argparse.Namespace, specs: list[str]) -> None:
    """EMD similarity / LogME / LEEP for every (model, task), at the resolution each model trains at."""
    from quicktune.collect import training_size
    from quicktune.data import TaskSpec, load_task
    from quicktune.features import domain_features as compute
    from quicktune.features import features_to_rows
    from quicktune.hub import model_info
    from quicktune.metadataset.storage import MetaDatasetStore

    store = MetaDatasetStore(args.out)
    have = store.read_features()
    done = set(zip(have["dataset"], have["model"])) if len(have) else set()
    for text in specs:
        spec = TaskSpec.parse(text)
        for model in MODELS:
            if (spec.task_name, model) in done:
                continue
            size = spec.size or training_size(model_info(model, str(args.weights)).input_size, MAX_IMAGE_SIZE)
            data = load_task(spec, size)
            t0 = time.perf_counter()
            feats = compute(model, data, weights_dir=str(args.weights), n_samples=500, seed=0, image_size=size)
            store.append_features(features_to_rows(spec.task_name, model, feats))
            print(f"features {spec.task_name:45s} {model:30s} {time.perf_counter() - t0:6.1f}s "
                  + " ".join(f"{k}={v:.3g}" for k, v in feats.items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("QUICKTUNE_DATA", Path.home() / ".cache/quicktune/data")))
    ap.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights")
    ap.add_argument("--out", type=Path, default=REPO / "metadataset" / "v1")
    ap.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "quicktune" / "campaign-v1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phases", default="elr-sweep,elr-sweep-high,momentum-0,random,momentum-0-mobilenetv2,features,compact")
    args = ap.parse_args(argv)
    missing = [f for f, _ in TASKS if not (args.data / f).exists()]
    if missing:
        print(f"error: prepare the data first (prepare_data.py --out {args.data}); missing: {sorted(set(missing))}",
              file=sys.stderr)
        return 2
    specs = task_specs(args.data)
    for phase in args.phases.split(","):
        t0 = time.perf_counter()
        print(f"== phase {phase}", flush=True)
        if phase in PHASES:
            configs, models = PHASES[phase]
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(configs, f)
            collect(args, specs, models, ["--grid", f.name])
        elif phase == "random":
            collect(args, specs, CHEAP_MODELS, ["--configs", str(N_RANDOM), "--seed", "0"])
        elif phase == "features":
            domain_features(args, specs)
        elif phase == "compact":
            subprocess.run([sys.executable, "-m", "quicktune.cli", "metadataset", "compact", str(args.out)], check=True)
        else:
            print(f"error: unknown phase {phase!r}", file=sys.stderr)
            return 2
        print(f"== phase {phase} done in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
