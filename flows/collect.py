"""Collect a flow's submitted tasks as they finish, not in the order they were submitted.

Waiting in submission order holds a finished task's result (and its failure) back until every
task submitted before it is done: a failure deep in a long run would be reported only at the
end. The flows log each result as it lands and still report in the order of their inputs.

A collected future's result is released where the task runner keeps it: Dask holds a task's
result on the worker that computed it for as long as the client holds its future (and Prefect's
``as_completed`` holds every future it was given until the last one is done), so a worker killed
late in a run of thousands of videos had every result it still held computed again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from prefect.futures import PrefectFuture, as_completed

__all__ = ["as_they_complete"]

R = TypeVar("R")


def as_they_complete(
    futures: Sequence[PrefectFuture[R]],
) -> Iterator[tuple[int, R | None, Exception | None]]:
    """Yield ``(position, result, None)``, or ``(position, None, error)`` for a task that failed
    (after its retries), for each future as it completes; ``position`` is its index in ``futures``.
    """
    position = {id(future): i for i, future in enumerate(futures)}
    for future in as_completed(list(futures)):
        try:
            result, error = future.result(), None
        except Exception as exc:  # the task's own failure, re-raised by result(): reported, not fatal
            result, error = None, exc
        _release(future)
        yield position[id(future)], result, error


def _release(future: PrefectFuture[R]) -> None:
    """Let the runner forget a collected future's result (a Dask future's ``release``; a
    thread-pool future has none and holds nothing elsewhere)."""
    release = getattr(getattr(future, "wrapped_future", None), "release", None)
    if callable(release):
        release()
