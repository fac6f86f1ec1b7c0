"""The shape of the code base: module sizes, and core's import graph.

Core stays a set of small modules with one job each, imports no plugin (the built-in ones
included: they register through the same hooks as third-party plugins) and has no import cycle
at module level, so any module can be read and imported on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core" / "src" / "modelshelf"
MAX_MODULE_LINES = 600
MAX_SHELF_LINES = 500


def _source_modules() -> list[Path]:
    plugins = sorted((REPO / "plugins").glob("*/src/**/*.py"))
    return sorted(CORE.rglob("*.py")) + [p for p in plugins if "node_modules" not in p.parts]


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in _source_modules()}
    assert len(sizes) > 100  # the globs found the tree
    over = {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, f"split these modules by concern (limit {MAX_MODULE_LINES} lines): {over}"
    assert sizes[CORE / "shelf.py"] < MAX_SHELF_LINES, "Shelf is a façade: move work into modules"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path) -> set[str]:
    """Modules (and ``module.name`` for ``from module import name``) imported when ``path`` is
    imported: function bodies and ``if TYPE_CHECKING:`` blocks excluded."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _core_graph() -> dict[str, set[str]]:
    return {_module_name(p): _module_level_imports(p) for p in CORE.rglob("*.py")}


def test_core_imports_no_plugin() -> None:
    graph = _core_graph()
    offenders = {
        module: sorted(
            d for d in imports if d.startswith(("modelshelf.default_plugins", "modelshelf_"))
        )
        for module, imports in graph.items()
        if not module.startswith(("modelshelf.default_plugins", "modelshelf.testing"))
    }
    assert "modelshelf.shelf" in offenders  # the graph covers core
    assert not {m: d for m, d in offenders.items() if d}


def test_core_has_no_import_cycle() -> None:
    graph = _core_graph()
    edges = {m: {d for d in imports if d in graph and d != m} for m, imports in graph.items()}
    assert sum(map(len, edges.values())) > 100  # relative imports were resolved
    # Depth-first search; a grey module met again closes a cycle.
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = "grey"
        for target in sorted(edges[module]):
            if state.get(target) == "grey":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = "black"

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert not cycles, f"import cycles at module level: {cycles[:5]}"
