"""No module imports another module's private name (``from x import _y``): what a module shares
is public, and a private name may change without notice (ARCHITECTURE.md: a private name never
crosses a module boundary)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = []
    for package in ("usam_video", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.module.split(".")[0] in ("usam_video", "flows")
                ):
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            offenders.append(
                                f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}"
                            )
    assert offenders == [], "private names imported across modules:\n" + "\n".join(offenders)
