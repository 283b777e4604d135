"""The writer of one video's frames in the pseudo-label store (see :mod:`.zarr_store`'s layout).

:meth:`usam_video.store.PseudoLabelStore.begin_video` creates the video's arrays and returns a
:class:`VideoWriter`; the labelling loop hands each frame to it and marks the video complete with
:meth:`VideoWriter.finish`.

Writes leave the caller's thread (issue #17, "keep the GPU busy"): :meth:`VideoWriter.write_frame`
checks the shapes, copies the arrays and puts them on a bounded queue (:data:`QUEUE_FRAMES`
frames; a full queue blocks the caller, so memory stays bounded), and one daemon thread per
writer does the writing:

* ``masks``: one chunk per frame, written as soon as the frame arrives (the layout the storage
  benchmark chose, see :func:`usam_video.store.zarr_store.mask_layout`);
* the small arrays (``scores``, ``reason``, ``source``, ``revision``, ``candidate_scores`` and
  ``status``, chunked :data:`BLOCK_FRAMES` frames at a time): kept in memory per block of frames
  and written one whole chunk at a time once the block is full, at :meth:`VideoWriter.finish`,
  or once its oldest unwritten frame has waited :data:`FLUSH_AFTER_S` (so a slow run still shows
  its progress on disk, and ``inspect`` of a running video is never more than that behind).

Whole chunks (every frame's masks, every full block) are encoded by the arrays' own zarr codecs
and written by :class:`~usam_video.store.chunks.ChunkWriter`, byte for byte what zarr would
write, without zarr's per-call Python (which held the interpreter lock beside SAM 2's thread);
a partial block, an update and any store but a local one go through zarr.

Status last: a block's ``status`` is written only after the masks of its frames and every other
array of the block, so a crash (kill -9) never leaves a frame-object with a status but without
its mask and scores. A failure on the thread (a full disk, a flaky backend) stops it and is
raised in the caller at its next call; nothing is marked complete after a failed write.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from usam_video.errors import StoreError, UsamVideoError, store_write_error
from usam_video.store.chunks import ChunkWriter
from usam_video.store.records import WriteCounts
from usam_video.types import MaskSource, Status

__all__ = ["BLOCK_FRAMES", "FLUSH_AFTER_S", "QUEUE_FRAMES", "VideoWriter", "stop_writer"]

#: Frames per chunk of the small arrays (chunks ``(BLOCK_FRAMES, O, ...)``). The storage
#: benchmark (BENCHMARKS.md, section 4) wrote the six of them for 2 / 8 objects in 29 / 71 ms per
#: frame with chunks (1, 1, ...) (one write per array per frame, 12 000 / 48 000 files per 1000
#: frames), 1.2 / 1.1 ms in blocks of 8, 0.27 / 0.21 ms in blocks of 32 (188 files per 1000
#: frames) and 0.12 / 0.13 ms in blocks of 64. Past 32 the gain is a tenth of a millisecond,
#: while every rewrite of one frame-object (a refinement, a correction: read-modify-write of its
#: chunk) and every partial write of a slow run's block (:data:`FLUSH_AFTER_S`) grows with the
#: block; a 32-frame block of 8 objects is a 256-byte status chunk.
BLOCK_FRAMES = 32
#: Frames handed over and not yet taken by the writer thread. At 1920x1080 with 8 objects a
#: frame is ~17 MB of masks, so 4 frames bound the queue to ~70 MB while absorbing a slow write.
QUEUE_FRAMES = 4
#: A block not yet full is written anyway once its oldest unwritten frame has waited this long.
FLUSH_AFTER_S = 0.5
# The order a block is written in: status last (see the module docstring).
_SMALL = ("scores", "reason", "source", "revision", "candidate_scores", "status")


@dataclass(frozen=True, eq=False)
class _Frame:
    """One frame handed to the writer thread (copies, owned by the thread)."""

    index: int
    arrays: dict[str, np.ndarray]  # masks and every small array present, one frame each


@dataclass(frozen=True, eq=False)
class _Update:
    """``update_decisions`` handed to the writer thread (applied after every frame before it)."""

    frames: np.ndarray
    objects: np.ndarray
    status: int
    reason: int


@dataclass(frozen=True, eq=False)
class _Flush:
    """Write every block still in memory, then set ``done``."""

    done: threading.Event


_STOP = object()


class _Block:
    """The small arrays' rows of one block of frames ``[start, stop)``, held until written."""

    def __init__(self, start: int, stop: int, values: dict[str, np.ndarray], filled: bool):
        self.start, self.stop = start, stop
        self.values = values
        self.filled = np.full(stop - start, filled)  # rows received (or read back from disk)
        self.dirty: set[str] = set()  # arrays changed since the block was last written
        self.since: float | None = None  # when its oldest unwritten change arrived

    def touch(self, names: Sequence[str]) -> None:
        self.dirty.update(names)
        if self.since is None:
            self.since = time.monotonic()


class _Sink:
    """What the writer thread owns: the arrays, the queue, the blocks in memory, the first error.

    Holds no reference to its :class:`VideoWriter`, so a writer dropped without ``finish`` or
    ``abort`` is garbage-collected and its finalizer stops this thread.
    """

    def __init__(
        self, group: zarr.Group, arrays: Mapping[str, zarr.Array], queue_frames: int, flush_after_s: float
    ):
        self.where = f"video {group.name.rsplit('/', 1)[-1]!r}"
        self.arrays: dict[str, zarr.Array] = dict(arrays)
        # Whole chunks (a frame's masks, a full block) skip zarr's per-call machinery where the
        # array allows it (see store/chunks.py); anything else goes through zarr.
        self.chunk_writers = {n: ChunkWriter.for_array(a) for n, a in self.arrays.items()}
        self.block = int(self.arrays["status"].chunks[0])
        self.num_frames = int(self.arrays["status"].shape[0])
        self.flush_after_s = flush_after_s
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_frames)
        self.blocks: dict[int, _Block] = {}
        self.on_disk: set[int] = set()  # blocks written at least once
        self.error: BaseException | None = None
        self.doing = ""  # what the thread is writing (named when it fails)
        self.discard = threading.Event()  # stop at once, dropping what is not yet written
        self.key: tuple[str, str] | None = None  # its entry in _LIVE
        self.thread = threading.Thread(
            target=self.run, name=f"usam-video store writer ({self.where})", daemon=True
        )

    # --- the thread ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.discard.is_set():
                try:
                    item = self.queue.get(timeout=self._until_due())
                except queue.Empty:
                    self._write_due()
                    continue
                if self.discard.is_set():
                    return
                if item is _STOP:  # what was handed over lands before the thread ends
                    self._write_blocks(list(self.blocks))
                    return
                if isinstance(item, _Frame):
                    self._frame(item)
                elif isinstance(item, _Update):
                    self._update(item)
                else:
                    self._write_blocks(list(self.blocks))
                    item.done.set()
        except BaseException as exc:  # any failure: raised in the caller at its next call
            self.error = exc
        finally:
            self._release_waiters()
            with _LIVE_LOCK:
                if self.key is not None and _LIVE.get(self.key) is self:
                    del _LIVE[self.key]

    def put(self, name: str, selection: Any, values: np.ndarray) -> None:
        """One write to the store (the seam tests use to make a write fail or stall)."""
        fast = self.chunk_writers[name]
        if fast is None or not fast.write(selection, values):
            self.arrays[name][selection] = values

    def _frame(self, frame: _Frame) -> None:
        t = frame.index
        self.doing = f"frame {t}"
        self.put("masks", t, frame.arrays["masks"])
        block = self._block_of(t // self.block)
        row = t - block.start
        for name, value in frame.arrays.items():
            if name != "masks":
                block.values[name][row] = value
        block.filled[row] = True
        block.touch([n for n in frame.arrays if n != "masks"])
        if block.filled.all():
            self._write_blocks([t // self.block])

    def _update(self, update: _Update) -> None:
        touched = sorted({int(t) // self.block for t in update.frames.tolist()})
        self.doing = f"the decisions of {len(update.frames)} frame-object(s)"
        for k in touched:
            block = self._block_of(k)
            rows = update.frames // self.block == k
            t, o = update.frames[rows] - block.start, update.objects[rows]
            block.values["reason"][t, o] = update.reason
            block.values["status"][t, o] = update.status
            block.touch(["reason", "status"])
        self._write_blocks(touched)

    def _block_of(self, k: int) -> _Block:
        if k not in self.blocks:
            start, stop = k * self.block, min((k + 1) * self.block, self.num_frames)
            small = [n for n in _SMALL if n in self.arrays]
            if k in self.on_disk:  # written before (a frame rewritten, decisions updated): read it
                self.doing = f"frames {start}-{stop - 1} (read back)"
                values = {n: self.arrays[n][start:stop] for n in small}
            else:
                values = {
                    n: np.full(
                        (stop - start, *self.arrays[n].shape[1:]),
                        self.arrays[n].fill_value,
                        self.arrays[n].dtype,
                    )
                    for n in small
                }
            self.blocks[k] = _Block(start, stop, values, filled=k in self.on_disk)
        return self.blocks[k]

    def _write_blocks(self, keys: Sequence[int]) -> None:
        """Write the changed arrays of these blocks (whole chunks), status last; drop full ones."""
        for k in keys:
            block = self.blocks[k]
            self.doing = f"frames {block.start}-{block.stop - 1}"
            for name in _SMALL:  # status last
                if name in block.dirty:
                    self.put(name, slice(block.start, block.stop), block.values[name])
            block.dirty.clear()
            block.since = None
            self.on_disk.add(k)
            if block.filled.all():
                del self.blocks[k]

    def _until_due(self) -> float | None:
        waiting = [b.since for b in self.blocks.values() if b.since is not None]
        if not waiting:
            return None
        return max(0.0, min(waiting) + self.flush_after_s - time.monotonic())

    def _write_due(self) -> None:
        now = time.monotonic()
        self._write_blocks(
            [k for k, b in self.blocks.items() if b.since is not None and now - b.since >= self.flush_after_s]
        )

    def _release_waiters(self) -> None:
        """Empty the queue so that a caller blocked on a full queue or waiting on a flush goes on
        (its next call sees the error or the stop)."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Flush):
                item.done.set()

    # --- the caller's side --------------------------------------------------------------------
    def send(self, item: Any) -> None:
        """Put ``item`` on the queue, blocking while it is full, unless the thread has stopped."""
        while True:
            if not self.thread.is_alive():
                return
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=0.05)
                return

    def wait_written(self) -> None:
        """Block until the thread has written everything handed to it (or has stopped)."""
        done = threading.Event()
        self.send(_Flush(done))
        while not done.wait(0.05):
            if not self.thread.is_alive():
                return

    def stop(self, discard: bool = False, join: bool = True) -> None:
        """Stop the thread after what it holds is written (``discard``: at once, dropping it)."""
        if discard:
            self.discard.set()
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_STOP)
        else:
            self.send(_STOP)
        if join and self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join()


# The running writer threads of this process by (store location, video id). A video begun again
# while an earlier writer of it still runs (one kept alive by a traceback before a retry, or one
# just dropped whose thread has not yet seen its stop) stops that thread and waits for it first,
# so that it never writes into the new group's arrays. Each thread removes itself when it ends.
_LIVE: dict[tuple[str, str], _Sink] = {}
_LIVE_LOCK = threading.Lock()


def stop_writer(location: str, video_id: str) -> None:
    """Stop, dropping what it has not written, and wait for the writer thread of video
    ``video_id`` of the store at ``location`` (none running: nothing happens). Called before a
    video's group is replaced."""
    with _LIVE_LOCK:
        sink = _LIVE.get((location, video_id))
    if sink is not None:
        sink.stop(discard=True)


class VideoWriter:
    """Writes one video's frames on a writer thread; :meth:`finish` marks the video complete.

    Use it as a context manager (``with store.begin_video(...) as writer:``) or call
    :meth:`abort` on failure: leaving the block without :meth:`finish` aborts. ``arrays`` are
    the group's arrays when the caller has them open already (``begin_video`` just made them);
    else they are opened from the group.
    """

    def __init__(
        self,
        group: zarr.Group,
        num_objects: int,
        num_scores: int,
        generation: int = 0,
        *,
        location: str = "",
        queue_frames: int = QUEUE_FRAMES,
        flush_after_s: float = FLUSH_AFTER_S,
        arrays: Mapping[str, zarr.Array] | None = None,
        on_finish: Callable[[np.ndarray], None] | None = None,
    ):
        self._group = group
        # Told, with the ``uint8`` ``(T, O)`` status written, once the video is complete: the
        # store writes the video's change marker (store/index.py).
        self._on_finish = on_finish
        # Opened from the group (each one's metadata read back) unless the caller has them.
        source: Any = group if arrays is None else arrays
        arrays = {n: source[n] for n in ("masks", *_SMALL) if n in source}
        self._masks_shape = tuple(arrays["masks"].shape)
        self._candidates_shape = (
            tuple(arrays["candidate_scores"].shape) if "candidate_scores" in arrays else None
        )
        self.generation = generation
        self._num_objects = num_objects
        self._num_scores = num_scores
        self.frames_written = 0
        t = self._masks_shape[0]
        # The writer's own bookkeeping: finish checks and counts these, never reads status back.
        self._status = np.zeros((t, num_objects), np.uint8)
        self._reason = np.zeros((t, num_objects), np.uint8)
        self._closed = ""  # why no more writes are taken ("" while open)
        self._sink = _Sink(group, arrays, queue_frames, flush_after_s)
        if location:  # begin_video stopped any earlier writer of the video before this one
            self._sink.key = (location, group.name.rsplit("/", 1)[-1])
            with _LIVE_LOCK:
                _LIVE[self._sink.key] = self._sink
        self._sink.thread.start()
        # A writer dropped without finish or abort stops its thread, dropping what is unwritten
        # (the video is incomplete, so the next run redoes it anyway).
        self._finalizer = weakref.finalize(self, self._sink.stop, True, False)

    @property
    def video(self) -> str:
        return self._sink.where

    # --- frames -------------------------------------------------------------------------------
    def write_frame(
        self,
        frame_index: int,
        masks: np.ndarray,
        scores: np.ndarray,
        status: np.ndarray,
        reason: np.ndarray,
        candidate_scores: np.ndarray | None = None,
        source: np.ndarray | None = None,
    ) -> None:
        """Hand one frame to the writer thread: ``masks`` bool ``(O, H, W)``, ``scores`` float32
        ``(O, S)``, ``status``/``reason`` uint8 ``(O,)``, ``candidate_scores`` float32
        ``(O, K, C)`` when the video was begun with candidate score names, ``source`` uint8
        ``(O,)`` (default propagated).

        The arrays are copied: the caller may reuse them at once. Blocks while
        :data:`QUEUE_FRAMES` frames wait for the thread.

        Raises:
            StoreError: wrong shapes or frame index (at once), or this writer was finished,
                aborted or has failed.
            Exception: the error of an earlier write on the writer thread (its original type,
                with a note naming the video and frames).
        """
        self._check_open()
        o, s = self._num_objects, self._num_scores
        if masks.shape != (o, *self._masks_shape[2:]) or scores.shape != (o, s):
            raise StoreError(
                f"frame {frame_index}: expected masks {(o, *self._masks_shape[2:])} and scores {(o, s)}, "
                f"got {masks.shape} and {scores.shape}."
            )
        if not 0 <= frame_index < self._masks_shape[0]:
            raise StoreError(
                f"{self.video}: expected a frame in 0..{self._masks_shape[0] - 1}, got {frame_index}."
            )
        arrays = {
            "masks": np.array(masks, dtype=bool),
            "scores": np.array(scores, dtype=np.float32),
            "status": np.array(status, dtype=np.uint8),
            "reason": np.array(reason, dtype=np.uint8),
            "source": np.full(o, MaskSource.PROPAGATED, np.uint8)
            if source is None
            else np.array(source, dtype=np.uint8),
            "revision": np.full(o, self.generation, np.uint32),
        }
        if self._candidates_shape is not None:
            expected = (o, *self._candidates_shape[2:])
            if candidate_scores is None or candidate_scores.shape != expected:
                got = None if candidate_scores is None else candidate_scores.shape
                raise StoreError(f"frame {frame_index}: expected candidate scores {expected}, got {got}.")
            arrays["candidate_scores"] = np.array(candidate_scores, dtype=np.float32)
        self._sink.send(_Frame(frame_index, arrays))
        self._check_open()
        self._status[frame_index] = arrays["status"]
        self._reason[frame_index] = arrays["reason"]
        self.frames_written += 1

    def update_decisions(self, frames: np.ndarray, objects: np.ndarray, status: int, reason: int) -> None:
        """Set the status and reason code of frame-objects (row ``frames[i]``, object index
        ``objects[i]``) already handed over, e.g. when a budget turns queued ones away.

        Applied on the writer thread after every frame handed over before it (status last)."""
        self._check_open()
        frames = np.asarray(frames, dtype=np.int64).ravel()
        objects = np.asarray(objects, dtype=np.int64).ravel()
        if frames.shape != objects.shape:
            raise StoreError(
                f"{self.video}: expected as many frames as objects, got {frames.shape} and {objects.shape}."
            )
        self._status[frames, objects] = status  # IndexError for a frame-object out of range
        self._reason[frames, objects] = reason
        self._sink.send(_Update(frames, objects, int(status), int(reason)))

    def set_review_plan(self, entries: Sequence[Mapping[str, Any]], review_round: int = 1) -> None:
        """Keep the review planner's picks of this video (see :meth:`PseudoLabelStore.review_plan`)
        and the review round they were planned in (:attr:`VideoSummary.review_round`), which
        stays known when a round plans no pick."""
        self._check_open()
        self._group.attrs.update({"review_plan": [dict(e) for e in entries], "review_round": review_round})

    # --- the end ------------------------------------------------------------------------------
    def finish(self) -> WriteCounts:
        """Wait until every frame is written, mark the video complete, stop the thread and
        return what was written.

        Raises:
            StoreError: a frame was never written (the video stays incomplete), or the writer was
                aborted, finished or has failed before.
            Exception: the error of a write on the writer thread (the video stays incomplete).
        """
        self._check_open()
        self._sink.wait_written()
        self._check_open()
        pending = self._status == Status.PENDING
        if pending.any():
            self._close()
            missing = np.unique(np.nonzero(pending)[0])
            raise StoreError(
                f"video {self._group.name}: expected every frame written before completion, "
                f"frames {missing[:10].tolist()} are missing."
            )
        self._sink.stop()
        self._check_open()  # an error in the last moments
        try:
            self._group.attrs["complete"] = True
        except OSError as exc:  # a full disk at the very end: the video stays incomplete
            self._closed = "failed"
            raise store_write_error(f"{self.video}, marking it complete", exc) from exc
        self._closed = "finished"
        self._finalizer.detach()
        if self._on_finish is not None:
            # The index is a cache: a video left without its marker is read from its group.
            with contextlib.suppress(UsamVideoError):
                self._on_finish(self._status.copy())
        return WriteCounts.count(self._status, self._reason)

    def abort(self) -> None:
        """Stop the writer thread without completing the video (what was handed over is still
        written, best effort). Idempotent; :meth:`finish` afterwards raises."""
        if not self._closed:
            self._close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._closed != "finished":
            self.abort()

    def _close(self, discard: bool = False) -> None:
        self._closed = self._closed or "aborted"
        self._sink.stop(discard=discard)
        self._finalizer.detach()

    def _check_open(self) -> None:
        """Raise the writer thread's error (once, as its own type), or refuse a closed writer."""
        error = self._sink.error
        if not self._closed and self._sink.discard.is_set():
            self._closed = "stopped because the video was begun again"
        if error is not None and self._closed != "failed":
            self._closed = "failed"
            self._sink.stop(discard=True)
            self._finalizer.detach()
            if isinstance(error, OSError) and not isinstance(error, UsamVideoError):
                # A full disk or a read-only store: one line with the OS's reason, not a traceback.
                raise store_write_error(f"{self.video}, {self._sink.doing}", error) from error
            error.add_note(
                f"usam-video: raised by the store's writer thread, {self.video}, {self._sink.doing}."
            )
            raise error
        if self._closed:
            cause = f": {type(error).__name__}: {error}" if error is not None else ""
            raise StoreError(
                f"{self.video}: expected an open writer, got one {self._closed}{cause}. "
                "Begin the video again to rewrite it."
            )
