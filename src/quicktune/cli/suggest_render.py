"""What `quicktune suggest` shows: the live dashboard of a timed search, the feature progress bar,
the ranking and result tables, and the closing lines (rich, on the consoles the command passes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from quicktune.durations import format_duration
from quicktune.finetune.recipe import describe_extras


def format_clock(seconds: float) -> str:
    return format_duration(seconds, clock=True)


def _recipe_suffix(extras: dict[str, Any] | None) -> str:
    """", adamw, frozen embedding" to append to a config's line; "" for v1's recipe."""
    text = describe_extras(extras or {})
    return f", {text}" if text else ""


def _recipe_cells(table: Any, recipes: list[str]) -> list[list[str]]:
    """Adds a "recipe" column when any row has one (a surrogate that varies the recipe, v2:
    optimizer, schedule, frozen embedding, L2-SP, or an AdamW row reads like momentum SGD; a v1
    surrogate's rows have none) and returns each row's extra cells (none without the column)."""
    if not any(recipes):
        return [[] for _ in recipes]
    table.add_column("recipe", overflow="fold", min_width=8)
    return [[r or "-"] for r in recipes]


class Dashboard:
    """The live view of a running search (rendered by rich on every refresh)."""

    def __init__(self, search: Any) -> None:
        self.search = search

    def __rich__(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self.search
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=s.budget, completed=min(s.elapsed, s.budget), width=36),
                    f"{format_clock(s.elapsed)} used, {format_clock(s.remaining)} left of {format_clock(s.budget)}")
        grid.add_row("budget", bar)
        grid.add_row("steps", f"{len(s.steps)} steps, {s.epochs_trained} epochs trained, "
                              f"{len(s.optimizer.curves)} of {len(s.configs)} candidates started")
        inc = s.incumbent()
        grid.add_row("incumbent", "-" if inc is None else
                     f"{inc['model']}  ELR {inc['elr']:.3g} (lr {inc['lr']:.3g}, m {inc['momentum']:g}, "
                     f"wd {inc['weight_decay']:.3g}{_recipe_suffix(inc.get('extras'))})  acc [bold green]{inc['accuracy']:.4f}[/] at epoch {inc['epoch']}")
        if s.steps:
            last = s.steps[-1]
            c = s.configs[last.config_id]
            grid.add_row("last step", f"{c.model}  ELR {c.elr:.3g} epoch {last.epoch}: acc {last.accuracy:.4f} "
                                      f"({last.seconds:.1f}s)")
        cur = s.current
        if cur is not None:
            others = len(s.optimizer.pending) - 1
            grid.add_row("training", f"{cur['model']}  ELR {cur['elr']:.3g} epoch {cur['epoch']} "
                                     f"({time.perf_counter() - cur['started']:.0f}s, predicted {cur['predicted_seconds']:.0f}s)"
                                     + (f" and {others} more run{'s' if others > 1 else ''}" if others > 0 else ""))
        return grid


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def features_with_progress(console: Any, target: Any, models: list[str], settings: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from quicktune.suggest import task_features

    with Progress(TextColumn("[bold]domain features"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[model]}"), console=console, transient=True) as progress:
        bar = progress.add_task("features", total=len(models), model="")

        def on_model(model: str, i: int, n: int) -> None:
            progress.update(bar, completed=i, model=model)

        return task_features(target, models, settings=settings, on_model=on_model)


def _ranking_table(preds: list[Any], top: int, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, show_edge=False, title_justify="left",
                  caption="lr = ELR * (1 - momentum); accuracy: posterior mean ± std at the last epoch",
                  caption_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("model", min_width=12, overflow="fold")
    for name in ("ELR", "lr", "mom.", "wd", "pred. acc", "pred. min"):
        table.add_column(name, justify="right", no_wrap=True)
    cells = _recipe_cells(table, [describe_extras(dict(p.config.extras)) for p in preds[:top]])
    for rank, (p, recipe) in enumerate(zip(preds[:top], cells), start=1):
        c = p.config
        table.add_row(str(rank), c.model, f"{c.elr:.3g}", f"{c.lr:.3g}", f"{c.momentum:g}", f"{c.weight_decay:.2g}",
                      f"{p.accuracy:.3f}±{p.std:.3f}", f"{p.seconds / 60:.1f}", *recipe)
    return table


def _runs_table(report: dict[str, Any], top: int) -> Any:
    from rich.table import Table

    def best_of(r: dict[str, Any]) -> float:
        return max((v for v in r["curve"] if v is not None and v == v), default=float("nan"))

    runs = [r for r in report["runs"] if best_of(r) == best_of(r)]
    runs.sort(key=lambda r: -best_of(r))
    from rich import box

    table = Table(title=f"best runs ({len(report['runs'])} trained)", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=(0, 1), collapse_padding=True, pad_edge=False, title_justify="left", caption="val acc: selected on (biased upwards); test acc: the chosen model "
                  "on the held-out test split (unbiased), 95% CI", caption_justify="left")
    table.add_column("model", overflow="fold", min_width=10)
    for name in ("ELR", "lr", "mom.", "wd", "val acc", "epochs", "s", "test acc (CI)"):
        table.add_column(name, justify="right", no_wrap=True)
    cells = _recipe_cells(table, [describe_extras(r.get("extras") or {}) for r in runs[:top]])
    test, chosen = report.get("test"), report.get("chosen") or {}
    for r, recipe in zip(runs[:top], cells):
        is_chosen = r["config_id"] == chosen.get("config_id")
        cell = f"{test['accuracy']:.3f} ({test['ci95'][0]:.3f}-{test['ci95'][1]:.3f})" if is_chosen and test else "-"
        table.add_row(r["model"], f"{r['elr']:.3g}", f"{r['lr']:.3g}", f"{r['momentum']:g}", f"{r['weight_decay']:.2g}",
                      f"{best_of(r):.4f}", f"{r['epochs']}/{report['max_epochs']}", f"{r['seconds']:.1f}", cell, *recipe)
    return table


def _test_line(report: dict[str, Any]) -> str:
    """The unbiased estimate, or why there is none."""
    test, chosen = report.get("test"), report["chosen"]
    if not test:
        return (f"test accuracy: none ({report.get('test_split') or 'no test split'}); the validation accuracy above "
                f"is the one the search selected on, so it is biased upwards")
    lo, hi = test["ci95"]
    return (f"[bold]test accuracy[/] (unbiased estimate: {test['n']} test images the search never saw, "
            f"{report['test_split']}): [bold green]{test['accuracy']:.4f}[/] [95% CI {lo:.4f}, {hi:.4f}] for the "
            f"model of epoch {chosen['epoch']} ({chosen['which']})")


def print_ranking(out: Any, preds: list[Any], top: int, task: str, horizon: int, seconds: float,
                  surrogate_path: str) -> None:
    """The zero-shot ranking as a table, and how it was made."""
    out.print(_ranking_table(preds, top, f"zero-shot ranking for {task}: top {min(top, len(preds))} of "
                                         f"{len(preds)} candidates, {horizon} epochs each"))
    out.print(f"ranked in {seconds:.1f}s with no training (predictions of {Path(surrogate_path).name}; "
              f"lr = ELR * (1 - momentum)). Run with --budget 30m to fine-tune and verify.", highlight=False)


def print_search(out: Any, report: dict[str, Any], top: int, stop_reason: str | None, budget_s: float,
                 json_path: Path, png_path: Path, saved: dict[str, Any] | None, save: str,
                 save_model: Path | None) -> None:
    """A timed search's result: the best runs, the best config, the test estimate, why it stopped,
    where the report and the saved model are."""
    best = report["best"]
    if best is None:
        out.print("no epoch finished within the budget; give a larger --budget", highlight=False)
    else:
        out.print(_runs_table(report, top))
        out.print(
            f"[bold]best config[/]: {best['model']}  ELR {best['elr']:.4g}, lr = ELR * (1 - momentum) = "
            f"{best['lr']:.4g}, momentum {best['momentum']:g}, weight decay {best['weight_decay']:.3g}"
            f"{_recipe_suffix(best.get('extras'))}: "
            f"validation accuracy {best['accuracy']:.4f} at epoch {best['epoch']} of {best['max_epochs']} "
            f"({best['epochs']} trained, {best['seconds']:.0f}s; selected on validation)", highlight=False)
        out.print(_test_line(report), highlight=False, soft_wrap=True)
    out.print(f"stopped: {stop_reason}; {report['steps']} steps, {report['epochs_trained']} epochs, "
              f"{format_clock(report['elapsed_seconds'])} of {format_clock(budget_s)} used", highlight=False)
    out.print(f"report: {json_path}  {png_path}", highlight=False, soft_wrap=True)
    if saved:
        out.print(f"saved the model of epoch {saved['epoch']} ({save}; validation accuracy "
                  f"{saved['val_accuracy']:.4f}) as {saved['name']!r} in {save_model} "
                  f"(quicktune.hub.create_model({saved['name']!r}, weights_dir={str(save_model)!r}))",
                  highlight=False, soft_wrap=True)
