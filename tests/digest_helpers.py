"""Shared by the tests that check a store or folder is left byte for byte the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["tree_digest"]


def tree_digest(path: Path) -> str:
    """sha256 over every file's relative path and bytes under ``path``, in sorted order."""
    digest = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(Path(path))).encode() + f.read_bytes())
    return digest.hexdigest()
