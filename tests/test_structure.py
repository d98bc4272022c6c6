"""Layout rules the developers' guide sets, checked on the source: no import cycles inside a
package at run time, no import of another distribution's private module, no module far over ~400
lines.

An import under ``if TYPE_CHECKING:`` is not a cycle: it never runs, and it is how the helpers
type their ``trainer: Trainer`` parameters (Lightning's ``"pl.Trainer"``). Such imports are left
out of the cycle check, and only of it (they may still not reach another package's private module).
"""

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


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return found


def imports(package: str, path: Path, run_time_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved); with
    ``run_time_only``, not those under ``if TYPE_CHECKING:``."""
    name = module_name(package, path)
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree) if run_time_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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
            for m in imports(package, path, run_time_only=True)
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


def test_type_checking_imports_are_told_apart():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from .a import x\n"
        "if TYPE_CHECKING:\n"
        "    from .trainer import Trainer\n"
    )
    skipped = _type_checking_only(tree)
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) in skipped}
    assert names == {"trainer"}


def _functions(package: str):
    for path in sources(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_train_helpers_take_a_typed_trainer():
    """The trainer contract is typed (``trainer: Trainer`` under TYPE_CHECKING), never ``Any``."""
    loose = [
        f"{path.name}:{node.lineno} {node.name}"
        for path, node in _functions("train")
        for arg in node.args.args + node.args.kwonlyargs
        if arg.arg in ("trainer", "module")
        and ast.unparse(arg.annotation or ast.Name("Any")) == "Any"
    ]
    assert not loose, f"untyped trainer/module parameters: {loose}"


def test_hook_names_are_written_out():
    """No hook name is built from a string (``f"on_{stage}_end"``): grepping a hook's name finds
    every place that calls it."""
    built = []
    for package in ("train",):
        for path in sources(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.JoinedStr) and node.values:
                    first = node.values[0]
                    if isinstance(first, ast.Constant) and str(first.value).startswith("on_"):
                        built.append(f"{path.name}:{node.lineno}")
    assert not built, f"hook names built at run time: {built}"


INITS = [
    *(p / "__init__.py" for p in PACKAGES.values()),
    ROOT / "packages/mlx-audio-stack/src/mlx_audio/__init__.py",
]


@pytest.mark.parametrize("init", INITS, ids=lambda p: p.parent.name)
def test_lazy_exports_are_typed(init):
    """A package's lazy exports (PEP 562) are also imported under TYPE_CHECKING, name for name,
    so a user's type checker sees ``mlx_audio.data.DataLoader`` as the class, not ``Any``."""
    tree = ast.parse(init.read_text())
    exports = next(
        (
            ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "_EXPORTS"
        ),
        None,
    )
    if exports is None:  # eager imports (mlx_audio.loggers): typed as they are
        assert "__getattr__" not in init.read_text(), f"{init}: lazy exports without _EXPORTS"
        return
    typed = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    for alias in stmt.names:
                        assert alias.asname == alias.name, f"re-export {alias.name} as itself"
                        typed[alias.name] = ("." * stmt.level + (stmt.module or "")).lstrip(".")
    assert sorted(typed) == sorted(exports)
    for name, module in exports.items():
        assert typed[name].endswith(module), (name, typed[name], module)
