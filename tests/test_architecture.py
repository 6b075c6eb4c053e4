"""Data flows one way (DESIGN.md): collect -> metadataset -> features -> surrogate -> optimizer <->
objective, with the CLI on top. These tests parse every module's imports and enforce that."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "quicktune"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in `path` (including inside functions)."""
    tree = ast.parse(path.read_text())
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
    return out


MODULES = {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}

# (importer prefix, forbidden import prefixes, why)
RULES = [
    ("quicktune.metadataset", ["quicktune.surrogate", "quicktune.optimizer", "quicktune.benchmark", "quicktune.cli",
                               "quicktune.collect", "quicktune.finetune", "quicktune.hub", "torch"],
     "the meta-dataset is the bottom layer: plain files, no models"),
    ("quicktune.baselines", ["torch", "quicktune.hub", "quicktune.surrogate", "quicktune.benchmark", "quicktune.cli"],
     "baselines never import torch models"),
    ("quicktune.asha", ["torch", "quicktune.hub", "quicktune.surrogate", "quicktune.benchmark", "quicktune.cli"],
     "baselines never import torch models"),
    ("quicktune.optimizer", ["quicktune.benchmark", "quicktune.cli", "quicktune.collect"],
     "the optimizer never imports the benchmark"),
    ("quicktune.surrogate", ["quicktune.optimizer", "quicktune.benchmark", "quicktune.cli", "quicktune.collect"],
     "a surrogate only yields posteriors; acquisition and loops sit above it"),
    ("quicktune.space", ["quicktune.metadataset", "quicktune.surrogate", "quicktune.optimizer", "quicktune.benchmark",
                         "quicktune.cli"], "the search space is a leaf"),
    ("quicktune.protocol", ["quicktune.metadataset", "quicktune.surrogate", "quicktune.optimizer",
                            "quicktune.benchmark", "quicktune.cli"], "the ask/tell contract is a leaf"),
    ("quicktune.stopping", ["torch", "quicktune.optimizer", "quicktune.surrogate", "quicktune.benchmark",
                            "quicktune.suggest", "quicktune.cli"],
     "a stop rule reads numbers only, so the replay benchmark and suggest share it"),
    ("quicktune.estimate", ["torch", "quicktune.optimizer", "quicktune.surrogate", "quicktune.benchmark",
                            "quicktune.suggest", "quicktune.cli"], "the test-accuracy estimate is a leaf"),
]


def test_modules_were_found():
    assert "quicktune.space" in MODULES and "quicktune.metadataset.storage" in MODULES


@pytest.mark.parametrize("prefix, forbidden, why", RULES, ids=[r[0] for r in RULES])
def test_imports_flow_one_way(prefix, forbidden, why):
    bad = sorted(
        f"{mod} imports {name}"
        for mod, names in MODULES.items()
        if mod == prefix or mod.startswith(prefix + ".")
        for name in names
        for f in forbidden
        if name == f or name.startswith(f + ".")
    )
    assert not bad, f"{why}: {bad}"


def test_only_the_cli_imports_the_cli():
    bad = sorted(m for m, names in MODULES.items() if not m.startswith("quicktune.cli")
                 and any(n == "quicktune.cli" or n.startswith("quicktune.cli.") for n in names))
    assert not bad, f"library modules must not import the CLI: {bad}"
