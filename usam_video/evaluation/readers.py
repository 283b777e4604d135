"""Readers for mask folders published by other methods (and for SA-V ground truth).

Layouts:

* DAVIS: ``<root>/<sequence>/%05d.png``, one palette PNG per frame holding object ids
  (0 background, 1..N objects).
* SA-V: ``<root>/<video>/<obj:03d>/%05d.png``, one binary PNG per object and annotated
  frame (the layout of ``sav_val/Annotations_6fps`` and of published SA-V predictions).

Every problem is reported as :class:`~usam_video.errors.EvaluationError` naming the file,
what was expected and what was found, so a broken submission is fixed in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from usam_video.errors import AnnotationError, EvaluationError
from usam_video.palette import read_palette_png

__all__ = [
    "FRAME_NAME",
    "LAYOUTS",
    "detect_prediction_layout",
    "read_davis_prediction_folder",
    "read_sav_prediction_folder",
    "stack_sav_frames",
]

#: File name of frame ``t`` in both layouts.
FRAME_NAME = "{:05d}.png"
#: Names of the two prediction folder layouts.
LAYOUTS: tuple[str, ...] = ("davis", "sav")

_FRAME_RE = re.compile(r"^(\d+)\.png$")
# Binary masks arrive as bilevel, greyscale or palette PNGs; 16/32-bit greyscale also
# holds one value per pixel. Colour images are refused rather than guessed at.
_SINGLE_CHANNEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def _frame_files(folder: Path) -> dict[int, Path]:
    """``{frame index: path}`` of the ``<digits>.png`` files in ``folder``."""
    files: dict[int, Path] = {}
    for path in folder.iterdir():
        match = _FRAME_RE.match(path.name)
        if match and path.is_file():
            files[int(match.group(1))] = path
    return files


def _check_size(path: Path, found: tuple[int, ...], expected: tuple[int, int]) -> None:
    if tuple(found) != tuple(expected):
        raise EvaluationError(
            f"{path}: expected a {expected[0]}x{expected[1]} (HxW) mask, found {found[0]}x{found[1]}."
        )


def _has_frame_png(folder: Path) -> bool:
    return any(_FRAME_RE.match(p.name) and p.is_file() for p in folder.iterdir())


def detect_prediction_layout(root: Path | str, videos: Sequence[str] | None = None) -> str:
    """Tell which layout a predictions folder has: ``"davis"`` or ``"sav"``.

    A video folder holding ``%05d.png`` files is DAVIS layout; one holding numeric object
    folders with ``%05d.png`` files is SA-V layout. Only ``videos`` are looked at when given
    and any exists, otherwise every sub-folder; files beside them (a CSV) are ignored.

    Raises:
        EvaluationError: ``root`` is no folder, no sub-folder matches either layout, or the
            folders mix both layouts.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: expected a folder of predicted masks, found nothing.")
    candidates = [folder / v for v in videos if (folder / v).is_dir()] if videos is not None else []
    if not candidates:
        candidates = sorted(p for p in folder.iterdir() if p.is_dir())
    found: dict[str, Path] = {}
    for video_dir in candidates:
        if _has_frame_png(video_dir):
            found.setdefault("davis", video_dir)
        elif any(p.is_dir() and p.name.isdigit() and _has_frame_png(p) for p in video_dir.iterdir()):
            found.setdefault("sav", video_dir)
    if len(found) == 2:
        raise EvaluationError(
            f"{folder}: expected one layout, found DAVIS ({found['davis']}) and SA-V "
            f"({found['sav']}) folders. Keep one method's masks per folder."
        )
    if not found:
        raise EvaluationError(
            f"{folder}: expected predicted masks in DAVIS layout (<sequence>/%05d.png) or SA-V "
            f"layout (<video>/<object:03d>/%05d.png), found no such masks in sub-folders "
            f"{[p.name for p in candidates][:10]}."
        )
    return next(iter(found))


def read_davis_prediction_folder(
    root: Path | str,
    sequence: str,
    *,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
    frame_indices: Sequence[int] | None = None,
) -> npt.NDArray[np.uint8]:
    """Read ``<root>/<sequence>/%05d.png`` palette PNGs into uint8 ``(T, H, W)`` index maps.

    Args:
        root: folder holding one sub-folder per sequence.
        sequence: sequence name.
        num_frames: expected number of frames T; frames ``00000 .. T-1`` must all exist
            (extra files are ignored, as the reference reads only the ground-truth frame
            names). When None, the folder's ``%05d.png`` files must run from 00000 without
            a gap.
        size: expected ``(H, W)``; when None every frame must match the first one.
        frame_indices: read exactly these frames, in this order (T = their number), e.g.
            the annotated frames of a sparsely labelled video; excludes ``num_frames``.

    Raises:
        EvaluationError: the folder or a frame is missing, a frame is unreadable or not a
            palette/greyscale PNG, or its size differs from the expected one.
    """
    folder = Path(root) / sequence
    if not folder.is_dir():
        raise EvaluationError(
            f"{folder}: expected a folder of %05d.png masks for sequence {sequence!r}, found nothing."
        )
    files = _frame_files(folder)
    if frame_indices is not None:
        if num_frames is not None:
            raise EvaluationError(f"{folder}: give num_frames or frame_indices, not both.")
        wanted = [int(t) for t in frame_indices]
        if not wanted:
            raise EvaluationError(f"{folder}: expected at least one frame index, got none.")
    elif num_frames is None:
        if not files:
            raise EvaluationError(f"{folder}: expected %05d.png masks, found no PNG frame.")
        wanted = list(range(max(files) + 1))
    elif num_frames < 1:
        raise EvaluationError(f"{folder}: expected num_frames >= 1, got {num_frames}.")
    else:
        wanted = list(range(num_frames))

    frames: list[np.ndarray] = []
    expected = size
    for t in wanted:
        path = folder / FRAME_NAME.format(t)
        if t not in files:
            of = f" (of {len(wanted)})" if frame_indices is None else ""
            raise EvaluationError(f"{path}: expected the mask of frame {t}{of}, found nothing.")
        try:
            index_map = read_palette_png(files[t])
        except AnnotationError as exc:
            raise EvaluationError(str(exc)) from exc
        if expected is None:
            expected = (index_map.shape[0], index_map.shape[1])
        _check_size(files[t], index_map.shape, expected)
        frames.append(index_map)
    return np.stack(frames).astype(np.uint8, copy=False)


def _read_binary_png(path: Path, expected: tuple[int, int] | None) -> npt.NDArray[np.bool_]:
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in _SINGLE_CHANNEL_MODES:
                raise EvaluationError(
                    f"{path}: expected a single-channel binary PNG (mode 1, L or P), got "
                    f"colour mode {mode!r}."
                )
            array = np.array(image)
    except FileNotFoundError as exc:
        raise EvaluationError(f"{path}: expected a mask PNG, found nothing.") from exc
    except OSError as exc:
        raise EvaluationError(f"{path}: expected a readable PNG, got: {exc}") from exc
    values = np.unique(array)
    if values.size > 2:
        # The SA-V benchmark asserts one object per PNG; several ids mean a wrong layout.
        raise EvaluationError(
            f"{path}: expected one binary object mask per PNG (SA-V layout), found "
            f"{values.size} distinct values {values[:8].tolist()}."
        )
    if expected is not None:
        _check_size(path, array.shape, expected)
    return array > 0


def read_sav_prediction_folder(
    root: Path | str,
    video: str,
    *,
    frame_indices: Sequence[int] | None = None,
    object_ids: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
) -> dict[int, dict[int, npt.NDArray[np.bool_]]]:
    """Read ``<root>/<video>/<obj:03d>/%05d.png`` into ``{obj_id: {frame: bool (H, W)}}``.

    Also reads SA-V ground truth (``Annotations_6fps``), which has the same layout.

    Args:
        root: folder holding one sub-folder per video.
        video: video id.
        frame_indices: video frame indices that must exist for every object (e.g. the
            annotated frames of the ground truth); other PNGs are ignored. When None, every
            ``<digits>.png`` of each object folder is read.
        object_ids: object ids that must exist; only these are read. When None, every
            numeric sub-folder is read.
        size: expected ``(H, W)``; when None every mask must match the first one read.

    Raises:
        EvaluationError: a folder or frame is missing, a sub-folder name is not an object
            id, a mask is not a single-channel binary PNG, or sizes differ.
    """
    folder = Path(root) / video
    if not folder.is_dir():
        raise EvaluationError(
            f"{folder}: expected a folder of <object id>/%05d.png masks for video {video!r}, found nothing."
        )
    if object_ids is None:
        object_dirs: dict[int, Path] = {}
        for path in sorted(folder.iterdir()):
            if not path.is_dir():
                continue  # e.g. a results.csv written next to the masks
            if not path.name.isdigit():
                raise EvaluationError(
                    f"{path}: expected object folders named by their id (e.g. 000), found {path.name!r}."
                )
            object_dirs[int(path.name)] = path
    else:
        object_dirs = {}
        for obj_id in object_ids:
            path = folder / f"{int(obj_id):03d}"
            if not path.is_dir():
                raise EvaluationError(
                    f"{path}: expected the mask folder of object {int(obj_id)}, found nothing."
                )
            object_dirs[int(obj_id)] = path

    expected = size
    masks: dict[int, dict[int, npt.NDArray[np.bool_]]] = {}
    for obj_id, obj_dir in sorted(object_dirs.items()):
        files = _frame_files(obj_dir)
        wanted = sorted(files) if frame_indices is None else [int(t) for t in frame_indices]
        per_frame: dict[int, npt.NDArray[np.bool_]] = {}
        for t in wanted:
            path = obj_dir / FRAME_NAME.format(t)
            if t not in files:
                raise EvaluationError(
                    f"{path}: expected the mask of object {obj_id} on frame {t}, found nothing."
                )
            mask = _read_binary_png(files[t], expected)
            if expected is None:
                expected = (mask.shape[0], mask.shape[1])
            per_frame[t] = mask
        masks[obj_id] = per_frame
    return masks


def stack_sav_frames(
    masks: Mapping[int, Mapping[int, npt.ArrayLike]],
    frame_indices: Sequence[int],
    *,
    source: str = "",
) -> dict[int, npt.NDArray[np.bool_]]:
    """Turn ``{obj_id: {frame: bool (H, W)}}`` into ``{obj_id: bool (T, H, W)}``.

    The T frames are ``frame_indices`` in order, which is what
    :func:`usam_video.evaluation.sav.evaluate_sav_video` expects.

    Raises:
        EvaluationError: an object lacks one of the frames, or mask sizes differ.
    """
    where = source or "masks"
    out: dict[int, npt.NDArray[np.bool_]] = {}
    shape: tuple[int, ...] | None = None
    for obj_id, per_frame in sorted(masks.items()):
        frames = []
        for t in frame_indices:
            if t not in per_frame:
                raise EvaluationError(
                    f"{where}: expected a mask of object {obj_id} on frame {t}, found frames "
                    f"{sorted(per_frame)[:10]}{'...' if len(per_frame) > 10 else ''}."
                )
            mask = np.asarray(per_frame[t], dtype=bool)
            if shape is None:
                shape = mask.shape
            elif mask.shape != shape:
                raise EvaluationError(
                    f"{where}: expected every mask of shape {shape}, found {mask.shape} for "
                    f"object {obj_id} on frame {t}."
                )
            frames.append(mask)
        if not frames:
            raise EvaluationError(f"{where}: expected at least one frame index, got none.")
        out[obj_id] = np.stack(frames)
    return out
