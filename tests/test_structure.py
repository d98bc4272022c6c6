"""Layout rules the developers' guide sets, checked on the source: no import cycles inside a
package (``TYPE_CHECKING`` imports included), no import of another distribution's private
module, no module far over ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "data": ROOT / "packages/mlx-audio-data/src/mlx_audio/data",
    "loggers": ROOT / "packages/mlx-audio-loggers/src/mlx_audio/loggers",
    "train": ROOT / "packages/mlx-audio-train/src/mlx_audio/train",
    "models": ROOT / "packages/mlx-audio-models/src/mlx_audio/models",
}
MAX_LINES = 420
# (package, test) pairs known to fail, with the reason: none today.
PENDING: dict[tuple[str, str], str] = {}


def cases(test: str) -> list:
    marks = {
        p: pytest.mark.xfail(strict=True, reason=r) for (t, p), r in PENDING.items() if t == test
    }
    return [pytest.param(p, marks=marks.get(p, ())) for p in sorted(PACKAGES)]


def module_name(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("mlx_audio", package, *parts))


def imports(package: str, path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    name = module_name(package, path)
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                module = ".".join(prefix + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def sources(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


@pytest.mark.parametrize("package", cases("test_no_import_cycles"))
def test_no_import_cycles(package):
    modules = {module_name(package, p): p for p in sources(package)}
    graph = {
        name: {
            m
            for m in imports(package, path)
            if m in modules and m != name and not name.startswith(m + ".")
        }
        for name, path in modules.items()
    }
    # a package's __init__ importing its own submodules is not a cycle of the code's logic
    for name in graph:
        graph[name] = {
            m for m in graph[name] if not (modules[m].name == "__init__.py" and name.startswith(m))
        }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(
                    "import cycle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt])
                )
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)


@pytest.mark.parametrize("package", cases("test_no_private_imports_across_distributions"))
def test_no_private_imports_across_distributions(package):
    for path in sources(package):
        for name in imports(package, path):
            parts = name.split(".")
            if len(parts) > 2 and parts[0] == "mlx_audio" and parts[1] != package:
                assert not any(p.startswith("_") for p in parts[2:]), f"{path.name} imports {name}"


@pytest.mark.parametrize("package", cases("test_modules_stay_small"))
def test_modules_stay_small(package):
    long = {
        p.name: n for p in sources(package) if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
