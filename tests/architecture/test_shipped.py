"""What ships stands on its own: no module outside ``tests/`` imports the test tree, and the wheel's
package list leaves ``tests`` out. The sandboxes behind ``okrsync sandbox`` and the demo are product
(``okrsync/sandboxes``); only pytest fixtures and tests live under ``tests/``."""

from __future__ import annotations

import ast
import os
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connectors", "flows", "metrics", "okr_store", "okrsync")
# folders that hold no source of ours (besides hidden ones: .venv, .git, tools' caches)
NOT_SOURCE = {"build", "dist", "__pycache__", "node_modules"}


def _is_source(folder: Path, name: str) -> bool:
    return not (name.startswith(".") or name in NOT_SOURCE or name.endswith(".egg-info")
                or (folder == ROOT and name == "tests"))


def shipped_python_files() -> Iterator[Path]:
    """Every ``.py`` file of the repository outside ``tests/`` (and outside hidden and build folders)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if _is_source(Path(folder), d))
        yield from (Path(folder) / f for f in sorted(files) if f.endswith(".py"))


def imports_of_tests(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each import of the test tree in ``path``: ``import tests…``,
    ``from tests… import``, and ``import_module("tests…")`` / ``__import__("tests…")`` with a literal."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) in ("import_module", "__import__"))):
            names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] == "tests":
                yield node.lineno, name


def test_no_shipped_module_imports_the_tests() -> None:
    files = list(shipped_python_files())
    assert {p.relative_to(ROOT).parts[0] for p in files} >= set(PACKAGES)  # the walk sees the packages
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in files for line, name in imports_of_tests(p)]
    assert not bad, "shipped code must not import tests/ (move what it needs into the package):\n" \
        + "\n".join(bad)


def test_the_wheel_leaves_the_tests_out() -> None:
    """setuptools packages what ``include`` names (everything, ``tests`` too, without it)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    include = find.get("include", ["*"])
    assert not [p for p in include if fnmatchcase("tests", p) or fnmatchcase("tests.sandboxes", p)], \
        f"pyproject.toml packages the test tree: {include}"
    assert all(any(fnmatchcase(pkg, p) for p in include) for pkg in PACKAGES), include
