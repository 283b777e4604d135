"""COCO instance-segmentation JSON with compressed RLE masks (``pycocotools``).

One ``annotations.json`` per export::

    {"info": {...}, "licenses": [],
     "images": [{"id": 1, "file_name": "images/<video>/<frame:05d>.jpg", "width": W, "height": H,
                 "video_id": "<video>", "frame_index": t}],
     "annotations": [{"id": 1, "image_id": 1, "category_id": <object id>,
                      "segmentation": {"size": [H, W], "counts": "<compressed RLE str>"},
                      "area": A, "bbox": [x, y, w, h], "iscrowd": 0}],
     "categories": [{"id": <object id>, "name": "object_<id>", "supercategory": "object"}]}

One annotation per frame-object (objects not started on a frame are left out; an empty mask is
an annotation of area 0). Reading accepts what other tools write back: images without
``video_id``/``frame_index`` are located by ``file_name``, categories renumbered by a tool are
mapped back by their ``object_<id>`` names, uncompressed RLE and polygons decode too, and several
annotations of one frame-object are united.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from usam_video.review.manifest import Manifest
from usam_video.review.records import ExportFrame, ParsedMask, object_label, parse_object_label
from usam_video.review.rle import RleError, coco_rle_decode, coco_rle_encode

__all__ = ["COCO_FILE", "write_coco", "read_coco_file"]

COCO_FILE = "annotations.json"
_IMAGE_NAME = re.compile(r"(?:^|/)images/(?P<video>[^/]+)/(?P<frame>\d+)\.jpe?g$")


def write_coco(path: Path, frames: Sequence[ExportFrame], store: str) -> Path:
    """Write every exported frame as an image entry (ids from 1 in ``frames`` order) and every
    present frame-object as an annotation."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories: set[int] = set()
    for image_id, f in enumerate(frames, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": f.image,
                "width": f.width,
                "height": f.height,
                "video_id": f.video_id,
                "frame_index": f.frame,
            }
        )
        for o, obj in enumerate(f.object_ids):
            if not f.present[o]:
                continue
            categories.add(obj)
            segmentation = coco_rle_encode(f.masks[o])
            rle = {"size": segmentation["size"], "counts": str(segmentation["counts"]).encode("ascii")}
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj,
                    "segmentation": segmentation,
                    "area": int(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
    data = {
        "info": {
            "description": f"usam-video review export of {store}",
            "version": "1.0",
            "date_created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": obj, "name": object_label(obj), "supercategory": "object"} for obj in sorted(categories)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) + "\n")
    return path


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _image_table(
    data: dict[str, Any], name: str, manifest: Manifest, problems: list[str]
) -> dict[int, tuple[str, int, int, int]]:
    """``{image id: (video id, frame, height, width)}`` of the file's images."""
    table: dict[int, tuple[str, int, int, int]] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or _int(image.get("id")) is None:
            problems.append(f"{name} images[{i}]: wrong format: expected an object with an integer 'id'.")
            continue
        where = f"{name} image {image['id']}"
        video_id, frame = image.get("video_id"), _int(image.get("frame_index"))
        match = _IMAGE_NAME.search(str(image.get("file_name", "")))
        if (video_id is None or frame is None) and match is not None:
            video_id, frame = match["video"], int(match["frame"])
        if not isinstance(video_id, str) or frame is None:
            problems.append(
                f"{where}: wrong format: expected 'video_id' and 'frame_index' (or a file_name "
                f"images/<video>/<frame>.jpg), got file_name {image.get('file_name')!r}."
            )
            continue
        video = manifest.videos.get(video_id)
        height, width = _int(image.get("height")), _int(image.get("width"))
        if height is None or width is None:
            if video is None:
                height, width = 0, 0
            else:
                height, width = video.height, video.width
        table[int(image["id"])] = (video_id, frame, height, width)
    return table


def _category_objects(data: dict[str, Any]) -> dict[int, int]:
    """Category id -> object id: by an ``object_<id>`` name when there is one, else the id itself."""
    out: dict[int, int] = {}
    for category in data.get("categories", []) or []:
        if isinstance(category, dict) and _int(category.get("id")) is not None:
            obj = parse_object_label(str(category.get("name", "")))
            out[int(category["id"])] = obj if obj is not None else int(category["id"])
    return out


def read_coco_file(path: Path, manifest: Manifest) -> tuple[list[ParsedMask], list[str]]:
    """Read a COCO JSON of an export.

    Returns:
        the masks (one per frame-object, ``bool`` at the RLE's own size) and every problem found.
    """
    name = path.name
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], [f"{name}: wrong format: expected a COCO JSON file, got unparsable content ({exc})."]
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        return [], [
            f"{name}: wrong format: expected a COCO JSON object with 'images' and 'annotations', got {got}."
        ]
    problems: list[str] = []
    images = _image_table(data, name, manifest, problems)
    categories = _category_objects(data)
    masks: dict[tuple[str, int, int], list[np.ndarray]] = {}
    where: dict[tuple[str, int, int], str] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            problems.append(f"{name} annotations[{i}]: wrong format: expected an object.")
            continue
        ann_where = f"{name} annotation {ann.get('id', f'[{i}]')}"
        image_id, category_id = _int(ann.get("image_id")), _int(ann.get("category_id"))
        if image_id is None or category_id is None:
            problems.append(f"{ann_where}: wrong format: expected integer 'image_id' and 'category_id'.")
            continue
        if image_id not in images:
            problems.append(f"{ann_where}: unknown frame: image_id {image_id} is not an image of the file.")
            continue
        video_id, frame, height, width = images[image_id]
        object_id = categories.get(category_id, category_id)
        ann_where += f" (video {video_id!r} frame {frame}, object {object_id})"
        try:
            mask = coco_rle_decode(ann.get("segmentation"), height, width)
        except RleError as exc:
            problems.append(f"{ann_where}: RLE does not decode: {exc}.")
            continue
        key = (video_id, frame, object_id)
        if key in masks and masks[key][0].shape != mask.shape:
            problems.append(f"{ann_where}: wrong size: annotations of one frame-object differ in size.")
            continue
        masks.setdefault(key, []).append(mask)
        where.setdefault(key, ann_where)
    parsed = [
        ParsedMask(video_id, frame, obj, np.logical_or.reduce(found), where[(video_id, frame, obj)])
        for (video_id, frame, obj), found in sorted(masks.items())
    ]
    return parsed, problems
