"""Which imports inside functions of pipeline/ are lazy for a reason (tests/test_architecture.py).

An import inside a function is allowed only when it defers a slow or optional dependency that the
importing module does not load already: the imported module's top-level import closure (parent
packages' `__init__` included) reaches a package of SLOW that the importer's own closure does not.
A module's `__getattr__` (PEP 562) may import lazily too: that is what it is for. Each such
import carries a reason: a comment on its line, or on the line right above the run of imports it
starts. Everything else belongs at the top of the module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# what costs start-up (seconds to import on 2 cores: torch 2.1, mlflow 2.1, scikit-learn 1.7,
# pandas 0.7, matplotlib 0.3, requests 0.2) or is an optional extra (ray, playwright)
SLOW = frozenset(
    {
        "torch",
        "mlflow",
        "sklearn",
        "skops",
        "pandas",
        "matplotlib",
        "requests",
        "google",
        "google_auth_oauthlib",
        "ray",
        "playwright",
        "lightgbm",
        "scipy",
    }
)


@dataclass(frozen=True)
class LazyImport:
    module: str  # the importer, dotted
    line: int
    imported: tuple[str, ...]  # the dotted modules the statement may load
    function: str  # the function it sits in
    reason: str  # the comment that says why; "" when there is none

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported[-1]}"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted modules an import statement loads (`from a import b` may load a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


class Package:
    """The import statements of every module under one package directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = root.name
        self.files: dict[str, Path] = {}
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.files[".".join(parts)] = path
        self._top: dict[str, tuple[str, ...]] = {}
        self._closure: dict[str, frozenset[str]] = {}

    def _split(self, module: str) -> tuple[list[str], list[tuple[ast.stmt, str, str]]]:
        """(modules imported at the top level, [(import inside a function, the function's
        name, its reason)])."""
        path = self.files[module]
        lines = path.read_text().splitlines()
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        top: list[str] = []
        inner: list[tuple[ast.stmt, str, str]] = []

        def visit(node: ast.AST, in_function: str) -> None:
            for value in ast.iter_fields(node):
                children = value[1] if isinstance(value[1], list) else [value[1]]
                for i, child in enumerate(children):
                    if isinstance(child, ast.If) and _is_type_checking(child):
                        continue
                    if isinstance(child, ast.Import | ast.ImportFrom):
                        if in_function:
                            inner.append((child, in_function, _reason(lines, children, i)))
                        else:
                            top.extend(_targets(child, module, is_package))
                    elif isinstance(child, ast.AST):
                        named = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                        lambda_ = "<lambda>" if isinstance(child, ast.Lambda) else ""
                        visit(child, in_function or (child.name if named else lambda_))

        visit(tree, "")
        return top, inner

    def top_level(self, module: str) -> tuple[str, ...]:
        if module not in self._top:
            self._top[module] = tuple(self._split(module)[0]) if module in self.files else ()
        return self._top[module]

    def closure(self, module: str) -> frozenset[str]:
        """The packages of SLOW that importing `module` loads (its parents' __init__ included)."""
        if module not in self._closure:
            self._closure[module] = self._reach(module)
        return self._closure[module]

    def _reach(self, module: str) -> frozenset[str]:
        seen: set[str] = set()
        found: set[str] = set()
        work = [module]
        while work:
            name = work.pop()
            parts = name.split(".")
            for n in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                step = ".".join(parts[:n])
                if step in seen:
                    continue
                seen.add(step)
                if step in self.files:
                    work.extend(self.top_level(step))
                elif parts[0] in SLOW:
                    found.add(parts[0])
        return frozenset(found)

    def lazy_imports(self) -> list[LazyImport]:
        found = []
        for module, path in self.files.items():
            for node, function, reason in self._split(module)[1]:
                imported = tuple(_targets(node, module, path.name == "__init__.py"))
                found.append(LazyImport(module, node.lineno, imported, function, reason))
        return found

    def defers(self, lazy: LazyImport) -> frozenset[str]:
        """The slow packages this import keeps out of its module's start-up."""
        loads = frozenset().union(*(self.closure(name) for name in lazy.imported))
        return loads - self.closure(lazy.module)


def _reason(lines: list[str], body: list[ast.stmt], i: int) -> str:
    """The comment on the import's line, or above the run of imports it belongs to."""
    node = body[i]
    _, _, comment = lines[node.lineno - 1].partition("#")
    if comment.strip():
        return comment.strip()
    while i > 0 and isinstance(body[i - 1], ast.Import | ast.ImportFrom):
        i -= 1
    above = lines[body[i].lineno - 2].strip() if body[i].lineno >= 2 else ""
    return above.lstrip("#").strip() if above.startswith("#") else ""


def offenders(root: Path) -> tuple[list[str], list[str]]:
    """(imports inside functions that defer nothing, lazy imports without a reason)."""
    package = Package(root)
    needless, unexplained = [], []
    for lazy in package.lazy_imports():
        if not package.defers(lazy) and lazy.function != "__getattr__":
            needless.append(str(lazy))
        elif not lazy.reason:
            unexplained.append(str(lazy))
    return needless, unexplained
