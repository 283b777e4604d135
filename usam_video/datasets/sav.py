"""Reader for SA-V (Segment Anything Video), in both of its shipping layouts.

``layout: mp4`` (SA-V train)::

    <root>/<video>.mp4             24 fps video, decoded with decord
    <root>/<video>_manual.json     manual masklets
    <root>/<video>_auto.json       automatic masklets

Each JSON holds ``masklet[t][o]``: a COCO compressed RLE ``{"size": [H, W], "counts": str}``
of object ``o`` on *annotated* frame ``t``, one entry per annotated frame for every object (an
absent object is an all-zero RLE; older files may hold null). Annotations are at 6 fps of the
24 fps video, so annotated frame ``t`` is video frame ``4 * t``; ``masklet_first_appeared_frame``
counts annotated frames too (sav_000001 manual object 3: annotated 113 = video frame 452).
This reader finds first appearances from the RLEs themselves, which the field agrees with.
Masklets may overlap.

``layout: frames`` (SA-V val and test)::

    <root>/JPEGImages_24fps/<video>/%05d.jpg
    <root>/Annotations_6fps/<video>/<obj:03d>/%05d.png   one binary PNG per object and
                                                         annotated frame, named by *video*
                                                         frame number (00000, 00004, ...)
    <root>/sav_<split>.txt                               video list (``split: val``/``test``)

Object ids: the masklet index (0-based, as the SA-V evaluator's ``<obj:03d>`` folders) for
manual masklets and in the frames layout. ``annotation_source: auto`` uses the auto masklet
index as is; with ``both``, auto masklet ``j`` becomes object ``AUTO_ID_OFFSET + j`` (1000 +
j) so it never collides with a manual id.

``layout: release`` (what ``usam-video release --format sav`` writes)::

    <root>/JPEGImages_24fps/<video>/%05d.jpg
    <root>/annotations/<video>_manual.json   masklet[t][k] on *every* frame (its ``fps`` equals
                                             the frame folder's 24), null = not released
    <root>/sav_<split>.txt

Object ids are the JSON's ``masklet_id`` (the store's ids). A null entry is a frame-object the
release left out: the object is missing from that frame's ground truth (never "absent"), and
the first non-null, non-empty mask prompts it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.rle import coco_rle_area, decode_coco_rle
from usam_video.datasets.sources import Mp4Source, jpeg_frame_size, jpeg_sequence
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError, RleError
from usam_video.palette import image_header
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

__all__ = [
    "SavReader",
    "ANNOTATIONS_DIR",
    "ANNOTATION_STEP",
    "AUTO_ID_OFFSET",
    "FRAMES_DIR",
    "RELEASE_ANNOTATIONS_DIR",
    "SAV_FPS",
    "masklet_file_name",
    "split_list_name",
]

#: Video frames per annotated frame (masklets at 6 fps of a 24 fps video).
ANNOTATION_STEP = 4
#: Added to auto masklet ids when manual and auto masklets are read together.
AUTO_ID_OFFSET = 1000
#: Frame rate of SA-V videos and of the ``JPEGImages_24fps`` folders.
SAV_FPS = 24.0
#: The val/test layout: ``<root>/<FRAMES_DIR>/<video>/%05d.jpg`` and
#: ``<root>/<ANNOTATIONS_DIR>/<video>/<obj:03d>/%05d.png`` (the writers of generated datasets
#: use these).
FRAMES_DIR = "JPEGImages_24fps"
ANNOTATIONS_DIR = "Annotations_6fps"
#: The release layout's masklet folder: ``<root>/<RELEASE_ANNOTATIONS_DIR>/<video>_manual.json``.
RELEASE_ANNOTATIONS_DIR = "annotations"


def split_list_name(split: str) -> str:
    """``sav_<split>.txt``: a val/test split's video names, one per line."""
    return f"sav_{split}.txt"


def masklet_file_name(video_id: str, source: str) -> str:
    """``<video>_<source>.json``: the train layout's masklets of ``source`` (manual or auto)."""
    return f"{video_id}_{source}.json"

_MASK_NAME = re.compile(r"^(\d{5})\.png$")
# Modes a binary object mask may come in; colour files are refused rather than guessed at.
_BINARY_MODES = ("1", "L", "P")


@dataclass(frozen=True)
class _Masklets:
    """Validated masklets of one video (mp4 layout).

    ``rles[t][k]`` is the RLE (or None when absent) of object ``object_ids[k]`` on annotated
    frame ``t``; ``files[k]`` is the JSON it came from (for messages).
    """

    object_ids: tuple[int, ...]
    files: tuple[Path, ...]
    rles: tuple[tuple[dict[str, Any] | None, ...], ...]
    step: int = ANNOTATION_STEP  # video frames per annotated frame


class SavReader(DatasetReader):
    """SA-V (``format: sav``); ``layout`` picks mp4+JSON (train) or JPEG+PNG (val/test)."""

    def __init__(self, config: DatasetConfig):
        self.name = config.name
        self._config = config
        self.root = Path(config.root)
        self.layout = config.layout
        self.annotation_source = config.annotation_source
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"{self.root}: expected an SA-V dataset folder, found nothing. "
                "Check 'root' in the dataset config."
            )
        self._images = self.root / FRAMES_DIR
        self._annotations = self.root / ANNOTATIONS_DIR
        released = self.root / RELEASE_ANNOTATIONS_DIR
        if self.layout == "release" and not (self._images.is_dir() and released.is_dir()):
            raise DatasetError(
                f"{self.root}: expected a usam-video sav release with {FRAMES_DIR}/ and "
                f"{RELEASE_ANNOTATIONS_DIR}/, found {sorted(p.name for p in self.root.iterdir())}."
            )
        if self.layout == "frames" and not (self._images.is_dir() and self._annotations.is_dir()):
            raise DatasetError(
                f"{self.root}: expected the SA-V val/test layout with JPEGImages_24fps/ and "
                f"Annotations_6fps/, found {sorted(p.name for p in self.root.iterdir())}."
            )

    # ------------------------------------------------------------------ listing

    def _sources(self) -> tuple[str, ...]:
        return ("manual", "auto") if self.annotation_source == "both" else (self.annotation_source,)

    def list_videos(self) -> list[str]:
        if self._config.videos is not None:
            return list(self._config.videos)
        if self.layout in ("frames", "release"):
            if self._config.split is not None:
                list_file = self.root / split_list_name(self._config.split)
                if not list_file.is_file():
                    raise DatasetNotFoundError(
                        f"{list_file}: expected the list of split {self._config.split!r}, found nothing."
                    )
                return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
            return sorted(p.name for p in self._images.iterdir() if p.is_dir())
        # Videos with an mp4 or an annotation file of the chosen source(s): a video missing
        # one of the two is listed and then fails alone, with a message naming what is missing.
        ids = {p.stem for p in self.root.glob("*.mp4")}
        for source in self._sources():
            ids |= {p.name.removesuffix(f"_{source}.json") for p in self.root.glob(f"*_{source}.json")}
        return sorted(ids)

    # ------------------------------------------------------------------ mp4 layout

    def _mp4_path(self, video_id: str) -> Path:
        return self.root / f"{video_id}.mp4"

    @lru_cache(maxsize=8)  # noqa: B019  (JSONs are large; ground_truth is called frame by frame)
    def _masklets(self, video_id: str) -> _Masklets:
        ref = self._geometry(video_id)
        object_ids: list[int] = []
        files: list[Path] = []
        columns: list[list[dict[str, Any] | None]] = []  # per object, per annotated frame
        lengths: dict[Path, int] = {}
        step = ANNOTATION_STEP
        for source in self._sources():
            if self.layout == "release":
                path = self.root / RELEASE_ANNOTATIONS_DIR / masklet_file_name(video_id, source)
                rows, ids, step = _read_release_json(path, video_id, ref)
                lengths[path] = len(rows)
                object_ids += ids
                files += [path] * len(ids)
                columns += [[row[k] for row in rows] for k in range(len(ids))]
                continue
            path = self.root / masklet_file_name(video_id, source)
            rows = _read_masklet_json(path, video_id, ref)
            offset = AUTO_ID_OFFSET if source == "auto" and self.annotation_source == "both" else 0
            if offset and rows and len(rows[0]) > AUTO_ID_OFFSET:
                raise AnnotationError(
                    f"{path}: expected at most {AUTO_ID_OFFSET} masklets, got {len(rows[0])}; "
                    "ids would collide with the auto id offset."
                )
            lengths[path] = len(rows)
            count = len(rows[0]) if rows else 0
            for k in range(count):
                object_ids.append(offset + k)
                files.append(path)
                columns.append([row[k] for row in rows])
        if len(set(lengths.values())) > 1:
            raise AnnotationError(
                f"video {video_id!r}: expected manual and auto masklets over the same annotated frames, "
                f"got {', '.join(f'{n} in {p.name}' for p, n in lengths.items())}."
            )
        num_annotated = next(iter(lengths.values()), 0)
        rles = tuple(tuple(col[t] for col in columns) for t in range(num_annotated))
        return _Masklets(tuple(object_ids), tuple(files), rles, step)

    def _decode(self, masklets: _Masklets, k: int, t: int, ref: VideoRef) -> np.ndarray:
        """``bool`` ``(H, W)`` mask of object ``k`` (position) on annotated frame ``t``."""
        rle = masklets.rles[t][k]
        if rle is None:
            return np.zeros((ref.height, ref.width), dtype=bool)
        try:
            return decode_coco_rle(rle, ref.height, ref.width)
        except RleError as exc:
            raise RleError(f"{_where(masklets, k, t, ref)}: {exc}.") from exc

    # ------------------------------------------------------------------ frames layout

    @lru_cache(maxsize=64)  # noqa: B019
    def _frame_paths(self, video_id: str) -> tuple[Path, ...]:
        return jpeg_sequence(self._images / video_id, video_id)

    @lru_cache(maxsize=64)  # noqa: B019
    def _object_pngs(self, video_id: str) -> dict[int, dict[int, Path]]:
        """``{object id: {video frame: png}}``, the same frames for every object."""
        folder = self._annotations / video_id
        if not folder.is_dir():
            raise AnnotationError(
                f"{folder}: expected the per-object mask folders of video {video_id!r}, found nothing."
            )
        objects: dict[int, dict[int, Path]] = {}
        for sub in sorted(folder.iterdir()):
            if not sub.is_dir():
                continue
            if not sub.name.isdigit():
                raise AnnotationError(
                    f"{sub}: expected object folders named by id (000, 001, ...) in video {video_id!r}, "
                    f"got {sub.name!r}."
                )
            frames = {int(m.group(1)): p for p in sub.iterdir() if (m := _MASK_NAME.match(p.name))}
            objects[int(sub.name)] = dict(sorted(frames.items()))
        if not objects:
            raise AnnotationError(
                f"{folder}: expected at least one object folder of video {video_id!r}, found none."
            )
        first_id, first_frames = next(iter(objects.items()))
        for obj, frames in objects.items():
            if frames.keys() != first_frames.keys():
                odd = sorted(set(frames) ^ set(first_frames))[:5]
                raise AnnotationError(
                    f"{folder / f'{obj:03d}'}: expected masks on the same frames as object {first_id:03d} "
                    f"in video {video_id!r}, got a difference at frames {odd}."
                )
        if not first_frames:
            raise AnnotationError(f"{folder}: expected %05d.png masks of video {video_id!r}, found none.")
        return objects

    def _read_png(self, path: Path, ref: VideoRef) -> np.ndarray:
        try:
            with Image.open(path) as image:
                if image.mode not in _BINARY_MODES:
                    raise AnnotationError(
                        f"{path}: expected a binary mask PNG (mode 1, L or P) of video {ref.video_id!r}, "
                        f"got colour mode {image.mode!r}."
                    )
                array = np.asarray(image)
        except OSError as exc:
            raise AnnotationError(
                f"{path}: expected a readable PNG of video {ref.video_id!r}, got: {exc}"
            ) from exc
        if array.shape != (ref.height, ref.width):
            raise AnnotationError(
                f"{path}: expected a mask of {ref.height}x{ref.width} (HxW) like the frames of video "
                f"{ref.video_id!r}, got {array.shape[0]}x{array.shape[1]}."
            )
        return array > 0

    # ------------------------------------------------------------------ interface

    def video(self, video_id: str) -> VideoRef:
        """Geometry and a check of the annotations: the mp4 layout opens the mp4, decodes its
        first frame (decord has no size query) and validates the masklet JSON structure;
        the frames layout reads JPEG and PNG headers only."""
        ref = self._geometry(video_id)
        if self.layout != "frames":
            self._masklets(video_id)
        return ref

    @lru_cache(maxsize=64)  # noqa: B019
    def _geometry(self, video_id: str) -> VideoRef:
        if self.layout == "mp4":
            path = self._mp4_path(video_id)
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"{path}: expected the video file of SA-V video {video_id!r}, found nothing."
                )
            with Mp4Source(path, read_ahead=1) as probe:
                ref = VideoRef(self.name, video_id, len(probe), probe.height, probe.width, probe.fps)
            return ref
        paths = self._frame_paths(video_id)
        height, width = jpeg_frame_size(paths, video_id)
        ref = VideoRef(self.name, video_id, len(paths), height, width, SAV_FPS)
        if self.layout == "release":
            return ref
        for frames in self._object_pngs(video_id).values():
            for frame, png in frames.items():
                if frame >= len(paths):
                    raise AnnotationError(
                        f"{png}: expected masks of video frames 0..{len(paths) - 1} of video {video_id!r}, "
                        f"got one for frame {frame}."
                    )
                mask_h, mask_w, mode = image_header(png)
                if mode not in _BINARY_MODES or (mask_h, mask_w) != (height, width):
                    raise AnnotationError(
                        f"{png}: expected a binary mask PNG (mode 1, L or P) of {height}x{width} (HxW) "
                        f"like the frames of video {video_id!r}, got mode {mode!r} {mask_h}x{mask_w}."
                    )
        return ref

    def frames(self, video_id: str) -> FrameSource:
        ref = self.video(video_id)
        if self.layout == "mp4":
            return Mp4Source(self._mp4_path(video_id))
        return JpegFolderSource(self._frame_paths(video_id), ref.height, ref.width)

    def annotated_frames(self, video_id: str) -> list[int]:
        if self.layout != "frames":
            masklets = self._masklets(video_id)
            return [masklets.step * t for t in range(len(masklets.rles))]
        self.video(video_id)
        return list(next(iter(self._object_pngs(video_id).values())))

    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        """Each object's mask on the first annotated frame where it is non-empty.

        Objects that enter late (e.g. sav_000001 manual object 3 at video frame 452) start
        there; a masklet that is empty on every annotated frame gets no prompt.
        """
        ref = self.video(video_id)
        prompts: list[ObjectPrompt] = []
        if self.layout != "frames":
            masklets = self._masklets(video_id)
            for k, obj in enumerate(masklets.object_ids):
                # RLE areas need no decoding: only the first non-empty mask is decoded.
                for t, row in enumerate(masklets.rles):
                    if row[k] is not None and _rle_area(masklets, k, t, ref) > 0:
                        prompts.append(
                            ObjectPrompt(obj, masklets.step * t, self._decode(masklets, k, t, ref))
                        )
                        break
        else:
            for obj, frames in self._object_pngs(video_id).items():
                for frame, png in frames.items():
                    mask = self._read_png(png, ref)
                    if mask.any():
                        prompts.append(ObjectPrompt(obj, frame, mask))
                        break
        if not prompts:
            raise AnnotationError(
                f"video {video_id!r}: expected at least one non-empty masklet ({self.annotation_source}), "
                "got none."
            )
        return sorted(prompts, key=lambda p: (p.frame_index, p.object_id))

    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        """All objects on an annotated frame (an absent one has an empty mask); masks may overlap."""
        ref = self.video(video_id)
        if self.layout != "frames":
            masklets = self._masklets(video_id)
            t, rest = divmod(frame_index, masklets.step)
            if rest or not 0 <= t < len(masklets.rles):
                return None
            # A release's null entry is a frame-object it left out: not part of the truth.
            row = masklets.rles[t]
            keep = [k for k in range(len(row)) if self.layout != "release" or row[k] is not None]
            masks = [self._decode(masklets, k, t, ref) for k in keep]
            object_ids = tuple(masklets.object_ids[k] for k in keep)
        else:
            objects = self._object_pngs(video_id)
            if frame_index not in next(iter(objects.values())):
                return None
            object_ids = tuple(objects)
            masks = [self._read_png(frames[frame_index], ref) for frames in objects.values()]
        stacked = np.stack(masks) if masks else np.zeros((0, ref.height, ref.width), dtype=bool)
        return FrameAnnotation(frame_index, tuple(object_ids), stacked)

    def known_objects(self, video_id: str, annotation: FrameAnnotation) -> frozenset[int]:
        """The objects ``annotation`` holds: an absent object is an empty mask there, and an
        object it leaves out (a release's null entry, not released) is unknown."""
        del video_id
        return frozenset(annotation.object_ids)


def _where(masklets: _Masklets, k: int, t: int, ref: VideoRef) -> str:
    return (
        f"{masklets.files[k]}: expected a decodable COCO RLE for object {masklets.object_ids[k]} on "
        f"annotated frame {t} (video frame {masklets.step * t}) of video {ref.video_id!r}, got"
    )


def _rle_area(masklets: _Masklets, k: int, t: int, ref: VideoRef) -> int:
    """Foreground pixels of a masklet's RLE, checked (counts cut short are an error, never a
    different area) but not decoded."""
    try:
        return coco_rle_area(masklets.rles[t][k], ref.height, ref.width)
    except RleError as exc:
        raise RleError(f"{_where(masklets, k, t, ref)}: {exc}.") from exc


def _load_masklet_file(path: Path, video_id: str) -> Any:
    if not path.is_file():
        raise AnnotationError(f"{path}: expected the masklet file of SA-V video {video_id!r}, found nothing.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AnnotationError(
            f"{path}: expected a readable JSON file (video {video_id!r}), got: {exc}"
        ) from exc


def _read_masklet_json(path: Path, video_id: str, ref: VideoRef) -> Sequence[Sequence[dict[str, Any] | None]]:
    """Load and validate ``masklet`` of one SA-V JSON against the video's geometry.

    Returns:
        ``rows[t][o]``: RLE dict or None, ``T_a`` rows of ``O`` entries each.
    """
    return _check_masklet_rows(path, _load_masklet_file(path, video_id), video_id, ref, ANNOTATION_STEP)


def _check_masklet_rows(
    path: Path, data: Any, video_id: str, ref: VideoRef, step: int
) -> Sequence[Sequence[dict[str, Any] | None]]:
    """``data["masklet"]`` checked: one row per annotated frame (one every ``step`` video
    frames), the same object count in each, every entry a COCO RLE of the video's size or null."""
    rows = data.get("masklet") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        got = f"keys {sorted(data)}" if isinstance(data, dict) else type(data).__name__
        raise AnnotationError(
            f"{path}: expected a 'masklet' list of per-frame object lists (video {video_id!r}), got {got}."
        )
    max_annotated = math.ceil(ref.num_frames / step)
    if len(rows) > max_annotated:
        raise AnnotationError(
            f"{path}: expected at most {max_annotated} annotated frames (one every {step}) for "
            f"the {ref.num_frames} frames of video {video_id!r}, got {len(rows)}."
        )
    count = len(rows[0]) if rows else 0
    for t, row in enumerate(rows):
        if len(row) != count:
            raise AnnotationError(
                f"{path}: expected {count} objects on every annotated frame like frame 0 (video "
                f"{video_id!r}), got {len(row)} on annotated frame {t} (video frame {step * t})."
            )
        for k, rle in enumerate(row):
            if rle is None:
                continue
            if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
                raise AnnotationError(
                    f"{path}: expected a COCO RLE {{'size': [H, W], 'counts': ...}} or null for masklet {k} "
                    f"on annotated frame {t} (video {video_id!r}), got {repr(rle)[:60]}."
                )
            size = rle["size"]
            if not isinstance(size, list | tuple) or list(size) != [ref.height, ref.width]:
                raise AnnotationError(
                    f"{path}: expected RLE size [{ref.height}, {ref.width}] of video {video_id!r}, got "
                    f"{rle['size']} for masklet {k} on annotated frame {t} "
                    f"(video frame {step * t})."
                )
    return rows


def _read_release_json(
    path: Path, video_id: str, ref: VideoRef
) -> tuple[list[list[dict[str, Any] | None]], list[int], int]:
    """``masklet`` rows, object ids (``masklet_id``) and the annotation step of a release JSON.

    The step is the frame folder's rate (24) over the file's ``fps``: 1 for every release.
    """
    data = _load_masklet_file(path, video_id)
    fps = data.get("fps") if isinstance(data, dict) else None
    if not isinstance(fps, int | float) or fps <= 0 or SAV_FPS % fps:
        raise AnnotationError(
            f"{path}: expected 'fps' dividing the frame folder's {SAV_FPS:g} (every frame annotated: "
            f"{SAV_FPS:g}), got {fps!r}."
        )
    step = int(SAV_FPS // fps)
    rows = data.get("masklet")
    ids = data.get("masklet_id")
    count = len(rows[0]) if isinstance(rows, list) and rows and isinstance(rows[0], list) else 0
    if not isinstance(ids, list) or len(ids) != count or not all(isinstance(i, int) for i in ids):
        raise AnnotationError(
            f"{path}: expected 'masklet_id' with one integer id per masklet ({count}), got {str(ids)[:60]}."
        )
    checked = _check_masklet_rows(path, data, video_id, ref, step)
    return [list(row) for row in checked], [int(i) for i in ids], step
