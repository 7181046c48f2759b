"""The catalog is the lower layer: payments may import it, never the other way round (its admin's display
helpers are in `core.admin_display`, the demo order and discounts in `payments`' seed_demo)."""

from __future__ import annotations

import ast
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_in_the_catalog_imports_payments() -> None:
    offenders = {
        f"{path.relative_to(CATALOG.parent)}: {name}"
        for path in CATALOG.rglob("*.py")
        if "tests" not in path.relative_to(CATALOG).parts
        for name in imported_modules(path)
        if name.split(".")[0] == "payments"
    }
    assert not offenders


def test_imported_modules_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from payments.models import Order\n    import payments.admin\n")
    assert imported_modules(source) == {"payments.models", "payments.admin"}
