"""The sha256 of a file: the one helper behind checkpoint provenance, the heads hash and the sam2
integrity check (stdlib only, so any layer may import it, like ``types``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

#: Read size: large checkpoints are hashed without holding them in memory.
_BLOCK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex sha256 (64 lowercase characters) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
