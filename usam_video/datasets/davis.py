"""Reader for the DAVIS 2017 layout.

``JPEGImages/<res>/<seq>/%05d.jpg`` frames, ``Annotations/<res>/<seq>/%05d.png`` palette masks
(0 background, 1..N objects, 255 void) and ``ImageSets/2017/<split>.txt`` lists.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.sources import jpeg_frame_size, jpeg_sequence
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError
from usam_video.palette import (
    VOID_INDEX,
    annotation_from_index_map,
    object_ids_of,
    png_size,
    read_palette_png,
)
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

__all__ = ["ANNOTATIONS_DIR", "IMAGES_DIR", "DavisReader", "split_list_file"]

#: The DAVIS 2017 layout: ``<root>/<IMAGES_DIR>/<resolution>/<seq>/`` and
#: ``<root>/<ANNOTATIONS_DIR>/<resolution>/<seq>/`` (the writers of generated datasets use these).
IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"


def split_list_file(root: Path, split: str) -> Path:
    """``<root>/ImageSets/2017/<split>.txt``: a split's sequence names, one per line."""
    return Path(root) / "ImageSets" / "2017" / f"{split}.txt"


class DavisReader(DatasetReader):
    """DAVIS 2017 (and anything laid out like it: the synthetic demo data, MOSE-like folders)."""

    def __init__(self, config: DatasetConfig):
        self.name = config.name
        self._config = config
        self.root = Path(config.root)
        self._images = self.root / IMAGES_DIR / config.resolution
        self._annotations = self.root / ANNOTATIONS_DIR / config.resolution
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"{self.root}: expected a DAVIS dataset root folder, found nothing. "
                "Check 'root' in the dataset config."
            )
        if not self._images.is_dir() or not self._annotations.is_dir():
            raise DatasetError(
                f"{self.root}: expected a DAVIS layout with JPEGImages/{config.resolution}/ and "
                f"Annotations/{config.resolution}/, found "
                f"{sorted(p.name for p in self.root.iterdir())}."
            )

    def list_videos(self) -> list[str]:
        if self._config.videos is not None:
            return list(self._config.videos)
        if self._config.split is not None:
            list_file = split_list_file(self.root, self._config.split)
            if not list_file.is_file():
                raise DatasetNotFoundError(
                    f"{list_file}: expected the list of split {self._config.split!r}, found nothing."
                )
            return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        return sorted(p.name for p in self._images.iterdir() if p.is_dir())

    @lru_cache(maxsize=64)  # noqa: B019  (a reader lives for one run; caching its listings is the point)
    def _frame_paths(self, video_id: str) -> tuple[Path, ...]:
        return jpeg_sequence(self._images / video_id, video_id, allow_gaps=self._config.frame_gaps)

    def frame_numbers(self, video_id: str) -> tuple[int, ...]:
        """The file number of each frame index: ``0, 1, 2, ...`` unless ``frame_gaps`` (a
        release keeps its frames' numbers in the video it came from)."""
        return tuple(int(p.stem) for p in self._frame_paths(video_id))

    def _mask_path(self, video_id: str, frame_index: int) -> Path:
        numbers = self.frame_numbers(video_id)
        number = numbers[frame_index] if 0 <= frame_index < len(numbers) else frame_index
        return self._annotations / video_id / f"{number:05d}.png"

    @lru_cache(maxsize=64)  # noqa: B019  (a reader lives for one run; caching its listings is the point)
    def _frame_size(self, video_id: str) -> tuple[int, int]:
        # Every frame's header is read up front (cheap: no pixel decoding) so that a frame of
        # another size is reported before anything is written for this video.
        return jpeg_frame_size(self._frame_paths(video_id), video_id)

    def video(self, video_id: str) -> VideoRef:
        paths = self._frame_paths(video_id)
        height, width = self._frame_size(video_id)
        first_mask = self._mask_path(video_id, 0)
        if not first_mask.is_file():
            raise AnnotationError(
                f"{first_mask}: expected the first-frame annotation of video {video_id!r}, found nothing."
            )
        mask_hw = png_size(first_mask)
        if mask_hw != (height, width):
            raise AnnotationError(
                f"{first_mask}: expected a mask of {height}x{width} (HxW) like the frames, "
                f"got {mask_hw[0]}x{mask_hw[1]}."
            )
        return VideoRef(self.name, video_id, len(paths), height, width)

    def frames(self, video_id: str) -> FrameSource:
        ref = self.video(video_id)
        return JpegFolderSource(self._frame_paths(video_id), ref.height, ref.width)

    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        """The first frame's objects, each by its mask; with ``late_objects`` also every object
        that enters later, by its mask on the first annotated frame that holds it."""
        self.video(video_id)
        path = self._mask_path(video_id, 0)
        labels = read_palette_png(path)
        object_ids = sorted(int(v) for v in np.unique(labels) if v not in (0, VOID_INDEX))
        if not object_ids:
            raise AnnotationError(
                f"{path}: expected at least one object (index 1..254) on the first frame, "
                "found only background/void."
            )
        prompts = [ObjectPrompt(obj, 0, labels == obj) for obj in object_ids]
        if self._config.late_objects:
            for obj, frame in self._late_objects(video_id).items():
                prompts.append(ObjectPrompt(obj, frame, self.index_map(video_id, frame) == obj))
        return sorted(prompts, key=lambda p: (p.frame_index, p.object_id))

    @lru_cache(maxsize=64)  # noqa: B019  (reads every annotation of the video once)
    def _late_objects(self, video_id: str) -> dict[int, int]:
        """``{object id: first annotated frame}`` of the objects absent from frame 0's mask."""
        first = set(object_ids_of(read_palette_png(self._mask_path(video_id, 0))))
        late: dict[int, int] = {}
        for t in self.annotated_frames(video_id):
            if t == 0:
                continue
            labels = self.index_map(video_id, t)
            for obj in object_ids_of(labels) if labels is not None else ():
                if obj not in first and obj not in late:
                    late[obj] = t
        return late

    def unprompted_objects(self, video_id: str) -> dict[int, int]:
        """Objects entering after frame 0: left unprompted under DAVIS semantics (the default),
        none with ``late_objects``."""
        return {} if self._config.late_objects else dict(self._late_objects(video_id))

    def annotated_frames(self, video_id: str) -> list[int]:
        folder = self._annotations / video_id
        index_of = {number: t for t, number in enumerate(self.frame_numbers(video_id))}
        found = []
        for path in folder.glob("*.png"):
            if path.stem.isdigit() and int(path.stem) in index_of:
                found.append(index_of[int(path.stem)])
        return sorted(found)

    def index_map(self, video_id: str, frame_index: int) -> np.ndarray | None:
        """``uint8`` ``(H, W)`` palette indices of a frame (0 bg, ids, 255 void), or None."""
        path = self._mask_path(video_id, frame_index)
        if not path.is_file():
            return None
        ref = self.video(video_id)
        labels = read_palette_png(path)
        if labels.shape != (ref.height, ref.width):
            raise AnnotationError(
                f"{path}: expected a mask of {ref.height}x{ref.width} (HxW), got "
                f"{labels.shape[0]}x{labels.shape[1]}."
            )
        return labels

    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        labels = self.index_map(video_id, frame_index)
        if labels is None:
            return None
        return annotation_from_index_map(frame_index, labels)
