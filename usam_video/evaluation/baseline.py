"""The copy-first-mask baseline, in memory: the first annotated frame's objects on every frame.

The trivial tracker every model must beat. Its predictions are built here from the first
annotation alone, as one uint8 index map per video, and handed to the protocols as
:class:`~usam_video.evaluation.protocols.FrameMasks` exactly as a DAVIS predictions folder
holding that index map on every frame reads (so the J&F is the one of the same masks written
as palette PNGs and read back, without the files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from usam_video.evaluation.protocols import FrameMasks
from usam_video.types import FrameAnnotation

__all__ = ["CopyFirstMask"]


@dataclass(frozen=True)
class CopyFirstMask:
    """The baseline's prediction of one video: ``index_map`` uint8 ``(H, W)`` on every frame
    (0 background, each object's id on its pixels)."""

    index_map: npt.NDArray[np.uint8]

    @classmethod
    def of(cls, first: FrameAnnotation | None, height: int, width: int) -> CopyFirstMask:
        """The baseline of a video of ``height x width`` pixels from its first annotation
        (``first.masks`` bool ``(O, H, W)``; None: an empty prediction).

        Objects are painted in the annotation's order, so where their masks overlap the later
        one wins the pixel, as in a DAVIS index map.
        """
        index_map = np.zeros((height, width), dtype=np.uint8)
        if first is not None:
            for object_id, mask in zip(first.object_ids, first.masks, strict=True):
                index_map[mask] = object_id
        return cls(index_map)

    def frames(self, frames: Sequence[int], object_ids: Sequence[int] | None) -> dict[int, FrameMasks]:
        """``{frame: masks}`` on ``frames``: bool ``(O, H, W)`` for ``object_ids`` (None: the ids
        the index map holds, ascending), with the index map kept for the DAVIS protocol."""
        ids = (
            tuple(int(v) for v in np.unique(self.index_map) if v != 0)
            if object_ids is None
            else tuple(object_ids)
        )
        if ids:
            masks = np.stack([self.index_map == i for i in ids])
        else:
            masks = np.zeros((0, *self.index_map.shape), bool)
        # Every frame holds the same prediction: one array, shared (the protocols only read it).
        return {t: FrameMasks(ids, masks, self.index_map) for t in frames}
