"""The import graph: no module imports, even only for type checking, one that imports it back."""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("kailash", "dataflow", "nexus")


def import_cycles(package: str) -> list[list[str]]:
    """The cycles among ``package``'s modules: each strongly connected group of two or more."""
    graph = grimp.build_graph(package, include_external_packages=False)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph.find_modules_directly_imported_by(module):
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_one_that_imports_it_back(package):
    assert import_cycles(package) == []


def test_a_cycle_is_found_when_there_is_one(tmp_path, monkeypatch):
    root = tmp_path / "looped"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import looped.b\n"
    )
    (root / "b.py").write_text("import looped.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("looped") == [["looped.a", "looped.b"]]
