"""The layout rules of docs/architecture.md, checked on the source: no import cycles, no imports
inside functions, no family importing another, the spine naming no family, small modules, and
every list of names (methods, scores, criteria, regularizers, sweep kinds) kept in one place."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from prunelab.config import schema
from prunelab.families.at_init.settings import AtInitConfig
from prunelab.families.deephoyer.regularizers import REGULARIZERS
from prunelab.families.deephoyer.settings import RegularizerConfig
from prunelab.families.filters.criteria import CRITERIA
from prunelab.families.filters.settings import FilterConfig
from prunelab.family import FAMILIES
from prunelab.pruning.scores import SCORES

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "prunelab"
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imported(name: str, tree: ast.Module) -> set[str]:
    """prunelab modules a module imports, with the packages Python initializes on the way (a.b.c
    runs a/__init__ and a/b/__init__ first) unless they are the module's own ancestors: those
    (the root package included) are being initialized already."""
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if _is_package(name) else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if not target.startswith("prunelab"):
                continue
            parts = target.split(".")
            found |= ({".".join(parts[:i]) for i in range(2, len(parts))} - own) | {target}
    found &= set(MODULES)
    found.discard(name)
    return found


GRAPH = {name: _imported(name, ast.parse(path.read_text())) for name, path in MODULES.items()}


def test_the_import_graph_has_no_cycle():
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = trail[trail.index(name):] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, trail + [name])
        done.add(name)

    for name in MODULES:
        visit(name, [])


def test_imports_are_at_module_level():
    """No import inside a function or class: dependencies are visible at the top of each module."""
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                offenders += [f"{name}:{inner.lineno}" for inner in ast.walk(node)
                              if isinstance(inner, (ast.Import, ast.ImportFrom))]
    assert offenders == []


def _family_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "families" else None


# The Python API: a facade over the spine and the families (as the package root is), imported by no module.
FACADE = "prunelab.api"


def test_no_family_imports_another_and_the_spine_imports_none():
    for name, targets in GRAPH.items():
        own = _family_of(name)
        assert FACADE not in targets, f"{name} imports {FACADE}"
        for target in targets:
            other = _family_of(target)
            if other is None and target != "prunelab.families":
                continue
            if own is not None:
                assert other == own, f"{name} imports {target}"
            else:  # the package root loads families/, which loads each family (registration at import)
                assert name in ("prunelab", "prunelab.families", FACADE), f"{name} imports {target}"


def _code_words(tree: ast.Module) -> str:
    """Names, attributes and string constants of a module's code (not its comments or docstrings)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
    return " ".join(words).lower()


def test_the_spine_names_no_family():
    """Outside families/, no code mentions a family by its name, methods or keys (|w|, the
    "magnitude" score, is the spine's; "filters" is too common a word to check)."""
    words = ["at_init", "deephoyer", "synflow", "snip", "grasp", "hoyer", "regularizer", "quality",
             "prune.filters", "std_ratio", "architecture"]
    for name, path in MODULES.items():
        if _family_of(name) is None and name not in ("prunelab.families", FACADE):
            code = _code_words(ast.parse(path.read_text()))
            assert not [word for word in words if word in code], name


def test_no_module_is_longer_than_the_limit():
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_shared_report_helpers_exist_once():
    """Markdown tables only through report/markdown.py, figures only through report/plots.py."""
    for name, path in MODULES.items():
        text = path.read_text()
        if name != "prunelab.report.markdown":
            assert "tabulate" not in text, name
        if name != "prunelab.report.plots":
            assert "matplotlib.figure" not in text and "pyplot" not in text, name


def _literal(model, field: str) -> set[str]:
    annotation = model.model_fields[field].annotation
    if typing.get_origin(annotation) is typing.Union:  # Optional[Literal[...]]
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return set(typing.get_args(annotation))


def test_every_list_of_names_comes_from_its_registry():
    families = FAMILIES.values()
    composed = schema.current()
    assert _literal(composed.prune, "method") == {m for f in families for m in f.schema.methods}
    assert _literal(composed.prune, "granularity") == {"element"} | {g for f in families for g in f.schema.granularities}
    assert _literal(composed.prune, "family") == {f.name for f in families if f.schema.prunes}
    assert _literal(composed.sweep, "kind") == {f.schema.sweep_kind for f in families if f.schema.sweep_kind}
    assert _literal(RegularizerConfig, "kind") == set(REGULARIZERS.names())
    assert _literal(FilterConfig, "criterion") == set(CRITERIA.names())
    at_init = FAMILIES.get("at_init")
    assert set(at_init.schema.methods) == set(SCORES.names())
    assert "score_batches" in AtInitConfig.model_fields  # the family's own section, in its package


def test_each_family_lives_in_its_own_package():
    for family in FAMILIES.values():
        parts = ([family.pruner] if family.pruner is not None else []) + list(family.stages.values())
        assert parts, family.name  # a family prunes, or adds a stage (compression: compress)
        for part in parts:
            assert part.__module__.startswith(f"prunelab.families.{family.name}."), family.name
        assert family.schema.claims.__module__ == f"prunelab.families.{family.name}.settings", family.name
