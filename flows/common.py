"""What several flows share: the retry rule, Prefect artifact keys and the global ``gpu`` limit.

Prefect is imported inside the functions that need it, never at module level: ``usam-video
deploy`` (:mod:`flows.deploy`) creates the same ``gpu`` limit the flows acquire, through this
module, without importing a flow module (which loads torch and sam2 through the pipeline) or
prefect's client before it talks to a server.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from usam_video.errors import NOT_RETRIED

__all__ = [
    "GPU_LIMIT_NAME",
    "artifact_key_of",
    "ensure_concurrency_limit",
    "ensure_gpu_limit",
    "gpu_slot",
    "retry_unless_bad_input",
    "store_artifact_key",
]

#: The global concurrency limit every GPU task acquires with ``strict=True``.
GPU_LIMIT_NAME = "gpu"


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures (CUDA OOM, I/O hiccups), never bad input, a write the OS refused
    (read-only, no space) or a damaged video: they fail the same way until someone acts.

    A Prefect ``retry_condition_fn``: ``state`` is the failed task run's state."""
    try:
        state.result()
    except NOT_RETRIED:
        return False
    except Exception:
        return True
    return True


def artifact_key_of(name: str) -> str:
    """``name`` as a Prefect artifact key: lowercase letters, digits and dashes only (any other
    run of characters becomes one dash; ``run`` when nothing is left)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "run"


def store_artifact_key(prefix: str, store: str) -> str:
    """``<prefix>-<store name>`` as a Prefect artifact key (lowercase, digits and dashes only;
    the store's name without ``.zarr``)."""
    name = Path(store.rstrip("/")).name.removesuffix(".zarr")
    return artifact_key_of(f"{prefix}-{name}")


def ensure_concurrency_limit(name: str, limit: int, *, update: bool = True) -> str:
    """Create the global concurrency limit ``name`` with ``limit`` slots if the API lacks it.

    Args:
        name: the limit's name.
        limit: its number of slots (at least 1).
        update: also set an existing limit to ``limit`` slots and activate it (``usam-video
            deploy``); False leaves an existing limit as an operator configured it (a flow run).

    Returns:
        ``created``, ``updated`` or ``unchanged``.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    if limit < 1:
        raise ValueError(f"concurrency limit {name!r}: expected at least 1 slot, got {limit}.")
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
            return "created"
        if not update or (current.limit == limit and current.active):
            return "unchanged"
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
        return "updated"


def ensure_gpu_limit(limit: int) -> None:
    """Create the global ``gpu`` limit with ``limit`` slots if this Prefect server lacks it (an
    existing one keeps its slots)."""
    ensure_concurrency_limit(GPU_LIMIT_NAME, limit, update=False)


def gpu_slot(use_gpu_limit: bool) -> contextlib.AbstractContextManager[Any]:
    """Hold one slot of the global ``gpu`` limit while the block runs (``use_gpu_limit``), or
    nothing. ``strict=True``: a missing limit is an error, never a silent "no limit" (the flow
    creates it first with :func:`ensure_gpu_limit`)."""
    if not use_gpu_limit:
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency(GPU_LIMIT_NAME, occupy=1, strict=True)
