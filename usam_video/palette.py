"""Palette (indexed-colour) PNG masks as DAVIS and MOSE ship them, and the index maps they hold.

A palette PNG stores one uint8 index per pixel: 0 background, 1..N object ids, 255 void.
The DAVIS palette is the PASCAL VOC colour map, so files written here open in the same
colours as the official annotations.

A low-level module beside ``types`` (numpy, Pillow, ``errors`` and ``types`` only): the dataset
readers, the evaluation's prediction readers and the review's exports all read or write these
files, and those packages may not import one another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from usam_video.errors import AnnotationError
from usam_video.types import FrameAnnotation

__all__ = [
    "VOID_INDEX",
    "davis_palette",
    "read_palette_png",
    "write_palette_png",
    "png_size",
    "image_header",
    "object_ids_of",
    "annotation_from_index_map",
]

_MODE_NAMES = {"P": "palette", "L": "8-bit greyscale"}

#: Index of "void" pixels (object borders, unlabelled regions) in DAVIS annotations.
VOID_INDEX = 255


def davis_palette() -> list[int]:
    """Return the 256-entry PASCAL VOC colour map as a flat RGB list (768 ints)."""
    palette: list[int] = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(8):
            r |= ((c >> 0) & 1) << (7 - shift)
            g |= ((c >> 1) & 1) << (7 - shift)
            b |= ((c >> 2) & 1) << (7 - shift)
            c >>= 3
        palette.extend((r, g, b))
    return palette


def png_size(path: Path) -> tuple[int, int]:
    """Return ``(height, width)`` of an image file, reading only its header."""
    height, width, _ = image_header(path)
    return height, width


def image_header(path: Path) -> tuple[int, int, str]:
    """Return ``(height, width, mode)`` of an image file (Pillow mode, e.g. ``"P"``), header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except FileNotFoundError as exc:
        raise AnnotationError(f"{path}: expected an image file, found nothing.") from exc
    except OSError as exc:
        raise AnnotationError(f"{path}: expected a readable image, got: {exc}") from exc
    return height, width, mode


def read_palette_png(path: Path, modes: tuple[str, ...] = ("P", "L")) -> np.ndarray:
    """Read a palette PNG as its index map.

    Args:
        path: the PNG file.
        modes: accepted Pillow colour modes; MOSE passes ``("P",)`` because its masks are
            palette images only, so anything else means a converted (and possibly remapped) file.

    Returns:
        ``uint8`` array of shape ``(H, W)``: 0 background, 1..N objects, 255 void.

    Raises:
        AnnotationError: the file is missing, unreadable, or not in one of ``modes``
            (default palette "P" or 8-bit greyscale "L"). RGB masks are refused because colours cannot be
            mapped back to object ids without guessing.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in modes:
                wanted = " or ".join(f"{_MODE_NAMES.get(m, m)} ({m!r})" for m in modes)
                raise AnnotationError(
                    f"{path}: expected a {wanted} PNG, "
                    f"got colour mode {mode!r}. Save masks as indexed PNGs "
                    "(0 background, 1..N objects, 255 void)."
                )
            array = np.array(image, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise AnnotationError(f"{path}: expected a mask PNG, found nothing.") from exc
    except AnnotationError:
        raise
    except OSError as exc:
        raise AnnotationError(f"{path}: expected a readable PNG, got: {exc}") from exc
    return array


def write_palette_png(path: Path, index_map: np.ndarray) -> None:
    """Write an ``(H, W)`` ``uint8`` index map as a palette PNG with the DAVIS colours."""
    if index_map.ndim != 2 or index_map.dtype != np.uint8:
        raise AnnotationError(
            f"{path}: expected an (H, W) uint8 index map, got shape {index_map.shape} "
            f"dtype {index_map.dtype}."
        )
    image = Image.fromarray(index_map, mode="P")
    image.putpalette(davis_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def object_ids_of(index_map: np.ndarray) -> tuple[int, ...]:
    """Object ids present in a ``uint8`` ``(H, W)`` index map (neither 0 nor void), ascending."""
    return tuple(int(v) for v in np.unique(index_map) if v not in (0, VOID_INDEX))


def annotation_from_index_map(frame_index: int, index_map: np.ndarray) -> FrameAnnotation:
    """Split a ``uint8`` ``(H, W)`` index map into per-object ``bool`` masks and a void mask.

    Returns:
        masks ``bool`` ``(O, H, W)`` for the ids present (ascending), ``void`` ``bool``
        ``(H, W)`` or None when the map has no 255 pixels.
    """
    ids = object_ids_of(index_map)
    masks = np.stack([index_map == i for i in ids]) if ids else np.zeros((0, *index_map.shape), bool)
    void = index_map == VOID_INDEX
    return FrameAnnotation(frame_index, ids, masks, void if void.any() else None)
