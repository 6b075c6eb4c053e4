"""What suggest shows: a config's recipe reaches the tables whenever a row has one."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from quicktune.cli.suggest_render import _ranking_table, _runs_table
from quicktune.finetune.recipe import describe_extras
from quicktune.space import Config


def test_describe_extras_names_the_optimizer_first_and_drops_false_flags() -> None:
    text = describe_extras({"sp_reg": 0.01, "optimizer": "adamw", "freeze_embedding": True, "sched": "cosine",
                            "linear_probing": False, "warmup_epochs": 1})
    assert text == "adamw, frozen embedding, sched cosine, L2-SP 0.01, warm-up 1"
    assert describe_extras({}) == ""


@dataclass
class _Pred:
    config: Config
    accuracy: float = 0.8
    std: float = 0.05
    seconds: float = 60.0


def _render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_the_ranking_shows_a_recipe_column_only_when_a_row_has_extras() -> None:
    plain = _Pred(Config("resnet20", 0.1, 1e-4, 0.9))
    adamw = _Pred(Config("resnet20", 1e-3, 1e-4, 0.9, {"optimizer": "adamw", "sched": "step"}))
    assert "recipe" not in _render(_ranking_table([plain], 5, "t"))
    text = _render(_ranking_table([adamw, plain], 5, "t"))
    assert "recipe" in text and "adamw, sched step" in text


def test_the_runs_table_shows_each_runs_recipe() -> None:
    run = {"config_id": 0, "model": "m", "elr": 1e-3, "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4,
           "extras": {"optimizer": "adamw", "freeze_embedding": True}, "curve": [0.5, 0.7], "epochs": 2,
           "seconds": 3.0}
    text = _render(_runs_table({"runs": [run], "max_epochs": 5}, 5))
    assert "adamw, frozen embedding" in text
