"""PNG folders: one binary PNG per frame-object (SA-V layout; objects may overlap) and one
palette PNG per frame for viewing::

    <export>/masks/<video>/<obj:03d>/<frame:05d>.png    mode L, 0 background, 255 object
    <export>/palette/<video>/<frame:05d>.png            DAVIS palette, object id per pixel
                                                        (view only; overlaps drawn in id order)

Import reads ``masks/`` only. A mask PNG must be single-channel (mode ``1``, ``L`` or ``P``) and
binary (0 and one other value): an anti-aliased or RGB file is refused rather than guessed at.
Objects not started on a frame get no file; an empty mask is an all-zero PNG.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from usam_video.palette import VOID_INDEX, write_palette_png
from usam_video.review.records import ExportFrame, ParsedMask

__all__ = ["MASKS_DIR", "PALETTE_DIR", "mask_png_path", "write_png_frames", "read_png_folder"]

MASKS_DIR = "masks"
PALETTE_DIR = "palette"
_OBJECT_DIR = re.compile(r"^\d+$")
_FRAME_FILE = re.compile(r"^(\d+)\.png$")
_BINARY_MODES = ("1", "L", "P")


def mask_png_path(video_id: str, object_id: int, frame: int) -> str:
    """Path of one frame-object's PNG relative to the export folder."""
    return f"{MASKS_DIR}/{video_id}/{object_id:03d}/{frame:05d}.png"


def write_png_frames(out: Path, frames: Sequence[ExportFrame]) -> list[Path]:
    """Write the per-object mask PNGs and the palette view of every frame; returns the
    ``masks/<video>`` folders written."""
    folders: dict[str, Path] = {}
    for f in frames:
        index_map = np.zeros((f.height, f.width), dtype=np.uint8)
        for o, obj in enumerate(f.object_ids):
            if not f.present[o]:
                continue
            path = out / mask_png_path(f.video_id, obj, f.frame)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(f.masks[o], 255, 0).astype(np.uint8), mode="L").save(path)
            if 0 < obj < VOID_INDEX:  # the palette holds ids 1..254 only
                index_map[f.masks[o]] = obj
        write_palette_png(out / PALETTE_DIR / f.video_id / f"{f.frame:05d}.png", index_map)
        folders[f.video_id] = out / MASKS_DIR / f.video_id
    return list(folders.values())


def _read_mask(path: Path, where: str) -> tuple[np.ndarray | None, str | None]:
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return None, f"{where}: wrong format: expected a PNG file, got {image.format}."
            if image.mode not in _BINARY_MODES:
                return None, (
                    f"{where}: wrong format: expected a single-channel binary PNG (mode 1, L or P), "
                    f"got mode {image.mode!r}. Save the mask as 8-bit greyscale, 0 and 255."
                )
            array = np.asarray(image)
    except OSError as exc:
        return None, f"{where}: wrong format: expected a readable PNG, got: {exc}."
    values = np.unique(array)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        return None, (
            f"{where}: wrong format: expected a binary mask (0 and one other value), got values "
            f"{values[:6].tolist()}{'...' if values.size > 6 else ''}."
        )
    return array > 0, None


def read_png_folder(masks: Path) -> tuple[list[ParsedMask], list[str]]:
    """Read ``masks/<video>/<obj:03d>/<frame:05d>.png``.

    Returns:
        the masks (``bool`` at the PNG's size) and every problem found (unexpected files or
        folders, unreadable or non-binary PNGs).
    """
    if not masks.is_dir():
        return [], [
            f"{masks}: expected a folder of mask PNGs (masks/<video>/<obj>/<frame>.png), found nothing."
        ]
    parsed: list[ParsedMask] = []
    problems: list[str] = []
    layout = "masks/<video>/<obj:03d>/<frame:05d>.png"
    for video_dir in sorted(masks.iterdir()):
        if not video_dir.is_dir():
            problems.append(
                f"{video_dir.relative_to(masks.parent)}: wrong format: expected only folders {layout}."
            )
            continue
        for object_dir in sorted(video_dir.iterdir()):
            rel = object_dir.relative_to(masks.parent)
            if not object_dir.is_dir() or not _OBJECT_DIR.match(object_dir.name):
                problems.append(f"{rel}: wrong format: expected object folders named by id ({layout}).")
                continue
            object_id = int(object_dir.name)
            for file in sorted(object_dir.iterdir()):
                match = _FRAME_FILE.match(file.name)
                where = f"{file.relative_to(masks.parent)}"
                if not file.is_file() or match is None:
                    problems.append(
                        f"{where}: wrong format: expected files named <frame:05d>.png ({layout})."
                    )
                    continue
                frame = int(match[1])
                where += f" (video {video_dir.name!r} frame {frame}, object {object_id})"
                mask, problem = _read_mask(file, where)
                if mask is None:
                    problems.append(str(problem))
                    continue
                parsed.append(ParsedMask(video_dir.name, frame, object_id, mask, where))
    return parsed, problems
