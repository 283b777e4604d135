"""The one ``gpu`` limit: a flow run creates a missing limit and leaves an existing one as
configured; ``usam-video deploy`` also sets an existing one to its slot count; a task holds a slot
through ``gpu_slot``."""

from __future__ import annotations

import pytest


def test_a_flow_creates_the_limit_and_deploy_updates_it(prefect_harness) -> None:
    from prefect.client.orchestration import get_client

    from flows.common import ensure_concurrency_limit

    name = "gpu-limit-test"

    def slots() -> int:
        with get_client(sync_client=True) as client:
            return client.read_global_concurrency_limit_by_name(name).limit

    assert ensure_concurrency_limit(name, 2, update=False) == "created"
    assert ensure_concurrency_limit(name, 3, update=False) == "unchanged" and slots() == 2
    assert ensure_concurrency_limit(name, 3) == "updated" and slots() == 3
    assert ensure_concurrency_limit(name, 3) == "unchanged"
    with pytest.raises(ValueError, match="at least 1 slot"):
        ensure_concurrency_limit(name, 0)


def test_a_gpu_slot_is_held_while_the_block_runs(prefect_harness) -> None:
    """``gpu_slot(True)`` holds one slot of the ``gpu`` limit for its block; ``gpu_slot(False)``
    holds nothing and needs no limit."""
    from prefect.client.orchestration import get_client

    from flows.common import GPU_LIMIT_NAME, ensure_gpu_limit, gpu_slot

    def active() -> int:
        with get_client(sync_client=True) as client:
            return client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME).active_slots

    ensure_gpu_limit(1)
    with gpu_slot(False):
        assert active() == 0
    with gpu_slot(True):
        assert active() == 1
    assert active() == 0
