"""The package layout is the pipeline: each package imports only those before it, and no
module imports a module that imports it back (imports needed for type annotations only, under
`if TYPE_CHECKING:`, do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "generator"
# The packages (and top-level modules) in pipeline order: each may import those before it.
ORDER = ["errors", "progress", "child", "model", "library", "memory", "boards", "check", "pipeline", "output",
         "cli", "__main__"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["tinygen", *parts])


def imports(path: Path) -> set[str]:
    """The tinygen modules `path` imports at run time (any depth, function-level too)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for node in ast.walk(block)}
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("tinygen"):
                continue
            for alias in node.names:  # `from . import x` may import module x
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tinygen")}
    return {name for name in found if name in MODULES and name != module_name(path)}


MODULES = {module_name(path): path for path in SOURCE.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def rank(module: str) -> int:
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 else -1


def test_no_module_imports_one_that_imports_it_back():
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(GRAPH[name]):
            assert state.get(other) != 1, "import cycle: " + " -> ".join(path + [name, other])
            if other not in state:
                visit(other, path + [name])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])


def test_each_package_imports_only_those_before_it():
    for name, targets in GRAPH.items():
        for target in targets:
            if name == "tinygen" or target == "tinygen":  # the package's own __init__ (its version)
                continue
            assert rank(target) <= rank(name), f"{name} imports {target}, which comes later in {ORDER}"


def test_every_package_says_what_it_owns():
    for path in SOURCE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no docstring"
