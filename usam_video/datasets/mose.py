"""Reader for the MOSE layout.

::

    <root>/<split>/JPEGImages/<video>/%05d.jpg     RGB frames
    <root>/<split>/Annotations/<video>/%05d.png    palette PNGs as in DAVIS (0 background,
                                                   1..N objects, 255 void)
    <root>/meta_<split>.json                       optional (also looked for inside <split>/):
        {"videos": {<video>: {"length": T, "height": H, "width": W, "objects": {"1": {...}}}}}

Video ids are 8 hex characters (not enforced: any folder name works). ``train`` is annotated
on every frame, ``valid`` on the first frame only; objects may enter after frame 0 and then
start from the first annotated frame that shows them. Every check runs per video, so one
broken video fails alone.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.sources import jpeg_frame_size, jpeg_sequence
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError
from usam_video.palette import (
    annotation_from_index_map,
    image_header,
    object_ids_of,
    read_palette_png,
)
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

__all__ = ["ANNOTATIONS_DIR", "IMAGES_DIR", "MoseReader", "meta_file_name"]

#: The MOSE layout: ``<root>/<split>/<IMAGES_DIR>/<video>/`` and
#: ``<root>/<split>/<ANNOTATIONS_DIR>/<video>/`` (the writers of generated datasets use these).
IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"


def meta_file_name(split: str) -> str:
    """``meta_<split>.json``: the optional per-video metadata of a split."""
    return f"meta_{split}.json"


_MASK_NAME = re.compile(r"^(\d{5})\.png$")
# MOSE masks are palette images; a greyscale or RGB file is a converted copy whose indices
# may no longer be the object ids.
_PALETTE_ONLY = ("P",)


class MoseReader(DatasetReader):
    """MOSE (``format: mose``); ``split`` picks the ``<root>/<split>/`` folder."""

    def __init__(self, config: DatasetConfig):
        if config.split is None:  # DatasetConfig enforces this; guard direct construction
            raise DatasetError(f"dataset {config.name!r}: expected 'split' (e.g. train), got none.")
        self.name = config.name
        self._config = config
        self.root = Path(config.root)
        self.split = config.split
        self._images = self.root / self.split / IMAGES_DIR
        self._annotations = self.root / self.split / ANNOTATIONS_DIR
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"{self.root}: expected a MOSE dataset root folder, found nothing. "
                "Check 'root' in the dataset config."
            )
        if not self._images.is_dir() or not self._annotations.is_dir():
            raise DatasetError(
                f"{self.root / self.split}: expected a MOSE split folder with JPEGImages/ and "
                f"Annotations/, found {sorted(p.name for p in self.root.iterdir())} in {self.root}."
            )
        candidates = [
            self.root / meta_file_name(self.split),
            self.root / self.split / meta_file_name(self.split),
        ]
        self.meta_path: Path | None = next((p for p in candidates if p.is_file()), None)

    # ------------------------------------------------------------------ listings (cached)

    def list_videos(self) -> list[str]:
        if self._config.videos is not None:
            return list(self._config.videos)
        return sorted(p.name for p in self._images.iterdir() if p.is_dir())

    @lru_cache(maxsize=1)  # noqa: B019  (one meta file per reader; parsed once)
    def _meta(self) -> dict[str, Any] | None:
        if self.meta_path is None:
            return None
        try:
            data = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{self.meta_path}: expected a readable JSON meta file, got: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
            raise DatasetError(
                f"{self.meta_path}: expected {{'videos': {{<video>: {{...}}}}}}, got "
                f"{type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else []}."
            )
        return data["videos"]

    def _meta_entry(self, video_id: str) -> dict[str, Any] | None:
        videos = self._meta()
        if videos is None:
            return None
        entry = videos.get(video_id)
        if not isinstance(entry, dict):
            raise DatasetError(
                f"{self.meta_path}: expected an entry for video {video_id!r}, whose folder "
                f"{self._images / video_id} exists, got {'none' if entry is None else repr(entry)[:80]}."
            )
        return entry

    @lru_cache(maxsize=64)  # noqa: B019  (a reader lives for one run; caching its listings is the point)
    def _frame_paths(self, video_id: str) -> tuple[Path, ...]:
        return jpeg_sequence(self._images / video_id, video_id)

    @lru_cache(maxsize=64)  # noqa: B019
    def _mask_paths(self, video_id: str) -> dict[int, Path]:
        folder = self._annotations / video_id
        if not folder.is_dir():
            raise AnnotationError(
                f"{folder}: expected the annotation folder of video {video_id!r}, found nothing."
            )
        num_frames = len(self._frame_paths(video_id))
        found: dict[int, Path] = {}
        for path in folder.iterdir():
            match = _MASK_NAME.match(path.name)
            if match:
                index = int(match.group(1))
                if index >= num_frames:
                    raise AnnotationError(
                        f"{path}: expected annotations of frames 00000..{num_frames - 1:05d} of video "
                        f"{video_id!r} ({num_frames} JPEG frames), got one for frame {index}."
                    )
                found[index] = path
        if not found:
            raise AnnotationError(f"{folder}: expected %05d.png masks of video {video_id!r}, found none.")
        return dict(sorted(found.items()))

    # ------------------------------------------------------------------ interface

    @lru_cache(maxsize=64)  # noqa: B019
    def video(self, video_id: str) -> VideoRef:
        paths = self._frame_paths(video_id)
        height, width = jpeg_frame_size(paths, video_id)
        # Headers only: a mask of another size or mode fails here, before any decoding.
        for path in self._mask_paths(video_id).values():
            mask_h, mask_w, mode = image_header(path)
            if mode not in _PALETTE_ONLY:
                raise AnnotationError(
                    f"{path}: expected a palette ('P') PNG of video {video_id!r}, got colour mode {mode!r}."
                )
            if (mask_h, mask_w) != (height, width):
                raise AnnotationError(
                    f"{path}: expected a mask of {height}x{width} (HxW) like the frames of video "
                    f"{video_id!r}, got {mask_h}x{mask_w}."
                )
        entry = self._meta_entry(video_id)
        if entry is not None:
            for key, actual in (("length", len(paths)), ("height", height), ("width", width)):
                if key in entry and entry[key] != actual:
                    raise DatasetError(
                        f"{self.meta_path}: video {video_id!r}: expected {key} {actual} as found in "
                        f"{self._images / video_id}, got {entry[key]!r}."
                    )
        return VideoRef(self.name, video_id, len(paths), height, width)

    def frames(self, video_id: str) -> FrameSource:
        ref = self.video(video_id)
        return JpegFolderSource(self._frame_paths(video_id), ref.height, ref.width)

    def annotated_frames(self, video_id: str) -> list[int]:
        self.video(video_id)
        return list(self._mask_paths(video_id))

    def _index_map(self, video_id: str, path: Path) -> np.ndarray:
        ref = self.video(video_id)
        labels = read_palette_png(path, modes=_PALETTE_ONLY)
        if labels.shape != (ref.height, ref.width):  # the header said otherwise: file changed
            raise AnnotationError(
                f"{path}: expected a mask of {ref.height}x{ref.width} (HxW), got "
                f"{labels.shape[0]}x{labels.shape[1]}."
            )
        return labels

    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        """First-appearance masks: each object starts on the first annotated frame showing it.

        Reads every annotated mask once (train annotates every frame), keeping only the
        first mask of each object. With a meta file, its object ids must be exactly those found.
        """
        self.video(video_id)
        first: dict[int, ObjectPrompt] = {}
        for frame, path in self._mask_paths(video_id).items():
            labels = self._index_map(video_id, path)
            for obj in object_ids_of(labels):
                if obj not in first:
                    first[obj] = ObjectPrompt(obj, frame, labels == obj)
        if not first:
            raise AnnotationError(
                f"{self._annotations / video_id}: expected at least one object (index 1..254) in the "
                f"masks of video {video_id!r}, found only background/void."
            )
        entry = self._meta_entry(video_id)
        if entry is not None and isinstance(entry.get("objects"), dict):
            try:
                meta_ids = sorted(int(k) for k in entry["objects"])
            except ValueError as exc:
                raise DatasetError(
                    f"{self.meta_path}: video {video_id!r}: expected integer object ids, "
                    f"got {sorted(entry['objects'])}."
                ) from exc
            if meta_ids != sorted(first):
                raise DatasetError(
                    f"{self.meta_path}: video {video_id!r}: expected objects {sorted(first)} as found in "
                    f"{self._annotations / video_id}, got {meta_ids}."
                )
        return sorted(first.values(), key=lambda p: (p.frame_index, p.object_id))

    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        path = self._mask_paths(video_id).get(frame_index)
        if path is None:
            return None
        return annotation_from_index_map(frame_index, self._index_map(video_id, path))
