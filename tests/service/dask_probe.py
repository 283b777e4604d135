"""A flow whose tasks report the process they ran in (kept in its own small module: Dask worker
processes import it to run the task, and should not import the test modules with it)."""

from __future__ import annotations

import os

from prefect import flow, task

__all__ = ["where", "probe"]


@task
def where(index: int) -> int:
    """The process id of the worker that ran this task."""
    return os.getpid()


@flow(name="dask-probe")
def probe(n: int) -> list[int]:
    """Submit ``n`` tasks (so that the flow's task runner runs them) and collect their pids."""
    return [future.result() for future in [where.submit(i) for i in range(n)]]
