"""Release tests: the store labelled by the trained micro SAM 2 with its heads (``micro_store``
in tests/conftest.py: real masks and real iou_video scores), copied where a test changes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tree_hashes(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path`` (empty when it does not exist)."""
    if not path.exists():
        return {}
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def store_copy(micro_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(micro_store, tmp_path / "store.zarr"))
