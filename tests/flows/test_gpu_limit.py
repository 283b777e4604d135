"""The one ``gpu`` limit helper: a flow run creates a missing limit and leaves an existing one
as configured; ``usam-video deploy`` also sets an existing one to its slot count."""

from __future__ import annotations

import pytest


def test_a_flow_creates_the_limit_and_deploy_updates_it(prefect_harness) -> None:
    from prefect.client.orchestration import get_client

    from flows.gpu_limit import ensure_concurrency_limit

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
