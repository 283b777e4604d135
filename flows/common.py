"""What several flows share: the Prefect artifact key of a store."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["store_artifact_key"]


def store_artifact_key(prefix: str, store: str) -> str:
    """``<prefix>-<store name>`` as a Prefect artifact key (lowercase, digits and dashes only;
    the store's name without ``.zarr``)."""
    name = Path(store.rstrip("/")).name.removesuffix(".zarr")
    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{name}".lower()).strip("-")
