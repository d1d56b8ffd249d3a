"""The layout's rules, checked: no import cycle (imports inside functions count), no module over
500 lines, nothing written into MLflow's tables behind its API, imports inside functions only
for a slow or optional dependency and with a reason."""

from __future__ import annotations

from pathlib import Path

import grimp

from tests.lazy_imports import Package, offenders

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
LONGEST = 500


def cycles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in modules:
        if root in index:
            continue
        imports = graph.find_modules_directly_imported_by
        work = [(root, iter(sorted(imports(root))))]
        index[root] = low[root] = len(index)
        stack.append(root), on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child), on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_import_graph_has_no_cycle_counting_imports_inside_functions() -> None:
    graph = grimp.build_graph("pipeline", cache_dir=None, exclude_type_checking_imports=True)
    assert "pipeline.jobs" in graph.find_modules_directly_imported_by("pipeline.cli.main")
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert cycles(graph) == [["a.b", "a.c"]]


def test_no_module_is_longer_than_500_lines() -> None:
    lengths = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > LONGEST} == {}


def test_no_sql_is_written_into_mlflows_tables() -> None:
    """MLflow's store is written through its client alone; the one SQL statement is SQLite's
    read-only integrity check of `viewcast check`."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text().lower()
        if any(word in text for word in ("insert into", "delete from", "executemany")):
            offenders.append(path.name)
    assert offenders == []
    users = sorted(p.name for p in PACKAGE.rglob("*.py") if "sqlite3" in p.read_text())
    assert users == ["health.py"]


def test_every_module_has_its_test_module() -> None:
    """tests/ mirrors pipeline/: pipeline/data/store.py is tested in tests/data/test_store.py."""
    tests = PACKAGE.parent / "tests"
    missing = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
        and not (tests / p.parent.relative_to(PACKAGE) / f"test_{p.name}").is_file()
    ]
    assert missing == []


def test_imports_inside_functions_defer_a_slow_dependency_and_say_why() -> None:
    """An import inside a function keeps torch, MLflow, pandas, ... off a start-up that does not
    need them, with its reason beside it; any other import sits at the top of its module."""
    needless, unexplained = offenders(PACKAGE)
    assert needless == []
    assert unexplained == []


def test_the_lazy_import_check_finds_planted_offenders(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "heavy.py").write_text("import torch\n")
    (root / "light.py").write_text("import json\n")
    (root / "user.py").write_text(
        "def a():\n"
        "    # lazy: torch is slow\n"
        "    from pkg import heavy\n"
        "    import mlflow  # lazy: MLflow too\n"
        "def b():\n"
        "    from pkg import light\n"  # defers nothing
        "    import json\n"  # neither
        "def c():\n"
        "    from pkg.heavy import torch\n"  # defers torch, says nothing
    )
    (root / "trained.py").write_text("import torch\ndef d():\n    from pkg import heavy  # why\n")
    needless, unexplained = offenders(root)
    assert needless == [
        "pkg.trained:3 imports pkg.heavy",
        "pkg.user:6 imports pkg.light",
        "pkg.user:7 imports json",
    ]
    assert unexplained == ["pkg.user:9 imports pkg.heavy.torch"]
    assert Package(root).closure("pkg.user") == frozenset()
    assert Package(root).closure("pkg.heavy") == {"torch"}
