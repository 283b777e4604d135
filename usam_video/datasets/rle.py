"""The one checked decoder of COCO run-length encoded masks (``{"size": [H, W], "counts": ...}``).

SA-V masklets, plain-video prompt files and COCO review imports all hold COCO RLE. pycocotools
decodes whatever it is given: counts cut to half length decode to a mask of the right shape but
with the wrong pixels (a truncated last run is read as "the rest of the image"), silently. So every
RLE is checked here first, in pure Python, exactly as ``rleFrString`` of pycocotools'
``maskApi.c`` reads it: ``size`` two positive integers (and the expected ones, when given),
``counts`` a compressed string of characters ``'0'..'o'`` that does not end inside a number, or a
list of integers; every run non-negative and the runs adding up to ``H * W``. Only a checked RLE
is handed to pycocotools. ``usam_video.review`` uses this module too (review may import datasets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from usam_video.errors import RleError

__all__ = ["coco_counts_from_string", "checked_coco_runs", "decode_coco_rle", "coco_rle_area"]


def coco_counts_from_string(counts: str) -> list[int]:
    """Parse a compressed COCO ``counts`` string into run lengths (``rleFrString`` of
    pycocotools' ``maskApi.c``), refusing characters and truncations the C code would misread.

    Raises:
        RleError: a character outside ``'0'..'o'`` or a string that ends inside a number.
    """
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise RleError("expected a complete counts string, it ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise RleError(f"expected counts characters '0'..'o', got {counts[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:  # runs after the second are stored as differences (as in maskApi.c)
            x += runs[-2]
        runs.append(x)
    return runs


def checked_coco_runs(
    rle: object, height: int | None = None, width: int | None = None
) -> tuple[int, int, list[int]]:
    """Check a COCO RLE completely and return ``(h, w, runs)``.

    Args:
        rle: ``{"size": [h, w], "counts": str | bytes | list[int]}`` (other keys are ignored).
        height, width: the size the RLE must have, or None to accept its own size.

    Raises:
        RleError: naming what is wrong (size, counts format, negative runs, runs that do not add
            up to ``h * w`` pixels); the caller prefixes the file and entry.
    """
    if not isinstance(rle, Mapping) or "counts" not in rle or "size" not in rle:
        raise RleError(f"expected an RLE object with 'size' and 'counts', got {repr(rle)[:60]}")
    size = rle["size"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise RleError(f"expected 'size' [height, width] of positive integers, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if height is not None and width is not None and (h, w) != (height, width):
        raise RleError(f"expected 'size' [{height}, {width}] (the video's [H, W]), got [{h}, {w}]")
    counts = rle["counts"]
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise RleError("expected 'counts' as an ASCII string, got non-ASCII bytes") from None
    if isinstance(counts, str):
        runs = coco_counts_from_string(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = list(counts)
    else:
        raise RleError("expected 'counts' as a compressed string or a list of integers")
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise RleError(
            f"expected non-negative runs adding up to {h}x{w} = {h * w} pixels, "
            f"got {len(runs)} runs adding up to {sum(runs)}"
        )
    return h, w, runs


def decode_coco_rle(rle: object, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Decode a checked COCO RLE with pycocotools.

    Returns:
        ``bool`` ``(h, w)``: the RLE's own size (equal to ``(height, width)`` when given).

    Raises:
        RleError: see :func:`checked_coco_runs`.
    """
    h, w, runs = checked_coco_runs(rle, height, width)
    assert isinstance(rle, Mapping)  # checked above
    counts: Any = rle["counts"]
    if isinstance(counts, list):
        coded = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    else:
        coded = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return np.asarray(mask_utils.decode(coded), dtype=bool)


def coco_rle_area(rle: object, height: int | None = None, width: int | None = None) -> int:
    """Foreground pixels of a checked COCO RLE (the sum of its odd runs), without decoding it."""
    _, _, runs = checked_coco_runs(rle, height, width)
    return int(sum(runs[1::2]))
