"""Run-length encodings of binary masks: CVAT's mask RLE and COCO's compressed RLE.

Both decoders validate their input completely (every run non-negative, the runs covering the
crop or image exactly) and raise :class:`RleError` otherwise, so an annotator's broken file is
reported by entry instead of crashing inside a C extension or decoding garbage. COCO RLE goes
through :mod:`usam_video.datasets.rle`, the one checked decoder the dataset readers use too.

CVAT (``<mask rle left top width height>`` in CVAT XML 1.1): the runs cover only the mask's
bounding box ``width x height`` at ``(left, top)``, row-major (x fastest), alternating
background/foreground and starting with background (a crop whose first pixel is foreground
starts with a run of 0). CVAT writes the runs as ``"a, b, c"``.

COCO (``{"size": [h, w], "counts": str}``): the runs cover the whole image in column-major
order, starting with background; ``counts`` is the LEB128-like string of ``pycocotools``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from usam_video.datasets.rle import coco_counts_from_string, decode_coco_rle
from usam_video.errors import RleError

__all__ = [
    "RleError",
    "CvatRle",
    "cvat_rle_encode",
    "cvat_rle_decode",
    "coco_rle_encode",
    "coco_rle_decode",
    "coco_counts_from_string",
]


@dataclass(frozen=True)
class CvatRle:
    """One CVAT mask: runs over the ``width x height`` crop at ``(left, top)``."""

    runs: tuple[int, ...]
    left: int
    top: int
    width: int
    height: int

    @property
    def text(self) -> str:
        """The ``rle`` attribute as CVAT writes it (``"a, b, c"``)."""
        return ", ".join(str(r) for r in self.runs)


def _runs(flat: np.ndarray) -> list[int]:
    """Alternating run lengths of a 1-d ``bool`` array, starting with a (maybe empty) False run."""
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def _expand(runs: list[int], size: int) -> np.ndarray:
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, np.asarray(runs, dtype=np.int64))[:size]


def cvat_rle_encode(mask: np.ndarray) -> CvatRle | None:
    """Encode a ``bool`` ``(H, W)`` mask over its bounding box; None for an empty mask (CVAT
    cannot store an empty mask: write the shape with ``outside="1"`` instead)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    crop = np.asarray(mask[top : bottom + 1, left : right + 1], dtype=bool)
    return CvatRle(tuple(_runs(crop.reshape(-1))), left, top, right - left + 1, bottom - top + 1)


def _parse_int(name: str, text: str | None) -> int:
    if text is None:
        raise RleError(f"expected attribute {name!r}, it is missing")
    try:
        value = float(text)
    except ValueError:
        raise RleError(f"expected an integer {name}, got {text!r}") from None
    if not value.is_integer():
        raise RleError(f"expected an integer {name}, got {text!r}")
    return int(value)


def cvat_rle_decode(
    rle: str | None,
    left: str | int | None,
    top: str | int | None,
    width: str | int | None,
    height: str | int | None,
    image_height: int,
    image_width: int,
) -> np.ndarray:
    """Decode CVAT mask attributes (strings as read from the XML) into a full-image mask.

    Returns:
        ``bool`` ``(image_height, image_width)``.

    Raises:
        RleError: a run that is not a non-negative integer, runs that do not add up to
            ``width * height``, or a crop that leaves the image.
    """
    x0, y0 = (
        _parse_int("left", None if left is None else str(left)),
        _parse_int("top", None if top is None else str(top)),
    )
    w, h = (
        _parse_int("width", None if width is None else str(width)),
        _parse_int("height", None if height is None else str(height)),
    )
    if w < 1 or h < 1 or x0 < 0 or y0 < 0 or x0 + w > image_width or y0 + h > image_height:
        raise RleError(
            f"expected a crop inside the {image_height}x{image_width} (HxW) image, got left={x0} "
            f"top={y0} width={w} height={h}"
        )
    if rle is None or not rle.strip():
        raise RleError("expected an 'rle' attribute of comma-separated run lengths, got none")
    try:
        runs = [int(part) for part in rle.split(",")]
    except ValueError:
        raise RleError(f"expected comma-separated integer run lengths, got {rle[:40]!r}") from None
    if any(r < 0 for r in runs) or sum(runs) != w * h:
        raise RleError(
            f"expected non-negative runs adding up to the {w}x{h} crop ({w * h} pixels), "
            f"got {len(runs)} runs adding up to {sum(runs)}"
        )
    out = np.zeros((image_height, image_width), dtype=bool)
    out[y0 : y0 + h, x0 : x0 + w] = _expand(runs, w * h).reshape(h, w)
    return out


def coco_rle_encode(mask: np.ndarray) -> dict[str, object]:
    """Compressed COCO RLE of a ``bool`` ``(H, W)`` mask (``pycocotools.mask.encode``), with
    ``counts`` as ``str`` so that it is JSON-serialisable."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_rle_decode(segmentation: object, image_height: int, image_width: int) -> np.ndarray:
    """Decode a COCO segmentation: compressed RLE (``counts`` str), uncompressed RLE
    (``counts`` list) or polygons (list of ``[x0, y0, x1, y1, ...]``).

    Returns:
        ``bool`` ``(h, w)`` where ``(h, w)`` is the RLE's own ``size`` (polygons: the image size);
        the caller compares it with the store's size.

    Raises:
        RleError: malformed segmentation, or runs that do not cover ``h * w`` pixels.
    """
    if isinstance(segmentation, list):
        if not segmentation or not all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation
        ):
            raise RleError("expected polygons as lists of at least 3 x,y pairs")
        if image_height < 1 or image_width < 1:
            raise RleError("expected the image's height and width to rasterise polygons")
        try:
            polys = [[float(v) for v in p] for p in segmentation]
        except (TypeError, ValueError):
            raise RleError("expected numeric polygon coordinates") from None
        rles = mask_utils.frPyObjects(polys, image_height, image_width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise RleError("expected an RLE object with 'size' and 'counts', or a list of polygons")
    # The one checked decoder the dataset readers use too (size, counts format, runs adding up).
    return decode_coco_rle(segmentation)
