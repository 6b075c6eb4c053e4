"""GPU smoke test: the timm fine-tuning path on CUDA, in this process and in one worker per GPU.

Prints "skipped: no CUDA" and exits 0 where torch sees no GPU (this development machine). With
CUDA: writes a tiny 3-class ImageFolder to a temporary folder, fine-tunes a timm model
(`--model`, randomly initialised: nothing is downloaded) for two epochs on cuda through
`FinetuneObjective`, then answers one trial per GPU on a `ProcessPool` (each worker sees only
its own GPU through CUDA_VISIBLE_DEVICES), and checks every accuracy is finite.

    python benchmarks/gpu_smoke.py [--model resnet18] [--size 64]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tempfile
import time
from pathlib import Path


def tiny_folder(root: Path, size: int, classes: int = 3, per_class: int = 16) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub, n in (("train", per_class), ("val", per_class // 2)):
        for c in range(classes):
            d = root / sub / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            colour = np.full(3, 60.0)
            colour[c % 3] = 230.0
            for i in range(n):
                px = np.clip(colour + rng.normal(0, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px, mode="RGB").save(d / f"{i:03d}.png")
    return root


def _objective(folder: str, model: str, size: int, workdir: str, device: str):
    from quicktune.data import TaskSpec
    from quicktune.objective import FinetuneObjective
    from quicktune.space import Config, SearchSpace

    space = SearchSpace([Config(model, 0.01, 1e-4, 0.9), Config(model, 0.1, 0.0, 0.9)])
    return FinetuneObjective(space, TaskSpec(folder, size=size), 2, workdir, pretrained=False, batch_size=16,
                             device=device, live_models=0)


def _worker_objective(folder: str, model: str, size: int, workdir: str):
    return _objective(folder, model, size, workdir, "cuda")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="a timm model name (built with pretrained=False)")
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return 0
    from quicktune.pool import ProcessPool
    from quicktune.protocol import Trial

    gpus = torch.cuda.device_count()
    with tempfile.TemporaryDirectory(prefix="quicktune-gpu-smoke-") as tmp:
        folder = str(tiny_folder(Path(tmp) / "data", args.size))
        t0 = time.perf_counter()
        obs = _objective(folder, args.model, args.size, str(Path(tmp) / "w1"), "cuda").evaluate(Trial(0, 2))
        print(f"{args.model} on {torch.cuda.get_device_name(0)}: 2 epochs in {time.perf_counter() - t0:.1f}s, "
              f"val accuracy {obs.curve}")
        ok = all(math.isfinite(v) for v in obs.curve)
        factory = functools.partial(_worker_objective, folder, args.model, args.size, str(Path(tmp) / "w2"))
        n = min(gpus, 2)
        with ProcessPool(factory, workers=n, threads=1, gpus=gpus) as pool:
            for i in range(n):
                pool.submit(Trial(i, 1))
            done = []
            while pool.running:
                done += pool.wait(timeout=600)
        for d in done:
            print(f"worker trial {d.trial}: {d.observation.curve if d.observation else d.error}")
            ok = ok and d.observation is not None and all(math.isfinite(v) for v in d.observation.curve)
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
