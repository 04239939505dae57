"""The package's shape stays as the structure issue left it: short functions, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "npmlp"
MAX_LINES = 60


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
                if lines > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"split these into named steps: {long}"


def _imports(path: Path) -> set[str]:
    """The npmlp modules ``path`` imports at run time (imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in typing_only:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found - {path.stem}


def test_module_level_imports_have_no_cycles() -> None:
    graph = {p.stem: _imports(p) for p in SRC.glob("*.py")}
    seen: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for dep in sorted(graph.get(module, ())):
            assert seen.get(dep) != 1, f"import cycle: {' -> '.join([*path, module, dep])}"
            if dep not in seen:
                visit(dep, [*path, module])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen and module != "__init__":
            visit(module, [])
