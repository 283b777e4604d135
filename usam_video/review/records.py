"""Records passed between the review queue's exporters, format writers and readers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ExportFrame", "ParsedMask", "object_label", "parse_object_label"]

_LABEL_PREFIX = "object_"


def object_label(object_id: int) -> str:
    """The label/category name of an object in CVAT and COCO exports (``object_<id>``)."""
    return f"{_LABEL_PREFIX}{object_id}"


def parse_object_label(label: str) -> int | None:
    """The object id of an ``object_<id>`` label, or None for any other label."""
    if not label.startswith(_LABEL_PREFIX):
        return None
    digits = label[len(_LABEL_PREFIX) :]
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True, eq=False)
class ExportFrame:
    """One exported frame with every object's current mask.

    Attributes:
        task_frame: 0-based number of the frame among the video's exported frames (its frame
            number in the video's CVAT task).
        image: path of the frame's JPEG relative to the export folder.
        object_ids: the ``O`` objects of the video.
        masks: ``bool`` ``(O, H, W)`` stored masks.
        present: ``bool`` ``(O,)``: False for objects not started on this frame (no mask to review;
            left out of the annotation files).
    """

    video_id: str
    frame: int
    task_frame: int
    image: str
    object_ids: tuple[int, ...]
    masks: np.ndarray
    present: np.ndarray

    @property
    def height(self) -> int:
        return int(self.masks.shape[1])

    @property
    def width(self) -> int:
        return int(self.masks.shape[2])


@dataclass(frozen=True, eq=False)
class ParsedMask:
    """One frame-object read from an annotator's file, before validation against the store.

    Attributes:
        mask: ``bool`` ``(h, w)`` at the size the file gives (checked against the store later).
        where: the entry's location in the file, for error messages.
    """

    video_id: str
    frame: int
    object_id: int
    mask: np.ndarray
    where: str
