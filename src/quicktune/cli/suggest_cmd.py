"""`quicktune suggest`: which model to fine-tune on your data, with which hyperparameters.

Thin: parses and checks the arguments, calls `quicktune.suggest`, renders tables and a live
display (on stderr, so `--json` leaves stdout to the JSON alone).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from quicktune.cli._common import fail, parse_duration
from quicktune.cli.suggest_render import Dashboard, features_with_progress, format_clock, print_ranking, print_search


def register(app: typer.Typer) -> None:
    app.command("suggest")(suggest_cmd)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def suggest_cmd(
    data: Annotated[str, typer.Option(
        "--data", help="Your ImageFolder: train/<class>/* [+ val/] [+ test/], or <class>/*; task options as in "
        "collect: PATH[:classes=5,shots=50,size=32]. `demo`: a bundled 10-class digits task. A test split the search "
        "never sees: test/, else 20% of each class of train (test=0.3 changes it, test=0 turns it off).")],
    budget: Annotated[str, typer.Option(
        "--budget", help="0: zero-shot ranking in seconds, no training. A duration (90s, 30m, 4h, 1h30m): a timed "
        "search that really fine-tunes, resumable.")] = "0",
    models: Annotated[Optional[str], typer.Option(
        "--models", help="Comma-separated hub models (default: every model whose weights are in the weights dir).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout (and nothing else there).")] = False,
    top: Annotated[int, typer.Option("--top", help="How many configs to list.")] = 10,
    surrogate: Annotated[Optional[str], typer.Option(
        "--surrogate", help="A shipped surrogate by name (v1) or a checkpoint from `quicktune metatrain` "
        "(default: v1, shipped with quicktune).")] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(
        "--weights-dir", help="Where the hub finds model weights (default: $QUICKTUNE_WEIGHTS).")] = None,
    max_image_size: Annotated[Optional[int], typer.Option(
        "--max-image-size", help="Train each model at its input size capped at this many pixels, e.g. 64 on a CPU "
        "(default: the surrogate's meta-training setting, else no cap).")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", help="Epoch horizon of every run (default: the surrogate's meta-training horizon).")] = None,
    workdir: Annotated[Optional[Path], typer.Option(
        "--workdir", help="Checkpoints, session and report of a timed search (default: ./.quicktune/<data name>).")] = None,
    save_model: Annotated[Optional[Path], typer.Option(
        "--save-model", help="After a timed search, save the chosen fine-tuned model here as a hub checkpoint.")] = None,
    save: Annotated[str, typer.Option(
        "--save", help="Which weights of the chosen run --save-model saves (and the test accuracy is measured on): "
        "best (the epoch the report calls best) or last (its last trained epoch).")] = "best",
    stop_when: Annotated[Optional[str], typer.Option(
        "--stop-when", help="Stop a timed search early: acc>=X (target validation accuracy), ei<T:K (max expected "
        "improvement below T for K steps), patience=K (no improvement for K epochs), comma-separated, or none. "
        "Default: patience=40 (chosen on the replay benchmark); validation accuracy 1.0 always stops.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the candidate design, the runs and the optimizer.")] = 0,
    candidates: Annotated[int, typer.Option(
        "--candidates", help="Hyperparameter configs (ELR, weight decay, momentum) per model, a Sobol design.")] = 32,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Training batch size (default: the surrogate's meta-training setting, else 32).")] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="Torch threads (per worker with --workers; default: torch's choice, or the cores split "
        "among the workers).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Fine-tuning runs at once: one per GPU (CUDA_VISIBLE_DEVICES), or N CPU processes with "
        "the threads split among them.")] = 1,
    executor: Annotated[str, typer.Option(
        "--executor", help="local (processes on this machine) or ray (Ray actors; the work dir must be on a "
        "filesystem every node reaches).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="The Ray cluster to join (default: $RAY_ADDRESS, else a local Ray for this search).")] = None,
    skip_unreadable: Annotated[bool, typer.Option(
        "--skip-unreadable", help="Skip unreadable images (listed) instead of stopping.")] = False,
    zoo: Annotated[Optional[str], typer.Option(
        "--zoo", help="'quicktune': the Quick-Tune meta-dataset's 24 timm models x its recorded hyperparameter space "
        "(zero-shot needs no weights and no network); 'local': the models whose weights are in --weights-dir. "
        "Default: local when --weights-dir, $QUICKTUNE_WEIGHTS or --surrogate is given, else quicktune.")] = None,
) -> None:
    """Rank pretrained models x hyperparameters for your data (--budget 0), or search by really
    fine-tuning within a time budget, continuing runs epoch by epoch (freeze-thaw).

    A timed search is resumable: interrupt it (Ctrl-C, or a kill) and run the same command again;
    it continues where it stopped, and the budget counts the time already spent.
    """
    import warnings

    # Library deprecation chatter (torch.jit in dependencies) is noise to a user of this command.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from rich.console import Console

    from quicktune import suggest as qs
    from quicktune.data import DataError
    from quicktune.hub import HubError

    from quicktune.cli import _common
    from quicktune.suggest.search import SHUTDOWN_RESERVE

    # The budget is wall-clock from the user's Enter: the process start-up and imports count.
    clock = _common.COMMAND_START if _common.COMMAND_START is not None else time.perf_counter()
    try:
        budget_s = parse_duration(budget)
    except ValueError as e:
        fail(f"--budget: {e}")
    for name, value, low in (("--top", top, 1), ("--candidates", candidates, 1), ("--epochs", epochs, 1),
                             ("--batch-size", batch_size, 2), ("--threads", threads, 1), ("--workers", workers, 1),
                             ("--seed", seed, 0)):
        if value is not None and value < low:
            fail(f"`{name} >= {low}` must hold, but got {value}")
    if executor not in ("local", "ray"):
        fail(f"--executor must be 'local' or 'ray', but got {executor!r}")
    if ray_address is not None and executor != "ray":
        fail(f"--ray-address is only used with --executor ray, but got --executor {executor}")
    if max_image_size is not None and not 4 <= max_image_size <= 4096:
        fail(f"`4 <= --max-image-size <= 4096` must hold, but got {max_image_size}")
    try:
        from quicktune.data import TaskSpec

        TaskSpec.parse(data)  # task options first: a bad one is refused before any slow step
    except DataError as e:
        fail(str(e))
    if save not in ("best", "last"):
        fail(f"--save takes best or last, but got {save!r}")
    from quicktune.stopping import StopRule, StopRuleError

    try:
        stop_rule = StopRule.parse(stop_when)
    except StopRuleError as e:
        fail(str(e))
    if save_model is not None and budget_s == 0:
        fail("--save-model needs a timed search (a --budget above 0): a zero-shot ranking trains no model")
    if save_model is not None and save_model.exists() and not save_model.is_dir():
        fail(f"--save-model {save_model}: exists and is not a directory")
    from quicktune.cli import suggest_zoo

    from quicktune.demo import resolve_data

    data = resolve_data(data)  # `demo`: the bundled digits task, written to the cache on first use
    chosen_zoo = suggest_zoo.choose_zoo(zoo, weights_dir, surrogate)
    if chosen_zoo == "quicktune" and budget_s == 0:
        suggest_zoo.zero_shot_zoo(data=data, surrogate=surrogate, models=models, candidates=candidates, seed=seed,
                                  epochs=epochs, top=top, as_json=as_json, clock=clock)
        return
    err = Console(stderr=True)
    out = Console()
    if threads:
        import torch

        torch.set_num_threads(threads)  # features and zero-shot too, not only the training

    try:
        if chosen_zoo == "quicktune":  # a timed search over timm models by name (item 4)
            from quicktune.data.describe import describe_folder

            sur, model_names, zoo_configs, horizon = suggest_zoo.search_setup(
                surrogate=surrogate, models=models, weights_dir=weights_dir, candidates=candidates, seed=seed,
                epochs=epochs)
            settings = qs.finetune_settings(sur)
            cap = max_image_size  # the meta-dataset trained at each model's own input size
            with err.status("checking the data folder ..."):
                target = qs.open_target(data, model_names, weights_dir, cap, skip_unreadable)
            # Dataset descriptors only: the zoo's surrogate was meta-trained without domain features.
            feats = qs.TaskFeatures(describe_folder(target.spec), {}, {})
        else:
            model_names = qs.resolve_models(models.split(",") if models is not None else None, weights_dir)
            try:
                sur = qs.load_surrogate(surrogate)
            except qs.SuggestError as e:
                raise qs.SuggestError(f"--surrogate: {e}") from None
            settings = qs.finetune_settings(sur)
            cap = max_image_size if max_image_size is not None else settings.max_image_size
            horizon = int(epochs or sur.max_epochs)
            with err.status("checking the data folder ..."):
                target = qs.open_target(data, model_names, weights_dir, cap, skip_unreadable)
            feats = features_with_progress(err, target, model_names, qs.feature_settings(sur))
    except (qs.SuggestError, DataError, HubError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"{e.filename or data}: {e.strerror}")
    except KeyboardInterrupt:
        err.print("interrupted before the search started (computed features are cached)", highlight=False)
        raise typer.Exit(130) from None
    if horizon > sur.max_epochs:
        err.print(f"[yellow]note:[/] --epochs {horizon} is beyond the {sur.max_epochs} epochs the surrogate was "
                  f"meta-trained on; its predictions extrapolate", highlight=False)
    far = qs.out_of_range(sur, feats)
    if far:
        shown = ", ".join(f"{n}{f' ({m})' if m else ''} z={v:+.1f}" for m, n, v in far[:4])
        err.print(f"[yellow]note:[/] this data lies outside what the surrogate was meta-trained on ({shown}); "
                  f"the surrogate treats it as at the edge of its meta-dataset (features clipped to 3 SD) - a "
                  f"timed search checks its predictions", highlight=False)
    if chosen_zoo == "quicktune":
        configs = zoo_configs
        surrogate_path = str(surrogate) if surrogate is not None else "quicktune"
    else:
        configs = qs.make_candidates(model_names, candidates, seed, sur.space_state["extra_spec"])
        surrogate_path = str(surrogate) if surrogate is not None else str(qs.DEFAULT_SURROGATE_PATH)

    if budget_s == 0:
        preds = qs.zero_shot(sur, configs, feats, horizon)
        seconds = time.perf_counter() - clock
        if as_json:
            from quicktune.report import to_json

            doc = {"task": target.name, "data": target.spec.path, "surrogate": surrogate_path, "epochs": horizon,
                   "max_image_size": cap, "candidates": len(configs), "models": model_names, "seconds": seconds,
                   "features": feats.to_dict(),
                   "out_of_range": [{"model": m, "feature": n, "z": v} for m, n, v in far], "ranking": [{"rank": i + 1, **p.to_dict()} for i, p in enumerate(preds[:top])]}
            print(to_json(doc))
            return
        print_ranking(out, preds, top, target.name, horizon, seconds, surrogate_path)
        return

    wd = workdir if workdir is not None else qs.default_workdir(target.name)
    from rich.live import Live

    try:
        search = qs.Search.open(sur, configs, target, feats, budget_seconds=budget_s, max_epochs=horizon, workdir=wd,
                                seed=seed, batch_size=batch_size or settings.batch_size, threads=threads,
                                clock_start=clock, reserve_seconds=SHUTDOWN_RESERVE, stop_rule=stop_rule)
        with err.status("reading the work dir ..."):
            resumed = search.resume()
    except (qs.SuggestError, DataError, HubError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        err.print("interrupted before the search started", highlight=False)
        raise typer.Exit(130) from None
    target.release()  # the objective loads its own copy per resolution
    if resumed:
        err.print(f"resuming {wd}: {resumed} epochs already trained, {format_clock(search.elapsed_before)} of "
                  f"{format_clock(budget_s)} used before", highlight=False, soft_wrap=True)
    run = search.run
    if workers > 1 or executor == "ray":
        from quicktune.pool import PoolError, make_pool, split_threads
        from quicktune.suggest.parallel import run_parallel

        per_worker = threads or split_threads(workers)
        try:
            with err.status(f"starting {workers} {executor} worker{'s' if workers > 1 else ''} ..."):
                pool = make_pool(executor, search.objective_factory(per_worker), workers, per_worker, gpus=None,
                                 address=ray_address)
        except (PoolError, ValueError) as e:
            fail(f"--workers {workers} --executor {executor}: {e}")

        def run() -> str:
            return run_parallel(search, pool)

    interrupted = False
    live = Live(Dashboard(search), console=err, refresh_per_second=2, transient=False)
    # A plain `kill` (SIGTERM) stops like Ctrl-C: the session is saved with the time spent and the
    # report written. (kill -9 can not be caught: the rerun still resumes from the checkpoints.)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with live:
            run()
    except KeyboardInterrupt:
        interrupted = True
    except qs.SuggestError as e:  # a run failed in a worker: the session is saved, a rerun restarts it
        fail(str(e), code=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    t_stop = time.perf_counter()
    with err.status("measuring the chosen model on the test split ..."):
        report = search.report(surrogate_path, which=save)
    from quicktune import report as qr

    saved = None
    if save_model is not None and report["best"] is not None and not interrupted:
        name, pth = search.save_best_model(save_model, which=save)
        saved = {"name": name, "weights_dir": str(save_model), "path": str(pth), "which": save,
                 "epoch": report["chosen"]["epoch"], "val_accuracy": report["chosen"]["val_accuracy"]}
    report["saved_model"] = saved
    json_path, png_path = qr.write(report, wd)
    # The shut-down counts towards the budget; the next session reserves as much for its own.
    search.end_session(time.perf_counter() - t_stop)
    report.update(elapsed_seconds=search.elapsed, shutdown_seconds=search.shutdown_seconds,
                  reserve_seconds=search.reserve)
    qr.write_json(report, json_path)  # (the JSON again, with the final clock; the plot stays)
    if as_json:
        print(qr.to_json({**report, "report_json": str(json_path), "report_png": str(png_path)}))
    else:
        print_search(out, report, top, search.stop_reason, budget_s, json_path, png_path, saved, save, save_model)
    if interrupted:
        err.print("interrupted: finished epochs are kept; run the same command again to continue", highlight=False)
        raise typer.Exit(130)
