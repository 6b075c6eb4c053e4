"""Data flows one way (DESIGN.md): collect -> metadataset -> features -> surrogate -> optimizer <->
objective, with the CLI on top. These tests parse every module's imports and enforce that,
transitively for the project's own modules (a module may not reach a forbidden layer through
another one) and directly for third-party packages (torch: space's tensor encoding is shared)."""

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


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (annotations only, never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in `path` (including inside functions,
    excluding `if TYPE_CHECKING:` blocks)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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


def _as_module(name: str) -> str:
    """`quicktune.a.b.NAME` -> the module `quicktune.a.b` it was imported from."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


GRAPH = {m: {_as_module(n) for n in names if n.startswith("quicktune")} for m, names in MODULES.items()}


def reachable(mod: str) -> set[str]:
    """Every project module `mod` imports, directly or through others."""
    seen: set[str] = set()
    stack = [mod]
    while stack:
        for nxt in GRAPH.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen

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
    ("quicktune.surrogate", ["quicktune.hub"], "a surrogate sees model descriptors, never the model hub"),
    ("quicktune.suggest", ["quicktune.collect"], "suggest uses the rules (design, schema), not the collection"),
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


def _matches(name: str, prefixes: list[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in prefixes)


@pytest.mark.parametrize("prefix, forbidden, why", RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_imports_flow_one_way(prefix, forbidden, why):
    own = [f for f in forbidden if f.startswith("quicktune")]
    third = [f for f in forbidden if not f.startswith("quicktune")]
    bad = set()
    for mod, names in MODULES.items():
        if not (mod == prefix or mod.startswith(prefix + ".")):
            continue
        bad.update(f"{mod} imports {n}" for n in names if _matches(n, third))
        bad.update(f"{mod} reaches {n}" for n in reachable(mod) if _matches(n, own))
    assert not bad, f"{why}: {sorted(bad)}"


def test_reachability_is_transitive():
    # suggest reaches the surrogate through its own modules, and the fine-tuner through the objective
    assert "quicktune.surrogate.gp" in reachable("quicktune.suggest.loading")
    assert "quicktune.finetune.trainer" in reachable("quicktune.objective")


def test_only_the_cli_imports_the_cli():
    bad = sorted(m for m, names in MODULES.items() if not m.startswith("quicktune.cli")
                 and any(n == "quicktune.cli" or n.startswith("quicktune.cli.") for n in names))
    assert not bad, f"library modules must not import the CLI: {bad}"
