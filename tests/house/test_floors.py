"""The house's floors hold: no import cycle inside any package, and the DAG files import only the pipeline.

The layers themselves are import-linter's contracts (``[tool.importlinter]`` in pyproject.toml,
``lint-imports`` in ``make lint`` and ``make test``); the test below runs them too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "rigs", "pipeline", "recognition", "cases", "e_license_store", "identity", "validation", "mappings", "connectors",
    "identifiers", "hub", "sandbox", "bench",
)  # fmt: skip


#: Cycles still in the house, each with its reason; a new cycle fails, and a broken one must leave this list.
DECLARED_CYCLES: dict[tuple[str, ...], str] = {
    ("recognition.audit", "recognition.audit_archive"): (
        "audit.verify walks the archived chunks through audit_archive.check, which builds on audit's entries;"
        " verification spanning both moves with the large-modules part of issue 15 (scope 5)"
    ),
}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(iter(children), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package: str) -> None:
    # every import counts, also those inside functions and under TYPE_CHECKING
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph(package, cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i.split(".")[0] == package}
             for m in graph.modules}  # fmt: skip
    declared = sorted(list(c) for c in DECLARED_CYCLES if c[0].split(".")[0] == package)
    assert sorted(_cycles(edges)) == declared


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_dag_files_import_only_the_pipeline_and_the_ground_floor() -> None:
    dags = sorted((ROOT / "dags").glob("*.py"))
    assert dags
    for path in dags:
        ours = _imported_packages(path) & {*PACKAGES, "tests"}
        assert ours <= {"pipeline", "hub"}, (path.name, sorted(ours))


def test_import_contracts_are_kept() -> None:
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert "0 broken" in run.stdout
