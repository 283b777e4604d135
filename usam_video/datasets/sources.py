"""Lazy frame sources for video files, and cheap checks of numbered JPEG sequences.

:class:`Mp4Source` decodes an mp4 (or any container decord/FFmpeg opens) on demand, a small
batch at a time; :func:`jpeg_sequence` and :func:`jpeg_frame_size` validate a folder of
``%05d.jpg`` frames from file names and headers only, so a reader can report a missing or
odd-sized frame before any pixel is decoded (and before anything is written for the video).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import decord
import numpy as np
from PIL import Image

from usam_video.datasets.base import FrameSource
from usam_video.errors import DatasetNotFoundError, FrameReadError

__all__ = ["Mp4Source", "jpeg_sequence", "jpeg_frame_size"]

# Dataset layouts (DAVIS, MOSE, SA-V) name frames exactly %05d.jpg; user folders may use any
# number of digits and .jpeg (e.g. ffmpeg's "%d.jpg" output).
_STRICT_NAME = re.compile(r"^(\d{5})\.jpg$")
_LOOSE_NAME = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


def _short(exc: BaseException) -> str:
    """First line of an exception message (decord appends a C++ stack trace)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class Mp4Source(FrameSource):
    """Frames of a video file, decoded with decord on CPU on demand.

    Opening reads the container index and decodes frame 0 (decord exposes no frame size
    without decoding). A miss decodes ``read_ahead`` frames in one ``get_batch`` call, in the
    direction of travel (forward, or backward after a step back as in reverse propagation):
    for H.264 a seek costs a decode from the previous key frame, and the batch pays it once.
    At most ``2 * read_ahead`` frames are cached.

    Frames are ``uint8`` ``(H, W, 3)`` RGB and shared with the cache: do not modify them in
    place. Not thread-safe: one consumer per source.

    Attributes:
        path: the video file.
        fps: average frame rate reported by the container, or None if it reports none.

    Raises:
        DatasetNotFoundError: the file does not exist.
        FrameReadError: the file cannot be opened (truncated, not a video), or a frame
            cannot be decoded later (corrupt data); the message names the file.
    """

    def __init__(self, path: Path, read_ahead: int = 4, num_threads: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetNotFoundError(f"{self.path}: expected a video file, found nothing.")
        self._read_ahead = max(1, read_ahead)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._last = -1
        self._size: tuple[int, int] | None = None
        try:
            self._reader: decord.VideoReader | None = decord.VideoReader(
                str(self.path), ctx=decord.cpu(0), num_threads=num_threads
            )
            self._length = len(self._reader)
            fps = float(self._reader.get_avg_fps())
        except (RuntimeError, decord.DECORDError, AssertionError) as exc:
            # decord raises RuntimeError ("Error reading ..."), DECORDError (a packet it cannot
            # read while indexing) or AssertionError (zero frames) depending on where it fails.
            raise FrameReadError(
                f"{self.path}: expected a readable video file, got: {_short(exc)}. "
                "The file may be truncated, still being written, or not a video."
            ) from exc
        self.fps = fps if np.isfinite(fps) and fps > 0 else None
        first = self._decode([0])
        self.height, self.width = int(first.shape[1]), int(first.shape[2])
        self._size = (self.height, self.width)
        self._cache[0] = first[0]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._length:
            raise IndexError(f"frame {index} out of range 0..{self._length - 1}")
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            self._last = index
            return cached
        if index < self._last:
            wanted = range(max(index - self._read_ahead + 1, 0), index + 1)
        else:
            wanted = range(index, min(index + self._read_ahead, self._length))
        indices = [j for j in wanted if j not in self._cache]
        batch = self._decode(indices)
        for j, frame in zip(indices, batch, strict=True):
            self._cache[j] = frame
        while len(self._cache) > 2 * self._read_ahead:
            self._cache.popitem(last=False)
        self._last = index
        return batch[indices.index(index)]

    def close(self) -> None:
        """Free the decoder; the source cannot be read afterwards."""
        self._reader = None
        self._cache.clear()

    def _decode(self, indices: Sequence[int]) -> np.ndarray:
        """``uint8`` ``(len(indices), H, W, 3)`` RGB frames."""
        if self._reader is None:
            raise FrameReadError(f"{self.path}: expected an open source, got one already closed.")
        try:
            batch = self._reader.get_batch(list(indices))
        except (RuntimeError, decord.DECORDError) as exc:
            raise FrameReadError(
                f"{self.path}: expected to decode frames {indices[0]}..{indices[-1]} of "
                f"{self._length}, got: {_short(exc)}. The file may be truncated or corrupt."
            ) from exc
        # sam2 switches decord's bridge to torch process-wide when it loads an mp4 itself;
        # accept whatever the bridge hands back instead of resetting global state.
        if hasattr(batch, "asnumpy"):
            array = batch.asnumpy()
        elif hasattr(batch, "numpy"):
            array = batch.numpy()
        else:
            array = np.asarray(batch)
        if (
            array.dtype != np.uint8
            or array.ndim != 4
            or array.shape[0] != len(indices)
            or array.shape[3] != 3
        ):
            raise FrameReadError(
                f"{self.path}: expected frames {indices[0]}..{indices[-1]} as uint8 "
                f"({len(indices)}, H, W, 3) RGB, got {array.dtype} {tuple(array.shape)}."
            )
        if self._size is not None and tuple(array.shape[1:3]) != self._size:
            # A stream may change resolution mid-way; SAM 2 needs one size per video.
            raise FrameReadError(
                f"{self.path}: expected frames {indices[0]}..{indices[-1]} of "
                f"{self._size[0]}x{self._size[1]} (HxW) like frame 0, "
                f"got {array.shape[1]}x{array.shape[2]}."
            )
        return array


def jpeg_sequence(
    folder: Path, video_id: str, strict_names: bool = True, allow_gaps: bool = False
) -> tuple[Path, ...]:
    """The frames of one video, in order, from file names only.

    Args:
        folder: the video's frame folder.
        video_id: named in error messages.
        strict_names: frames are exactly ``00000.jpg, 00001.jpg, ...`` (DAVIS, MOSE, SA-V). When
            False any ``<digits>.jpg``/``.jpeg`` is a frame, numbered from whatever the first
            is (``ffmpeg -i x.mp4 %05d.jpg`` starts at 1); frame index = position.
        allow_gaps: the numbering may skip frames (a DAVIS-layout release keeps only its fully
            released frames, under their video frame numbers); frame index = position.

    Raises:
        DatasetNotFoundError: no such folder.
        FrameReadError: no frames, a gap in the numbering, or two files with one number.
    """
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: expected the frames of video {video_id!r}, found no folder.")
    pattern = _STRICT_NAME if strict_names else _LOOSE_NAME
    numbered: dict[int, Path] = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            number = int(match.group(1))
            if number in numbered:
                raise FrameReadError(
                    f"{folder}: expected one file per frame number of video {video_id!r}, "
                    f"got {numbered[number].name} and {path.name}."
                )
            numbered[number] = path
    if not numbered:
        raise FrameReadError(
            f"{folder}: expected frames named 00000.jpg, 00001.jpg, ... of video {video_id!r}, found none."
        )
    if allow_gaps:
        return tuple(numbered[i] for i in sorted(numbered))
    first = 0 if strict_names else min(numbered)
    last = max(numbered)
    if len(numbered) != last - first + 1:
        missing = [i for i in range(first, last + 1) if i not in numbered]
        raise FrameReadError(
            f"{folder}: expected consecutive frames {first:05d}.jpg..{last:05d}.jpg of video "
            f"{video_id!r}, missing {', '.join(f'{i:05d}.jpg' for i in missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}."
        )
    return tuple(numbered[i] for i in range(first, last + 1))


def jpeg_frame_size(paths: Sequence[Path], video_id: str) -> tuple[int, int]:
    """``(height, width)`` shared by every frame, from the file headers only.

    Raises:
        FrameReadError: a header is unreadable or a frame's size differs from the first's.
    """
    first: tuple[int, int] | None = None
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, ValueError) as exc:
            raise FrameReadError(
                f"{path}: expected a readable JPEG frame of video {video_id!r}, got: {exc}"
            ) from exc
        if first is None:
            first = (height, width)
        elif (height, width) != first:
            raise FrameReadError(
                f"{path}: expected a frame of {first[0]}x{first[1]} (HxW) like {paths[0].name} "
                f"(video {video_id!r}), got {height}x{width}."
            )
    if first is None:
        raise FrameReadError(f"video {video_id!r}: expected at least one frame, got none.")
    return first
