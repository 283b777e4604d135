"""Which Prefect task runner executes a flow's submitted tasks: threads or a Dask cluster.

Prefect's :class:`~prefect.task_runners.ThreadPoolTaskRunner` (the flows' default) runs tasks in
threads of the flow's process. ``dask`` runs them on a Dask cluster through ``prefect-dask``:
a ``LocalCluster`` of worker processes on this machine (CPU-side work such as evaluation and
exports escapes the GIL), or an existing cluster by address (``dask scheduler`` on one host,
``dask worker tcp://host:8786`` on each of the others), so one flow run spreads over machines.

Only tasks a flow submits (``task.submit``/``task.map``) reach the runner; a task called
directly runs inline in the flow's thread whatever the runner.
"""

from __future__ import annotations

from typing import Any, Literal, ParamSpec, TypeVar, get_args

from prefect import Flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

__all__ = ["TaskRunnerName", "TASK_RUNNERS", "task_runner_for", "with_task_runner"]

TaskRunnerName = Literal["thread", "dask"]
TASK_RUNNERS: tuple[str, ...] = get_args(TaskRunnerName)

P = ParamSpec("P")
R = TypeVar("R")


def task_runner_for(name: str, workers: int = 2, address: str | None = None) -> TaskRunner[Any]:
    """A fresh task runner by name.

    Args:
        name: ``thread`` (Prefect's thread pool, ``workers`` threads) or ``dask``.
        workers: threads of the pool, or worker processes of the local Dask cluster (one thread
            each: the work is Python and NumPy, so processes, not threads, give parallelism).
        address: ``dask`` only: the scheduler of an existing cluster (``tcp://host:8786``)
            instead of a local one.

    Raises:
        ValueError: an unknown name, ``workers`` below 1, or ``address`` with ``thread``.
    """
    if name not in TASK_RUNNERS:
        raise ValueError(f"task runner: expected one of {list(TASK_RUNNERS)}, got {name!r}.")
    if workers < 1:
        raise ValueError(f"task runner workers: expected at least 1, got {workers}.")
    if name == "thread":
        if address is not None:
            raise ValueError(f"task runner 'thread' runs in this process: got a Dask address {address!r}.")
        return ThreadPoolTaskRunner(max_workers=workers)
    # Imported here: prefect-dask pulls in distributed, which the thread runner never needs.
    from prefect_dask import DaskTaskRunner

    if address is not None:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "processes": True,
            "threads_per_worker": 1,
            # Loopback only, no dashboard: nothing of a local cluster listens beyond this host.
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
    )


def with_task_runner(flow: Flow[P, R], name: str, workers: int = 2, address: str | None = None) -> Flow[P, R]:
    """``flow`` with the task runner ``task_runner_for(name, workers, address)`` (a copy; the
    module's flow object is unchanged)."""
    return flow.with_options(task_runner=task_runner_for(name, workers, address))
