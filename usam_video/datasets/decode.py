"""Frame decoding and resizing in worker processes, beside the process that drives SAM 2.

A thread that decodes JPEGs beside SAM 2's thread slows SAM 2 down far more than its own CPU
time, although Pillow releases the interpreter lock while it decodes and resizes: every time
the decoding thread takes the lock back (between Pillow's calls, at each read of the file, for
the Python in between), SAM 2's thread, which gives the lock up at every torch operation, waits
for it at its next one. Measured on DAVIS blackswan (854x480 -> 256 px, ~7 ms of decoding and
resizing a frame, 2 cores, 1 torch thread, 10-12 alternating rounds): bare sam2 propagation
was **4-7 % slower** with a thread decoding at its pace, and **no slower** (0.997-0.998) with a
process doing the same (BENCHMARKS.md section 2, "Session 7").

So frames whose source can say how to read one frame anywhere
(:meth:`~usam_video.datasets.base.FrameSource.frame_task`: JPEG files) and that are large enough
to be worth the hand-over (``usam_video.engine.predictor.PROCESS_DECODE_MIN_PIXELS``: at 128x128
a process made the session 3.9 % slower than a thread, at 854x480 3.1 % faster) are decoded
and resized by a small pool of worker processes, shared by every frames object of this process and started
on first use. The pixels are the same: the task is the source's own reading code and the resize
is :func:`resize_frame` in both places (tested bit for bit). Sources bound to a decoder's state
(an mp4 read through decord) are read on threads as before, and so is everything when worker
processes cannot start or have broken (a warning says so once).

The pool uses the ``spawn`` start method: a fork of a process running torch's thread pools
may deadlock, and spawn is what every platform supports. A worker imports this package's
readers only (no torch): ~0.3 s, once.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image

__all__ = ["DecodeProcesses", "read_resized", "resize_frame"]

log = logging.getLogger(__name__)

FrameTask = Callable[[], np.ndarray]


def resize_frame(frame: np.ndarray, image_size: int) -> np.ndarray:
    """``uint8`` ``(H, W, 3)`` RGB -> ``uint8`` ``(S, S, 3)``: Pillow's default resize, as sam2's
    frame loader does."""
    return np.asarray(Image.fromarray(frame).resize((image_size, image_size)))


def read_resized(task: FrameTask, image_size: int) -> np.ndarray:
    """Read one frame with ``task`` and resize it: ``uint8`` ``(S, S, 3)`` (what a worker runs)."""
    return resize_frame(task(), image_size)


class DecodeProcesses:
    """The process-wide pool of decoding workers (see the module docstring).

    :meth:`submit` returns None where no worker process can take the frame (they could not
    start, or one died): the caller then decodes on its own thread.
    """

    _lock = threading.Lock()
    _pool: ProcessPoolExecutor | None = None
    _workers = 0
    _unavailable: str | None = None

    @classmethod
    def submit(cls, task: FrameTask, image_size: int, workers: int) -> Future[np.ndarray] | None:
        """Decode and resize one frame on a worker process (``workers`` of them at most)."""
        pool = cls._get(workers)
        if pool is None:
            return None
        try:
            return pool.submit(read_resized, task, image_size)
        except (BrokenProcessPool, RuntimeError) as exc:  # broken, or shut down at exit
            cls.disable(f"{type(exc).__name__}: {exc}")
            return None

    @classmethod
    def disable(cls, why: str) -> None:
        """Stop using worker processes in this process (frames are decoded on threads)."""
        with cls._lock:
            if cls._unavailable is None:
                log.warning("frame decoding goes back to threads: worker processes unavailable (%s)", why)
                cls._unavailable = why
            pool, cls._pool = cls._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def _get(cls, workers: int) -> ProcessPoolExecutor | None:
        with cls._lock:
            if cls._unavailable is not None:
                return None
            if cls._pool is None or cls._workers < workers:
                old = cls._pool
                try:
                    cls._pool = ProcessPoolExecutor(
                        max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn")
                    )
                except (OSError, ValueError, NotImplementedError) as exc:  # no semaphores, no /dev/shm
                    cls._unavailable = f"{type(exc).__name__}: {exc}"
                    log.warning("frame decoding stays on threads: %s", cls._unavailable)
                    return None
                cls._workers = max(1, workers)
                if old is not None:
                    old.shutdown(wait=False)  # its queued frames still finish
            return cls._pool
