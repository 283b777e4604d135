"""One writer per release format: what training code reads, laid out as it expects.

Every writer gets the same frames and masks (:class:`ReleaseVideo`) and decides which frames it
needs (:meth:`FormatWriter.wants`), where their images go and how a frame-object that is not
released is represented, which differs by format:

* ``sav`` (SA-V, sam2's ``JSONRawDataset`` + ``JSONSegmentLoader``)::

      JPEGImages_24fps/<video>/%05d.jpg     every frame
      annotations/<video>_manual.json       masklet[t][k]: COCO RLE, null = not released
      sav_<split>.txt                       the split's videos

  Every frame is annotated, and ``fps`` says so: it equals the frame folder's nominal rate
  (24, sam2's default ``frames_fps``), so sam2's loader reads every frame (``ann_every`` 1). The
  video's own rate is ``video_fps``. An object released as absent (not started yet) is an
  all-zero RLE, as in SA-V. sam2's ``JSONRawDataset`` drops every frame with a null entry
  (``rm_unannotated``): it trains on the frames whose every object is released.
* ``davis`` (DAVIS 2017, sam2's ``PNGRawDataset`` + ``PalettisedPNGSegmentLoader``)::

      JPEGImages/Full-Resolution/<video>/%05d.jpg
      Annotations/Full-Resolution/<video>/%05d.png   palette index = object (0 background)
      ImageSets/2017/<split>.txt

  A palette PNG has no "unknown": every pixel is background or an object, and sam2's
  ``VOSDataset`` (``always_target=True``) turns an object missing from a PNG into an empty
  target, i.e. teaches "absent". So only the frames whose *every* object is released are
  written, images and masks alike (file names keep the video's frame numbers, with gaps), and
  sam2 never sees an uncertain mask, nor an uncertain object as background. The project's
  DAVIS reader reads the folder with ``frame_gaps: true``. Palette indices are the object ids
  when all lie in 1..254 (DAVIS), else 1..O in object order (the manifest gives the mapping).
  Where released masks overlap, the later object wins (the manifest counts such pixels).
* ``ytvis`` (YouTube-VIS 2021 JSON)::

      JPEGImages/<video>/%05d.jpg           every frame
      <split>.json                          videos, annotations (one per video-object:
                                            segmentations[t] RLE, null = not released),
                                            one class-agnostic category
* ``coco`` (COCO instances, one image per frame)::

      images/<video>/%05d.jpg               frames whose every object is released
      <split>.json                          one annotation per released, non-empty frame-object

  As in DAVIS, an image holds every object or is left out: COCO has no "unknown", and an
  object without an annotation reads as background.
"""

from __future__ import annotations

import abc
import json
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from usam_video.datasets import FrameSource
from usam_video.datasets.sav import SAV_FPS
from usam_video.errors import InputError
from usam_video.palette import write_palette_png
from usam_video.release.policy import VideoSelection

__all__ = [
    "FORMATS",
    "DAVIS_RESOLUTION",
    "FormatWriter",
    "ReleaseVideo",
    "check_format",
    "make_writer",
    "dump_json",
    "encode_rle",
]

#: The DAVIS layout's resolution folder of a release: frames at the video's own size.
DAVIS_RESOLUTION = "Full-Resolution"
#: Annotation folder of the sav layout (``<video>_manual.json``).
SAV_ANNOTATIONS_DIR = "annotations"
SAV_FRAMES_DIR = "JPEGImages_24fps"
_CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


def dump_json(path: Path, data: Any) -> None:
    """Write ``data`` as compact JSON with sorted keys: the same data, the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a ``bool`` ``(H, W)`` mask, JSON-ready (``counts`` a str)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _bbox(mask: np.ndarray) -> list[float] | None:
    """``[x, y, w, h]`` of a ``bool`` ``(H, W)`` mask (COCO's convention), None when empty."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if ys.size == 0:
        return None
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


@dataclass(frozen=True, eq=False)
class ReleaseVideo:
    """One video as every writer sees it.

    Attributes:
        selection: what is released (``released``/``absent`` ``bool`` ``(T, O)``).
        first_tracked: ``int64`` ``(O,)``: each object's first frame with a mask (its prompt),
            -1 when never tracked.
        frames: the video's frames (``uint8`` ``(H, W, 3)`` RGB), or their JPEG files.
    """

    video_id: str
    split: str
    num_frames: int
    height: int
    width: int
    fps: float | None
    selection: VideoSelection
    first_tracked: np.ndarray
    frames: FrameSource

    @property
    def object_ids(self) -> tuple[int, ...]:
        return self.selection.object_ids

    def write_image(self, t: int, path: Path) -> None:
        """Frame ``t`` as JPEG at ``path``: the source file byte for byte when frames are JPEG
        files (no second compression), else encoded by Pillow at quality 95 (deterministic)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        source = self.frames.source_file(t)
        if source is not None:
            shutil.copyfile(source, path)
            return
        frame = self.frames.read_frame(t)
        if frame.shape != (self.height, self.width, 3):
            raise InputError(
                f"video {self.video_id!r} frame {t}: expected a {self.height}x{self.width} RGB frame like "
                f"the store, got {frame.shape}. The dataset changed since labelling; relabel the video."
            )
        Image.fromarray(frame).save(path, format="JPEG", quality=95)


class FormatWriter(abc.ABC):
    """Writes one format under ``root`` (a temporary folder the caller renames at the end)."""

    name: str

    def __init__(self, root: Path):
        self.root = root

    @abc.abstractmethod
    def wants(self, video: ReleaseVideo) -> np.ndarray:
        """``bool`` ``(T,)``: the frames this format writes (image and annotation)."""

    @abc.abstractmethod
    def image_path(self, video: ReleaseVideo, t: int) -> Path:
        """Where frame ``t``'s JPEG goes."""

    @abc.abstractmethod
    def add_frame(self, video: ReleaseVideo, t: int, masks: np.ndarray) -> None:
        """Frame ``t``'s masks, ``bool`` ``(O, H, W)`` as stored (the writer applies the
        selection). May run on several threads at once for different frames."""

    def end_video(self, video: ReleaseVideo) -> dict[str, Any]:  # noqa: B027  (optional hook)
        """After the last frame of a video; returns what the manifest records of it."""
        return {}

    @abc.abstractmethod
    def finish(self, splits: Mapping[str, Sequence[str]]) -> None:
        """After every video: the split lists or per-split JSON files."""


class SavWriter(FormatWriter):
    name = "sav"

    def __init__(self, root: Path):
        super().__init__(root)
        self._rows: dict[str, dict[int, list[dict[str, Any] | None]]] = defaultdict(dict)

    def wants(self, video: ReleaseVideo) -> np.ndarray:
        return np.ones(video.num_frames, dtype=bool)

    def image_path(self, video: ReleaseVideo, t: int) -> Path:
        return self.root / SAV_FRAMES_DIR / video.video_id / f"{t:05d}.jpg"

    def add_frame(self, video: ReleaseVideo, t: int, masks: np.ndarray) -> None:
        sel = video.selection
        empty = np.zeros(masks.shape[1:], dtype=bool)
        self._rows[video.video_id][t] = [
            (encode_rle(empty if sel.absent[t, k] else masks[k]) if sel.released[t, k] else None)
            for k in range(len(sel.object_ids))
        ]

    def end_video(self, video: ReleaseVideo) -> dict[str, Any]:
        rows = self._rows.pop(video.video_id)
        dump_json(
            self.root / SAV_ANNOTATIONS_DIR / f"{video.video_id}_manual.json",
            {
                "video_id": video.video_id,
                "video_frame_count": video.num_frames,
                "video_height": video.height,
                "video_width": video.width,
                "video_fps": video.fps,
                # Every frame is annotated: at the frame folder's rate, so sam2's loader
                # (ann_every = frames_fps // fps) reads every frame.
                "fps": SAV_FPS,
                "masklet": [rows[t] for t in range(video.num_frames)],
                "masklet_id": list(video.object_ids),
                "masklet_num": len(video.object_ids),
                "masklet_first_appeared_frame": [int(f) for f in video.first_tracked],
                "masklet_frame_count": [video.num_frames] * len(video.object_ids),
                "masklet_type": ["usam-video-release"] * len(video.object_ids),
            },
        )
        return {}

    def finish(self, splits: Mapping[str, Sequence[str]]) -> None:
        for split, videos in splits.items():
            (self.root / f"sav_{split}.txt").write_text("".join(f"{v}\n" for v in videos))


class DavisWriter(FormatWriter):
    name = "davis"

    def __init__(self, root: Path):
        super().__init__(root)
        self._overlap: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()  # frames of a video are written on several threads

    @staticmethod
    def palette_ids(object_ids: Sequence[int]) -> list[int]:
        """Palette index of each object: its id when every id is in 1..254, else 1..O."""
        if all(1 <= i <= 254 for i in object_ids):
            return [int(i) for i in object_ids]
        if len(object_ids) > 254:
            raise InputError(f"davis format: expected at most 254 objects per video, got {len(object_ids)}.")
        return list(range(1, len(object_ids) + 1))

    def wants(self, video: ReleaseVideo) -> np.ndarray:
        return video.selection.full_frames

    def image_path(self, video: ReleaseVideo, t: int) -> Path:
        return self.root / "JPEGImages" / DAVIS_RESOLUTION / video.video_id / f"{t:05d}.jpg"

    def add_frame(self, video: ReleaseVideo, t: int, masks: np.ndarray) -> None:
        sel = video.selection
        index = np.zeros(masks.shape[1:], dtype=np.uint8)
        painted = np.zeros(masks.shape[1:], dtype=bool)
        overlap = 0
        for k, pid in enumerate(self.palette_ids(sel.object_ids)):
            if sel.absent[t, k]:
                continue
            overlap += int((painted & masks[k]).sum())
            index[masks[k]] = pid
            painted |= masks[k]
        with self._lock:
            self._overlap[video.video_id] += overlap
        path = self.root / "Annotations" / DAVIS_RESOLUTION / video.video_id / f"{t:05d}.png"
        write_palette_png(path, index)

    def end_video(self, video: ReleaseVideo) -> dict[str, Any]:
        ids = self.palette_ids(video.object_ids)
        return {
            "palette": {str(o): p for o, p in zip(video.object_ids, ids, strict=True)},
            "overlap_pixels": self._overlap.pop(video.video_id, 0),
        }

    def finish(self, splits: Mapping[str, Sequence[str]]) -> None:
        for split, videos in splits.items():
            path = self.root / "ImageSets" / "2017" / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{v}\n" for v in videos))


class _JsonPerSplit(FormatWriter):
    """Formats with one JSON per split, assembled once every video is in."""

    def __init__(self, root: Path):
        super().__init__(root)
        self._frames: dict[str, dict[int, list[dict[str, Any] | None]]] = defaultdict(dict)
        self._videos: dict[str, ReleaseVideo] = {}

    def add_frame(self, video: ReleaseVideo, t: int, masks: np.ndarray) -> None:
        sel = video.selection
        empty = np.zeros(masks.shape[1:], dtype=bool)
        entries: list[dict[str, Any] | None] = []
        for k in range(len(sel.object_ids)):
            if not sel.released[t, k]:
                entries.append(None)
                continue
            mask = empty if sel.absent[t, k] else masks[k]
            entries.append({"rle": encode_rle(mask), "area": int(mask.sum()), "bbox": _bbox(mask)})
        self._frames[video.video_id][t] = entries

    def end_video(self, video: ReleaseVideo) -> dict[str, Any]:
        self._videos[video.video_id] = video
        return {}


class YtvisWriter(_JsonPerSplit):
    name = "ytvis"

    def wants(self, video: ReleaseVideo) -> np.ndarray:
        return np.ones(video.num_frames, dtype=bool)

    def image_path(self, video: ReleaseVideo, t: int) -> Path:
        return self.root / "JPEGImages" / video.video_id / f"{t:05d}.jpg"

    def finish(self, splits: Mapping[str, Sequence[str]]) -> None:
        ann_id = 0
        for split, video_ids in splits.items():
            videos, annotations = [], []
            for vid_number, video_id in enumerate(video_ids, start=1):
                video, frames = self._videos[video_id], self._frames[video_id]
                videos.append({
                    "id": vid_number, "name": video_id, "height": video.height, "width": video.width,
                    "length": video.num_frames,
                    "file_names": [f"{video_id}/{t:05d}.jpg" for t in range(video.num_frames)],
                })  # fmt: skip
                for k, object_id in enumerate(video.object_ids):
                    ann_id += 1
                    per_frame = [frames[t][k] for t in range(video.num_frames)]
                    annotations.append({
                        "id": ann_id, "video_id": vid_number, "category_id": 1, "iscrowd": 0,
                        "object_id": int(object_id), "height": video.height, "width": video.width,
                        "segmentations": [e["rle"] if e else None for e in per_frame],
                        "areas": [e["area"] if e else None for e in per_frame],
                        "bboxes": [e["bbox"] if e else None for e in per_frame],
                    })  # fmt: skip
            dump_json(self.root / f"{split}.json", {
                "info": {"description": "usam-video release (YouTube-VIS 2021 layout)"},
                "videos": videos, "annotations": annotations, "categories": [_CATEGORY],
            })  # fmt: skip


class CocoWriter(_JsonPerSplit):
    name = "coco"

    def wants(self, video: ReleaseVideo) -> np.ndarray:
        return video.selection.full_frames

    def image_path(self, video: ReleaseVideo, t: int) -> Path:
        return self.root / "images" / video.video_id / f"{t:05d}.jpg"

    def finish(self, splits: Mapping[str, Sequence[str]]) -> None:
        image_id = ann_id = 0
        for split, video_ids in splits.items():
            images, annotations = [], []
            for video_id in video_ids:
                video, frames = self._videos[video_id], self._frames[video_id]
                for t in sorted(frames):
                    image_id += 1
                    images.append({
                        "id": image_id, "file_name": f"{video_id}/{t:05d}.jpg", "height": video.height,
                        "width": video.width, "video": video_id, "frame_index": t,
                    })  # fmt: skip
                    for k, entry in enumerate(frames[t]):
                        if entry is None or entry["area"] == 0:
                            continue  # absent: COCO says so by having no annotation
                        ann_id += 1
                        annotations.append({
                            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "segmentation": entry["rle"], "area": entry["area"], "bbox": entry["bbox"],
                            "video": video_id, "frame_index": t, "object_id": int(video.object_ids[k]),
                        })  # fmt: skip
            dump_json(self.root / f"{split}.json", {
                "info": {"description": "usam-video release (COCO instances, one image per frame)"},
                "images": images, "annotations": annotations, "categories": [_CATEGORY],
            })  # fmt: skip


FORMATS: dict[str, Callable[[Path], FormatWriter]] = {
    "sav": SavWriter,
    "davis": DavisWriter,
    "ytvis": YtvisWriter,
    "coco": CocoWriter,
}


def check_format(fmt: str) -> None:
    """Raise :class:`InputError` unless ``fmt`` is a release format."""
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}.")


def make_writer(fmt: str, root: Path) -> FormatWriter:
    """The writer of ``fmt`` under ``root``.

    Raises:
        InputError: an unknown format.
    """
    check_format(fmt)
    return FORMATS[fmt](root)
