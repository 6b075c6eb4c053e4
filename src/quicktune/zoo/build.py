"""Build the shipped Quick-Tune surrogate: meta-train on every dataset of a Quick-Tune-format
meta-dataset, and attach the zoo (models, aliases, facts, recorded space) to the checkpoint.

    python -m quicktune.zoo.build ../shared/data/quicktune-extended --out src/quicktune/assets/surrogate_quicktune.pt

Models are renamed to their current timm names before meta-training, so the surrogate's model
embedding speaks the names a user types and timm creates; the recorded names stay as aliases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from quicktune.zoo.quicktune import (
    ZOO_NAME,
    Zoo,
    model_facts,
    timm_name,
    unsupported_off_values,
)
from quicktune.zoo.recorded_space import RecordedSpace


def build_quicktune_surrogate(source: str | Path, *, steps: int = 4000, seed: int = 0, datasets: list[str] | None = None,
                              progress: bool = False) -> Any:
    """A meta-trained surrogate with `info["zoo"]` set (see `Zoo`). datasets: restrict to these
    (default: all; the benchmark of zero-shot quality passes each fold's training datasets)."""
    from quicktune.metadataset import load_rows
    from quicktune.metadataset.tabular import CurveTable
    from quicktune.surrogate.fit import meta_train

    runs, features = load_rows(Path(source))
    names = {r: timm_name(r) for r in sorted(runs["model"].unique())}
    runs = runs.assign(model=runs["model"].map(names))
    table = CurveTable(runs, features)
    use = list(datasets) if datasets is not None else list(table.datasets)
    # Every dataset is trained on (no validation split): the shipped surrogate should know them all;
    # the zero-shot quality benchmark measures it on held-out datasets instead.
    result = meta_train(table, steps=steps, seed=seed, datasets=use, val_fraction=0.0, progress=progress)
    configs = [c for d in use for c in table.task(d).configs]
    space = RecordedSpace.derive(configs, fixed=unsupported_off_values())
    models = sorted(set(names.values()))
    zoo = Zoo(ZOO_NAME, models, {r: t for r, t in names.items() if r != t}, {m: model_facts(m) for m in models},
              space, table.max_epochs,
              info={"datasets": use, "runs": int(sum(table.task(d).n_runs for d in use)), "source": Path(source).name})
    surrogate = result.surrogate
    surrogate.info["zoo"] = zoo.to_dict()
    surrogate.info["metadataset"] = Path(source).name
    return surrogate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a Quick-Tune-format meta-dataset folder (table.csv, curves/, meta/)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    s = build_quicktune_surrogate(a.source, steps=a.steps, seed=a.seed, progress=sys.stderr.isatty())
    path = s.save(a.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB): {len(s.info['zoo']['models'])} models, "
          f"{s.info['zoo']['info']['runs']} runs, {s.info['seconds']:.0f} s of meta-training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
