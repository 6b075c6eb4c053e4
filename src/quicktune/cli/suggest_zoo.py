"""`quicktune suggest --zoo quicktune`: the zero-shot ranking over the Quick-Tune timm zoo
(no weights, no network), rendered as a table or JSON. Called by `suggest_cmd`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from quicktune.cli._common import fail

if TYPE_CHECKING:
    from quicktune.space import Config
    from quicktune.surrogate.gp import Surrogate

ZOOS = ("quicktune", "local")


def choose_zoo(zoo: str | None, weights_dir: Path | None, surrogate: str | Path | None) -> str:
    """The zoo to use: the one named, else "local" when the user points at local weights or a
    surrogate of their own (what they asked for by giving them), else "quicktune"."""
    import os

    if zoo is not None:
        z = zoo.strip().lower()
        if z not in ZOOS:
            fail(f"--zoo must be one of {', '.join(ZOOS)}, but got {zoo!r}")
        return z
    if weights_dir is not None or surrogate is not None or os.environ.get("QUICKTUNE_WEIGHTS"):
        return "local"
    return "quicktune"


def load_zoo_surrogate(surrogate: str | Path | None) -> Surrogate:
    from quicktune import suggest as qs
    from quicktune.zoo import Zoo

    try:
        sur = qs.load_surrogate(str(surrogate) if surrogate is not None else "quicktune")
    except qs.SuggestError as e:
        fail(str(e))
    if Zoo.from_surrogate(sur) is None:
        fail(f"--surrogate {surrogate}: carries no model zoo; --zoo quicktune needs a surrogate built by "
             f"`python -m quicktune.zoo.build` (default: the shipped one)")
    return sur


def search_setup(*, surrogate: str | Path | None, models: str | None, weights_dir: Path | None, candidates: int, seed: int,
                 epochs: int | None) -> tuple[Surrogate, list[str], list[Config], int]:
    """(surrogate, models, candidate configs, epoch horizon) of a timed search over the zoo. With
    --weights-dir (offline) only the zoo models with a local timm weights file there take part;
    without it every model does, its weights coming from the Hugging Face hub through timm."""
    from quicktune import hub
    from quicktune.zoo import Zoo

    sur = load_zoo_surrogate(surrogate)
    zoo = Zoo.from_surrogate(sur)
    assert zoo is not None  # (load_zoo_surrogate refused a surrogate without one)
    try:
        names = zoo.resolve(models.split(",") if models is not None else None)
    except ValueError as e:
        fail(str(e))
    if weights_dir is not None:
        local = set(hub.list_models(weights_dir))
        names = [m for m in names if m in local or hub.timm_weights_file(m, weights_dir) is not None]
        if not names:
            fail(f"--weights-dir {weights_dir}: holds no weights of the {zoo.name} zoo's models; offline, put a timm state "
                 f"dict named after the model there (e.g. {weights_dir / zoo.models[0]}.safetensors), or leave out "
                 f"--weights-dir to let timm download them from the Hugging Face hub")
    horizon = int(epochs or zoo.max_epochs)
    if candidates < 1:
        fail(f"`--candidates >= 1` must hold, but got {candidates}")
    return sur, names, zoo.candidates(names, candidates, seed), horizon


def zero_shot_zoo(*, data: str, surrogate: str | Path | None, models: str | None, candidates: int, seed: int,
                  epochs: int | None, top: int, as_json: bool, clock: float) -> None:
    import time

    from rich.console import Console
    from rich.table import Table

    from quicktune import suggest as qs
    from quicktune.data import DataError
    from quicktune.report import to_json
    from quicktune.suggest.zoo_ranking import rank_zoo

    sur = load_zoo_surrogate(surrogate)
    try:
        ranking = rank_zoo(sur, data, models=models.split(",") if models is not None else None,
                           candidates=candidates, seed=seed, epochs=epochs)
    except (qs.SuggestError, DataError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"{e.filename or data}: {e.strerror}")
    zoo, preds = ranking.zoo, ranking.predictions
    rows = [ranking.row(p, i + 1) for i, p in enumerate(preds[:top])]
    seconds = time.perf_counter() - clock
    if as_json:
        print(to_json({
            "data": data, "zoo": zoo.name, "surrogate": str(surrogate) if surrogate else "quicktune",
            "epochs": ranking.epochs, "meta_dataset_horizon": zoo.max_epochs, "descriptors": ranking.descriptors,
            "candidates": len(preds), "models": sorted({p.config.model for p in preds}), "seconds": seconds,
            "cost_unit": zoo.cost_unit, "attribution": zoo.attribution, "ranking": rows,
        }))
        return
    out = Console()
    d = ranking.descriptors
    table = Table(title=f"zero-shot ranking over the {zoo.name} zoo: top {len(rows)} of {len(preds)} candidates "
                        f"({len({p.config.model for p in preds})} models), {ranking.epochs} epochs each",
                  show_edge=False, title_justify="left", caption_justify="left",
                  caption=f"pred. acc: mean ± std after {ranking.epochs} of the meta-dataset's {zoo.max_epochs}-epoch "
                          f"schedule; cost: {zoo.cost_unit}")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("model", overflow="fold", min_width=16)
    for name in ("optimizer, lr", "batch", "pred. acc", "95% interval", "GPU-h"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        hp = r["hyperparameters"]
        lo, hi = r["interval_95"]
        table.add_row(str(r["rank"]), r["model"], f"{hp['optimizer']} {hp['lr']:.2g}", str(hp.get("batch_size", "-")),
                      f"{r['predicted_accuracy']:.3f}±{r['predicted_accuracy_std']:.3f}", f"[{lo:.2f}, {hi:.2f}]",
                      f"{r['predicted_cost'] / 3600:.2f}")
    out.print(table)
    for r in rows[:3]:
        out.print(f"#{r['rank']} as timm train.py flags: " + shlex.join(["python", "train.py", "--data-dir", data,
                                                                          *r["timm_train_flags"].split()])
                  + (f"  (quicktune only: {r['quicktune_only']})" if r["quicktune_only"] else ""),
                  highlight=False, soft_wrap=True)
    out.print(f"ranked in {seconds:.1f}s with no weights and no training, from the dataset descriptors "
              f"({int(d['n_samples'])} images, {int(d['n_classes'])} classes, {int(d['image_size'])} px, "
              f"{int(d['channels'])} channel(s)); {zoo.attribution}. --json gives every hyperparameter and flag; "
              f"--budget 4h fine-tunes them (GPU).", highlight=False, soft_wrap=True)


