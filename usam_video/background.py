"""One background thread that consumes items in order from a bounded queue.

The loop that drives the model hands each frame over and goes on with the next one; the
frame's host work (assembly, scoring, decisions, handing it to the store) happens here
meanwhile. The queue is bounded, so a slow consumer slows the producer instead of holding an
unbounded number of frames; the first error of the consumer (any exception, a
``KeyboardInterrupt`` included) is raised again in the producer at its next :meth:`put` or at
:meth:`close`, and nothing more is consumed after it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundConsumer"]

T = TypeVar("T")
_STOP = object()


class BackgroundConsumer(Generic[T]):
    """Calls ``consume(item)`` for every :meth:`put` item, in order, on one daemon thread.

    Usage::

        with BackgroundConsumer(finish_frame, maxsize=2, name="finish") as consumer:
            for frame in frames:
                consumer.put(frame)
        # leaving the block without an error waits for every item (close); with one, abandons
        # the rest (abort) and lets the error through.

    Args:
        consume: the work per item; runs on the background thread.
        maxsize: items waiting at most (``put`` blocks beyond).
        name: the thread's name (shown by debuggers and thread dumps).
    """

    def __init__(self, consume: Callable[[T], None], maxsize: int = 2, name: str = "usam-consumer"):
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, maxsize))
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._error is not None or self._stopped.is_set():
                if item is _STOP:
                    return
                continue  # after an error or an abort: drain without consuming
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001  (handed to the producer, never lost)
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue an item (blocks while ``maxsize`` items wait); raises the consumer's error, if
        any, instead."""
        self._raise_error()
        if self._stopped.is_set():
            raise RuntimeError("BackgroundConsumer: put after close or abort")
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                # The consumer may have failed while we waited: do not wait forever.
                self._raise_error()

    def close(self) -> None:
        """Wait until every queued item is consumed and the thread has ended; raise the
        consumer's error, if any."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._stopped.set()
        self._raise_error()

    def abort(self) -> None:
        """Drop what is still queued and end the thread (idempotent, never raises)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundConsumer[T]:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
