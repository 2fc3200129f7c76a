"""Imports flow one way: core -> data -> models -> engine -> methods -> commands, without cycles.

Every import statement counts, including those inside functions (a lazy import is still a
dependency), except those under ``if TYPE_CHECKING:`` (annotations only, never run).
``rckd/__init__.py`` is the package's front door: it may reach any layer, only
lazily, and everything may import it (its ``__version__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rckd"

LAYERS = ("core", "data", "models", "engine", "methods", "commands")
#: module prefix -> layer (the longest matching prefix wins)
OWNERS = {
    "rckd.io": "core", "rckd.config": "core", "rckd.paths": "core", "rckd.runtime": "core",
    "rckd.weightfile": "core", "rckd.metrics": "core", "rckd.losses": "core",
    "rckd.data": "data",
    "rckd.models": "models",
    "rckd.engine": "engine",
    "rckd.pretrain": "methods", "rckd.finetune": "methods", "rckd.teacher": "methods",
    "rckd.grid": "methods", "rckd.reproduce": "methods", "rckd.report": "methods",
    "rckd.demo": "methods", "rckd.doctor": "methods",
    "rckd.commands": "commands", "rckd.cli": "commands",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _layer(module: str) -> str:
    owner = max((k for k in OWNERS if module == k or module.startswith(k + ".")), key=len, default=None)
    if owner is None:
        raise AssertionError(f"{module}: no layer assigned (add it to OWNERS in {__file__})")
    return OWNERS[owner]


def _target(name: str) -> str | None:
    """The rckd module an imported name refers to (a module, else its package), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported rckd module, line, at top level?)`` for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # ``from pkg import sub`` depends on the submodule; ``from mod import name`` on mod
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = _target(name) if name.startswith("rckd") else None
            if target and target != module:
                out.append((target, node.lineno, id(node) in top))
    return sorted(set(out))


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "rckd":
            _layer(module)


def test_no_module_imports_a_higher_layer():
    bad = []
    for module in MODULES:
        if module == "rckd":
            continue
        for target, line, _ in imports(module):
            if target != "rckd" and LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                bad.append(f"{MODULES[module]}:{line}: {module} ({_layer(module)}) imports {target} ({_layer(target)})")
    assert not bad, "\n".join(bad)


def test_the_package_front_door_imports_other_layers_only_lazily():
    eager = [t for t, _, at_top in imports("rckd") if at_top]
    assert eager == []


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports(m) if t != "rckd"} for m in MODULES if m != "rckd"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_there_are_no_import_cycles():
    cycle = find_cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_checks_catch_what_they_look_for():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert _layer("rckd.models.teachers.base") == "models" and _layer("rckd.config.values") == "core"
    assert ("rckd.weightfile", True) in {(t, top) for t, _, top in imports("rckd.models.weights")}
    assert not any(t.startswith("rckd.models") for t, _, _ in imports("rckd.engine.checkpoint"))
    assert ("rckd.engine.checkpoint" in {t for t, _, _ in imports("rckd.engine.loop")}
            and "rckd.engine" not in {t for t, _, _ in imports("rckd.engine.loop")})
    with pytest.raises(AssertionError, match="no layer assigned"):
        _layer("rckd.unknown")


def test_models_hold_models_and_weights_only():
    """No application (training loop, command config) inside rckd/models."""
    for module in MODULES:
        if module.startswith("rckd.models"):
            assert not any(t.startswith(("rckd.engine", "rckd.config")) for t, _, _ in imports(module)), module
