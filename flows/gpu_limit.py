"""The global ``gpu`` concurrency limit the flows acquire, and the helpers that create it.

A module of its own, importing prefect only (lazily), so that ``usam-video deploy`` and the flows
share one name and one implementation without ``deploy`` importing a flow module (which loads
torch and sam2 through the pipeline).
"""

from __future__ import annotations

__all__ = ["GPU_LIMIT_NAME", "ensure_concurrency_limit", "ensure_gpu_limit"]

#: The global concurrency limit every GPU task acquires with ``strict=True``.
GPU_LIMIT_NAME = "gpu"


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
