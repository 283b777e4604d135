"""Where evaluation's masks come from: prediction sources (a store, a DAVIS or SA-V predictions
folder) and the dataset's ground truth.

The pipeline's side of :mod:`usam_video.pipeline.evaluate`: these read the store and the dataset
readers, which the evaluation package may not import; what they return (:class:`FrameMasks`,
:class:`~usam_video.types.FrameAnnotation`, uint8 index maps) is all the protocols in
:mod:`usam_video.evaluation.protocols` see.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from usam_video.datasets import DatasetReader, DavisReader
from usam_video.errors import EvaluationError, StoreError, VideoNotFoundError
from usam_video.evaluation.jf import VOID_LABEL
from usam_video.evaluation.protocols import FrameMasks, masks_to_index_map
from usam_video.evaluation.readers import (
    LAYOUTS,
    detect_prediction_layout,
    read_davis_prediction_folder,
    read_sav_prediction_folder,
)
from usam_video.store import FrameTable, PseudoLabelStore
from usam_video.types import FrameAnnotation, VideoRef

__all__ = [
    "DavisFolderPredictions",
    "Predictions",
    "SavFolderPredictions",
    "StorePredictions",
    "ground_truth",
    "gt_index_map",
    "open_predictions",
]


class Predictions(abc.ABC):
    """Where predicted masks come from."""

    kind: str
    location: str

    def prepare(self, video: VideoRef) -> str | None:
        """Check the source has ``video`` with its geometry; return a reason to skip it or None."""
        return None

    @abc.abstractmethod
    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, FrameMasks]:
        """``{frame: masks}`` on ``frames``; ``object_ids`` the objects needed (None: all)."""


class StorePredictions(Predictions):
    """A usam-video store: masks bool ``(O, H, W)`` per frame for the video's stored objects; a
    video must exist with the dataset's geometry, and an incomplete one is skipped."""

    kind = "store"

    def __init__(self, store: PseudoLabelStore, tables: Mapping[str, FrameTable] | None = None):
        self.store = store
        self.location = store.location
        self.tables = dict(tables or {})

    def frame_table(self, video_id: str) -> FrameTable:
        """The video's frame table: the one given (what a run just wrote), else the store's."""
        known = self.tables.get(video_id)
        return known if known is not None else self.store.frame_table(video_id)

    def prepare(self, video: VideoRef) -> str | None:
        try:
            summary = self.store.summary(video.video_id)
        except VideoNotFoundError as exc:
            raise EvaluationError(
                f"{self.location}: expected video {video.video_id!r} of the dataset in the store, "
                f"found only {self.store.videos()}. Label it first, or select videos with --video."
            ) from exc
        geometry = (summary.num_frames, summary.height, summary.width)
        if geometry != (video.num_frames, video.height, video.width):
            raise EvaluationError(
                f"{self.location}: expected video {video.video_id!r} with {video.num_frames} frames "
                f"of {video.height}x{video.width} (HxW) like the dataset, the store holds "
                f"{geometry[0]} frames of {geometry[1]}x{geometry[2]}."
            )
        if not summary.complete:
            return "incomplete in the store (labelling was interrupted); run the labelling again"
        return None

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, FrameMasks]:
        stored = tuple(int(i) for i in self.store.summary(video.video_id).object_ids)
        if object_ids is not None:
            missing = sorted(set(object_ids) - set(stored))
            if missing:
                raise EvaluationError(
                    f"{self.location}: expected objects {sorted(object_ids)} of video "
                    f"{video.video_id!r} (its ground truth), the store has {list(stored)}."
                )
        return {t: FrameMasks(stored, self.store.read_masks(video.video_id, t)) for t in frames}


class DavisFolderPredictions(Predictions):
    """``<root>/<video>/%05d.png`` palette PNGs; each frame keeps the index map it read."""

    kind = "davis-folder"

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, FrameMasks]:
        maps = read_davis_prediction_folder(
            self.root, video.video_id, frame_indices=frames, size=(video.height, video.width)
        )
        out = {}
        for t, index_map in zip(frames, maps, strict=True):
            ids = (
                tuple(int(v) for v in np.unique(index_map) if v != 0)
                if object_ids is None
                else tuple(object_ids)
            )
            masks = np.stack([index_map == i for i in ids]) if ids else np.zeros((0, *index_map.shape), bool)
            out[t] = FrameMasks(ids, masks, index_map)
        return out


class SavFolderPredictions(Predictions):
    """``<root>/<video>/<obj:03d>/%05d.png`` binary PNGs, one folder per object."""

    kind = "sav-folder"

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, FrameMasks]:
        masks = read_sav_prediction_folder(
            self.root,
            video.video_id,
            frame_indices=frames,
            object_ids=object_ids,
            size=(video.height, video.width),
        )
        ids = tuple(sorted(masks))
        empty = np.zeros((0, video.height, video.width), dtype=bool)
        return {t: FrameMasks(ids, np.stack([masks[i][t] for i in ids]) if ids else empty) for t in frames}


def open_predictions(source: Path | str, layout: str | None, videos: Sequence[str]) -> Predictions:
    """Open ``source`` as a store if it is one, else as a predictions folder.

    Args:
        source: a store path (or ``file://`` URL) or a folder of predicted masks.
        layout: ``"davis"`` or ``"sav"`` for a folder; None detects it from ``videos``' folders.
        videos: the videos to evaluate (layout detection looks at their folders).

    Raises:
        EvaluationError: nothing at ``source``, an unknown layout, a layout given for a store,
            or neither a store nor a folder in a known layout (both reasons are given).
    """
    path = Path(str(source).removeprefix("file://"))
    if not path.exists():
        raise EvaluationError(
            f"{path}: expected a usam-video store or a folder of predicted masks, found nothing."
        )
    if layout is not None and layout not in LAYOUTS:
        raise EvaluationError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}.")
    try:
        store = PseudoLabelStore.open(path, "r")
    except StoreError as store_error:
        if not path.is_dir():
            raise EvaluationError(
                f"{path}: expected a usam-video store or a folder of predicted masks, found a file."
            ) from store_error
        try:
            found = layout or detect_prediction_layout(path, videos)
        except EvaluationError as folder_error:
            prefix = f"{path}: "
            raise EvaluationError(
                f"{path}: expected a usam-video store or a folder of predicted masks, found neither. "
                f"As a folder: {str(folder_error).removeprefix(prefix)} "
                f"As a store: {str(store_error).removeprefix(prefix)}"
            ) from folder_error
        return DavisFolderPredictions(path) if found == "davis" else SavFolderPredictions(path)
    if layout is not None:
        raise EvaluationError(
            f"{path}: is a usam-video store; --layout {layout} applies to predictions folders only."
        )
    return StorePredictions(store)


def ground_truth(reader: DatasetReader, video: VideoRef, frame: int) -> FrameAnnotation:
    """The ground truth of an annotated frame, checked against the video's ``(H, W)``.

    Raises:
        EvaluationError: the reader lists the frame as annotated but has no ground truth for
            it, or the masks' size differs from the video's.
    """
    annotation = reader.ground_truth(video.video_id, frame)
    if annotation is None:
        raise EvaluationError(
            f"dataset {reader.name!r} video {video.video_id!r}: expected ground truth on frame "
            f"{frame}, which the reader lists as annotated, found none."
        )
    if annotation.masks.shape[1:] != (video.height, video.width):
        raise EvaluationError(
            f"dataset {reader.name!r} video {video.video_id!r} frame {frame}: expected ground truth "
            f"of {video.height}x{video.width} (HxW), got {annotation.masks.shape[1:]}."
        )
    return annotation


def gt_index_map(reader: DatasetReader, video: VideoRef, frame: int) -> npt.NDArray[np.uint8]:
    """uint8 ``(H, W)`` DAVIS index map of one annotated frame (255 void)."""
    if isinstance(reader, DavisReader):
        index_map = reader.index_map(video.video_id, frame)
        if index_map is not None:
            return index_map
    annotation = ground_truth(reader, video, frame)
    index_map = masks_to_index_map(
        annotation.object_ids,
        annotation.masks,
        where=f"dataset {reader.name!r} video {video.video_id!r} frame {frame} ground truth",
    )
    if annotation.void is not None:
        index_map[annotation.void] = VOID_LABEL
    return index_map
