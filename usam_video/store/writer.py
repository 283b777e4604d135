"""The writer of one video's frames in the pseudo-label store (see :mod:`.zarr_store`'s layout).

:meth:`usam_video.store.PseudoLabelStore.begin_video` creates the video's arrays and returns a
:class:`VideoWriter`; the labelling loop writes each frame through it and marks the video
complete with :meth:`VideoWriter.finish`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from usam_video.errors import StoreError
from usam_video.types import MaskSource, Status

__all__ = ["VideoWriter"]


class VideoWriter:
    """Writes one video's frames; :meth:`finish` marks the video complete."""

    def __init__(self, group: zarr.Group, num_objects: int, num_scores: int, generation: int = 0):
        self._group = group
        self._masks = group["masks"]
        self._scores = group["scores"]
        self._status = group["status"]
        self._reason = group["reason"]
        self._source = group["source"]
        self._revision = group["revision"]
        self.generation = generation
        self._candidates = group["candidate_scores"] if "candidate_scores" in group else None
        self._num_objects = num_objects
        self._num_scores = num_scores
        self.frames_written = 0

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
        """Write one frame: ``masks`` bool ``(O, H, W)``, ``scores`` float32 ``(O, S)``,
        ``status``/``reason`` uint8 ``(O,)``, ``candidate_scores`` float32 ``(O, K, C)`` when the
        video was begun with candidate score names, ``source`` uint8 ``(O,)`` (default
        propagated)."""
        o, s = self._num_objects, self._num_scores
        if masks.shape != (o, *self._masks.shape[2:]) or scores.shape != (o, s):
            raise StoreError(
                f"frame {frame_index}: expected masks {(o, *self._masks.shape[2:])} and scores {(o, s)}, "
                f"got {masks.shape} and {scores.shape}."
            )
        if self._candidates is not None:
            expected = (o, *self._candidates.shape[2:])
            if candidate_scores is None or candidate_scores.shape != expected:
                got = None if candidate_scores is None else candidate_scores.shape
                raise StoreError(f"frame {frame_index}: expected candidate scores {expected}, got {got}.")
            self._candidates[frame_index] = candidate_scores.astype(np.float32)
        self._masks[frame_index] = masks.astype(bool)
        self._scores[frame_index] = scores.astype(np.float32)
        self._reason[frame_index] = reason.astype(np.uint8)
        self._source[frame_index] = (
            np.full(o, MaskSource.PROPAGATED, np.uint8) if source is None else source.astype(np.uint8)
        )
        self._revision[frame_index] = np.full(o, self.generation, np.uint32)
        # Status last: a frame-object with a status has its mask and scores on disk.
        self._status[frame_index] = status.astype(np.uint8)
        self.frames_written += 1

    def update_decisions(self, frames: np.ndarray, objects: np.ndarray, status: int, reason: int) -> None:
        """Set the status and reason code of frame-objects (row ``frames[i]``, object index
        ``objects[i]``) already written, e.g. when a budget turns queued ones away."""
        for t, o in zip(frames.tolist(), objects.tolist(), strict=True):
            self._reason[t, o] = reason
            self._status[t, o] = status

    def set_review_plan(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Keep the review planner's picks of this video (see :meth:`PseudoLabelStore.review_plan`)."""
        self._group.attrs["review_plan"] = [dict(e) for e in entries]

    def finish(self) -> None:
        """Mark the video complete; refuses if a frame was never written."""
        status = self._status[:]
        if (status == Status.PENDING).any():
            missing = np.unique(np.nonzero(status == Status.PENDING)[0])
            raise StoreError(
                f"video {self._group.name}: expected every frame written before completion, "
                f"frames {missing[:10].tolist()} are missing."
            )
        self._group.attrs["complete"] = True
