"""A flow whose tasks report the process they ran in (kept in its own small module: Dask worker
processes import it to run the task, and should not import the test modules with it)."""

from __future__ import annotations

import os
import time

from prefect import flow, task

__all__ = ["where", "probe", "results_held_after_collecting"]


@task
def where(index: int) -> int:
    """The process id of the worker that ran this task."""
    return os.getpid()


@flow(name="dask-probe")
def probe(n: int) -> list[int]:
    """Submit ``n`` tasks (so that the flow's task runner runs them) and collect their pids."""
    return [future.result() for future in [where.submit(i) for i in range(n)]]


def _in_memory(dask_scheduler) -> int:  # run on the scheduler by Client.run_on_scheduler
    return sum(ts.state == "memory" for ts in dask_scheduler.tasks.values())


@flow(name="dask-collect")
def results_held_after_collecting(address: str, n: int) -> tuple[list[int], int]:
    """Submit ``n`` tasks, collect them with the flows' :func:`flows.collect.as_they_complete`,
    then ask the scheduler how many results its workers still hold (released ones leave within
    a moment: the release is a message to the scheduler)."""
    from distributed import Client

    from flows.collect import as_they_complete

    futures = [where.submit(i) for i in range(n)]
    pids = [result for _, result, _ in as_they_complete(futures)]
    with Client(address) as client:
        held = client.run_on_scheduler(_in_memory)
        deadline = time.monotonic() + 10
        while held and time.monotonic() < deadline:
            time.sleep(0.1)
            held = client.run_on_scheduler(_in_memory)
    return pids, held
