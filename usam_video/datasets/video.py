"""Reader for plain videos without ground truth, started from a JSON prompt file.

Videos: ``<root>/<video>.mp4`` (decoded with decord) or ``<root>/<video>/`` holding numbered
JPEG frames (``00000.jpg``... or any ``<digits>.jpg``/``.jpeg``, numbered from the first file;
frame index = position), or ``root`` is a single ``.mp4`` whose stem is the video id.

Prompt file (``prompts`` in the dataset config)::

    {"videos": {
        "bedroom": {"objects": [
            {"id": 1, "frame": 0,  "points": [[410, 220], [300, 90]], "labels": [1, 0]},
            {"id": 2, "frame": 30, "box": [120, 40, 380, 300]},
            {"id": 3, "frame": 0,  "points": [[50, 60]], "labels": [1], "box": [10, 20, 90, 100]},
            {"id": 4, "frame": 12, "mask": {"size": [540, 960], "counts": "<COCO RLE>"}},
            {"id": 5, "frame": 0,  "mask": "masks/bedroom_5.png"}
        ]}
    }}

Coordinates are pixels ``(x, y)`` at video resolution; point labels are 1 (positive) or 0
(negative); a box is ``[x0, y0, x1, y1]``. A mask is a COCO RLE (compressed string or
uncompressed list ``counts``) or a PNG (non-zero pixels are the object; modes 1, L or P) whose
path is relative to the prompt file. Each object has exactly one prompt: the frame it starts
on; frames before it hold no mask for it. Unknown keys are errors, so a typo never silently
drops a prompt. A bad entry fails only its own video.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from PIL import Image

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.rle import decode_coco_rle
from usam_video.datasets.sources import Mp4Source, jpeg_frame_size, jpeg_sequence
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError, RleError
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

__all__ = ["PlainVideoReader"]

_OBJECT_KEYS = frozenset({"id", "frame", "points", "labels", "box", "mask"})
_FRAME_FILE = re.compile(r"^\d+\.jpe?g$", re.IGNORECASE)


class PlainVideoReader(DatasetReader):
    """Plain mp4 files or JPEG folders plus a prompt file (``format: video``); no ground truth."""

    def __init__(self, config: DatasetConfig):
        if config.prompts is None:  # DatasetConfig enforces this; guard direct construction
            raise DatasetError(f"dataset {config.name!r}: expected a 'prompts' file, got none.")
        self.name = config.name
        self._config = config
        self.root = Path(config.root)
        self.prompt_file = Path(config.prompts)
        if not self.root.exists():
            raise DatasetNotFoundError(
                f"{self.root}: expected a folder of videos or an mp4 file, found nothing. "
                "Check 'root' in the dataset config."
            )
        if not self.prompt_file.is_file():
            raise DatasetNotFoundError(
                f"{self.prompt_file}: expected the JSON prompt file, found nothing. "
                "Check 'prompts' in the dataset config."
            )

    @lru_cache(maxsize=1)  # noqa: B019  (one prompt file per reader; parsed once)
    def _prompt_table(self) -> dict[str, Any]:
        try:
            data = json.loads(self.prompt_file.read_text())
        except (OSError, ValueError) as exc:
            raise AnnotationError(
                f"{self.prompt_file}: expected a readable JSON prompt file, got: {exc}"
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
            raise AnnotationError(
                f"{self.prompt_file}: expected {{'videos': {{<video id>: {{'objects': [...]}}}}}}, got "
                f"{type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else []}."
            )
        return data["videos"]

    def list_videos(self) -> list[str]:
        """``videos`` from the config, else every video the prompt file names."""
        if self._config.videos is not None:
            return list(self._config.videos)
        return sorted(self._prompt_table())

    def _locate(self, video_id: str) -> Path:
        """The mp4 file or JPEG folder of a video."""
        if self.root.is_file():
            if video_id != self.root.stem:
                raise DatasetNotFoundError(
                    f"{self.root}: expected video {video_id!r} to be this file, "
                    f"got video id {self.root.stem!r}."
                )
            return self.root
        mp4, folder = self.root / f"{video_id}.mp4", self.root / video_id
        if mp4.is_file() and folder.is_dir() and any(_FRAME_FILE.match(p.name) for p in folder.iterdir()):
            raise DatasetError(
                f"{self.root}: expected one source for video {video_id!r}, "
                f"got both {mp4.name} and {folder.name}/."
            )
        if mp4.is_file():
            return mp4
        if folder.is_dir():
            return folder
        raise DatasetNotFoundError(
            f"{self.root}: expected {mp4.name} or a folder {folder.name}/ of JPEG frames for video "
            f"{video_id!r}, found neither."
        )

    @lru_cache(maxsize=64)  # noqa: B019  (a reader lives for one run; caching its listings is the point)
    def _jpegs(self, folder: Path, video_id: str) -> tuple[Path, ...]:
        return jpeg_sequence(folder, video_id, strict_names=False)

    @lru_cache(maxsize=64)  # noqa: B019
    def video(self, video_id: str) -> VideoRef:
        """Geometry; an mp4 is opened and its first frame decoded (decord has no size query)."""
        source = self._locate(video_id)
        if source.is_file():
            with Mp4Source(source, read_ahead=1) as probe:
                return VideoRef(self.name, video_id, len(probe), probe.height, probe.width, probe.fps)
        paths = self._jpegs(source, video_id)
        height, width = jpeg_frame_size(paths, video_id)
        return VideoRef(self.name, video_id, len(paths), height, width)

    def frames(self, video_id: str) -> FrameSource:
        ref = self.video(video_id)
        source = self._locate(video_id)
        if source.is_file():
            return Mp4Source(source)
        return JpegFolderSource(self._jpegs(source, video_id), ref.height, ref.width)

    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        ref = self.video(video_id)
        entry = self._prompt_table().get(video_id)
        where = f"{self.prompt_file}: video {video_id!r}"
        if entry is None:
            raise AnnotationError(f"{where}: expected an entry under 'videos', found none.")
        if not isinstance(entry, dict) or set(entry) != {"objects"} or not isinstance(entry["objects"], list):
            raise AnnotationError(f"{where}: expected {{'objects': [...]}}, got {repr(entry)[:80]}.")
        if not entry["objects"]:
            raise AnnotationError(f"{where}: expected at least one object, got an empty list.")
        prompts: dict[int, ObjectPrompt] = {}
        for position, raw in enumerate(entry["objects"]):
            prompt = _parse_object(raw, f"{where} object #{position}", ref, self.prompt_file.parent)
            if prompt.object_id in prompts:
                raise AnnotationError(
                    f"{where}: expected one prompt per object id, got id {prompt.object_id} twice."
                )
            prompts[prompt.object_id] = prompt
        return sorted(prompts.values(), key=lambda p: (p.frame_index, p.object_id))

    def annotated_frames(self, video_id: str) -> list[int]:
        """Plain videos carry no ground truth."""
        self.video(video_id)
        return []

    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        """Plain videos carry no ground truth: always None."""
        return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain_numbers(value: object) -> bool:
    """Nested lists of JSON numbers; bools are ints to numpy, but a ``true`` here is a typo."""
    if isinstance(value, list):
        return all(_plain_numbers(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: object, where: str, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """``float32`` array of ``shape`` (-1: any length >= 1) from nested JSON numbers."""
    try:
        array = np.asarray(value, dtype=np.float64) if _plain_numbers(value) else np.zeros(0)
    except ValueError:  # ragged nesting
        array = np.zeros(0)
    ok = array.ndim == len(shape) and all(s in (-1, a) for s, a in zip(shape, array.shape, strict=True))
    if not ok or array.size == 0 or not np.isfinite(array).all():
        layout = {(-1, 2): "[[x, y], ...]", (4,): "[x0, y0, x1, y1]"}.get(shape, str(shape))
        raise AnnotationError(
            f"{where}: expected {what} as {layout} of finite numbers, got {repr(value)[:80]}."
        )
    return array.astype(np.float32)


def _parse_object(raw: object, where: str, ref: VideoRef, base: Path) -> ObjectPrompt:
    if not isinstance(raw, dict):
        raise AnnotationError(f"{where}: expected an object {{'id', 'frame', ...}}, got {repr(raw)[:80]}.")
    unknown = sorted(set(raw) - _OBJECT_KEYS)
    if unknown:
        raise AnnotationError(f"{where}: expected keys among {sorted(_OBJECT_KEYS)}, got unknown {unknown}.")
    obj, frame = raw.get("id"), raw.get("frame")
    if not _is_int(obj) or obj < 0:
        raise AnnotationError(f"{where}: expected 'id' a non-negative integer, got {obj!r}.")
    where = f"{where} (id {obj})"
    if not _is_int(frame) or not 0 <= frame < ref.num_frames:
        raise AnnotationError(
            f"{where}: expected 'frame' in 0..{ref.num_frames - 1} (the video has {ref.num_frames} frames), "
            f"got {frame!r}."
        )
    has_mask = "mask" in raw
    if has_mask and ("points" in raw or "box" in raw or "labels" in raw):
        raise AnnotationError(
            f"{where}: expected a mask alone, or points/box, got a mask with points or box."
        )
    if has_mask:
        mask = _parse_mask(raw["mask"], where, ref, base)
        return ObjectPrompt(obj, frame, mask=mask)
    if "points" not in raw and "box" not in raw:
        raise AnnotationError(f"{where}: expected 'mask', 'points' (with 'labels') or 'box', got none.")
    if ("points" in raw) != ("labels" in raw):
        raise AnnotationError(f"{where}: expected 'points' and 'labels' together, got only one of them.")
    points = labels = box = None
    if "points" in raw:
        points = _numbers(raw["points"], where, "'points'", (-1, 2))
        raw_labels = raw["labels"]
        if (
            not isinstance(raw_labels, list)
            or len(raw_labels) != len(points)
            or not all(_is_int(v) and v in (0, 1) for v in raw_labels)
        ):
            raise AnnotationError(
                f"{where}: expected 'labels' as {len(points)} values of 1 (positive) or 0 (negative), "
                f"got {raw_labels!r}."
            )
        labels = np.asarray(raw_labels, dtype=np.int32)
        outside = (
            (points[:, 0] < 0) | (points[:, 0] > ref.width) | (points[:, 1] < 0) | (points[:, 1] > ref.height)
        )
        if outside.any():
            raise AnnotationError(
                f"{where}: expected points inside the {ref.width}x{ref.height} (WxH) frame, "
                f"got {points[outside].tolist()}."
            )
    if "box" in raw:
        box = _numbers(raw["box"], where, "'box'", (4,))
        x0, y0, x1, y1 = box.tolist()
        if not (0 <= x0 < x1 <= ref.width and 0 <= y0 < y1 <= ref.height):
            raise AnnotationError(
                f"{where}: expected a box [x0, y0, x1, y1] with 0 <= x0 < x1 <= {ref.width} and "
                f"0 <= y0 < y1 <= {ref.height}, got {box.tolist()}."
            )
    return ObjectPrompt(obj, frame, points=points, point_labels=labels, box=box)


def _parse_mask(value: object, where: str, ref: VideoRef, base: Path) -> np.ndarray:
    """``bool`` ``(H, W)`` from a COCO RLE dict or a PNG path (relative to ``base``)."""
    if isinstance(value, str):
        path = base / value
        try:
            with Image.open(path) as image:
                if image.mode not in ("1", "L", "P"):
                    raise AnnotationError(
                        f"{where}: expected {path} to be a mask PNG (mode 1, L or P), "
                        f"got colour mode {image.mode!r}."
                    )
                mask = np.asarray(image) > 0
        except FileNotFoundError as exc:
            raise AnnotationError(f"{where}: expected a mask PNG at {path}, found nothing.") from exc
        except OSError as exc:
            raise AnnotationError(f"{where}: expected a readable mask PNG at {path}, got: {exc}") from exc
        source = str(path)
    elif isinstance(value, dict) and set(value) == {"size", "counts"}:
        size = value["size"]
        if not isinstance(size, list) or size != [ref.height, ref.width]:
            raise AnnotationError(
                f"{where}: expected an RLE of size [{ref.height}, {ref.width}] (the video's [H, W]), "
                f"got {size!r}."
            )
        try:
            mask = decode_coco_rle(value, ref.height, ref.width)
        except RleError as exc:
            raise RleError(f"{where}: expected a decodable COCO RLE, got: {exc}.") from exc
        source = "the RLE"
    else:
        raise AnnotationError(
            f"{where}: expected 'mask' as a COCO RLE {{'size': [H, W], 'counts': ...}} or a PNG path, "
            f"got {repr(value)[:80]}."
        )
    if mask.shape != (ref.height, ref.width):
        raise AnnotationError(
            f"{where}: expected a mask of {ref.height}x{ref.width} (HxW), "
            f"got {mask.shape[0]}x{mask.shape[1]} from {source}."
        )
    if not mask.any():
        raise AnnotationError(f"{where}: expected a non-empty mask, got an empty one from {source}.")
    return mask
