"""The architecture the folder names promise: background modules import one way, and the
numerics do no I/O. A new import that breaks a layer fails here, before it becomes a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CROWD = Path(__file__).resolve().parents[1] / "crowd"

#: crowd/background's layers, bottom first (see crowd/background/__init__.py).
BACKGROUND = ["connections", "scheduling", "webhooks", "training", "aggregation"]
#: What pure numerics must never import: servers, HTTP, files of the service.
IO = (
    "psycopg2",
    "redis",
    "rq",
    "requests",
    "flask",
    "crowd.store",
    "crowd.background",
    "crowd.api",
)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``from a import b`` gives ``a`` and
    ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", BACKGROUND)
def test_background_modules_import_only_lower_layers(module: str) -> None:
    higher = BACKGROUND[BACKGROUND.index(module) + 1 :]
    imported = _imports(CROWD / "background" / f"{module}.py")
    wrong = sorted(f"crowd.background.{h}" for h in higher if f"crowd.background.{h}" in imported)
    assert not wrong, f"crowd.background.{module} imports a higher layer: {wrong}"


def test_store_and_numerics_never_import_the_background_package() -> None:
    """The store and the numerics sit below the background package: they never import it."""
    for folder in ("store", "em", "learn"):
        for path in (CROWD / folder).rglob("*.py"):
            assert not any(m.startswith("crowd.background") for m in _imports(path)), path


def test_numerics_do_no_io() -> None:
    for path in (CROWD / "em").rglob("*.py"):
        bad = sorted(m for m in _imports(path) if any(m == p or m.startswith(f"{p}.") for p in IO))
        assert not bad, f"{path.relative_to(CROWD.parent)} imports {bad}"
