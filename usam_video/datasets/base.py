"""The one interface every dataset reader implements, and lazy frame sources.

A reader lists videos, describes each (:class:`~usam_video.types.VideoRef`), hands out a lazy
:class:`FrameSource` (frames are decoded on demand, never the whole video at once), the prompts
that start each object, and the ground truth where the dataset has it.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from usam_video.errors import FrameReadError
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

__all__ = ["FrameSource", "JpegFolderSource", "DatasetReader", "resize_frame"]


def resize_frame(frame: np.ndarray, image_size: int) -> np.ndarray:
    """``uint8`` ``(H, W, 3)`` RGB -> ``uint8`` ``(S, S, 3)``: Pillow's default resize
    (bicubic), as sam2's frame loader does."""
    return np.asarray(Image.fromarray(frame).resize((image_size, image_size)))


class FrameSource(abc.ABC):
    """A random-access, lazily decoded sequence of RGB frames of one video."""

    height: int
    width: int
    #: :meth:`read_frame` may run on several threads at once (each call touches nothing shared).
    concurrent_reads: bool = False

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def read_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``uint8`` ``(H, W, 3)`` RGB, bypassing any cache; thread-safe only
        where :attr:`concurrent_reads` says so (else the same as ``self[index]``)."""
        return self[index]

    def read_resized(self, index: int, image_size: int) -> np.ndarray:
        """Frame ``index`` resized as sam2's loader does (:func:`resize_frame`): ``uint8``
        ``(S, S, 3)`` RGB. Thread-safe where :attr:`concurrent_reads` says so. Sources that
        decode with Pillow override it to resize the decoded image without a round trip
        through NumPy."""
        return resize_frame(self.read_frame(index), image_size)

    @abc.abstractmethod
    def __getitem__(self, index: int) -> np.ndarray:
        """Return frame ``index`` as ``uint8`` ``(H, W, 3)`` RGB."""

    def source_file(self, index: int) -> Path | None:
        """The JPEG file frame ``index`` is decoded from, or None when frames are not files of
        their own (an mp4). A release copies such files byte for byte instead of re-encoding."""
        del index
        return None

    def close(self) -> None:  # noqa: B027  (optional hook: most sources hold nothing to release)
        """Release decoders and threads early; a closed source must not be read again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JpegFolderSource(FrameSource):
    """Frames stored as one JPEG file each, decoded with Pillow on demand.

    A small LRU cache keeps the last few decoded frames: SAM 2 reads a frame once per
    tracked object, and the cache turns those repeats into one decode. After each read the
    next ``read_ahead`` frames in the direction of travel (backwards after a step back, as
    in reverse propagation) are decoded on one background thread; Pillow releases the GIL
    while decoding, so this overlaps with the model's work. At most ``cache_size +
    read_ahead`` frames are held at any time.

    Frames are ``uint8`` ``(H, W, 3)`` RGB and shared with the cache: do not modify them in
    place. Indexing is not thread-safe (one consumer per source); :meth:`read_frame` is (one
    file per frame: a prefetch pool decodes several at once).
    """

    concurrent_reads = True

    def __init__(
        self, paths: Sequence[Path], height: int, width: int, cache_size: int = 4, read_ahead: int = 2
    ):
        self._paths = list(paths)
        self.height = height
        self.width = width
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._read_ahead = max(0, read_ahead)
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._last = -1

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self._paths):
            raise IndexError(f"frame {index} out of range 0..{len(self._paths) - 1}")
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        future = self._pending.pop(index, None)
        # A read-ahead failure surfaces here, on the frame that failed, not earlier.
        frame = future.result() if future is not None else self._decode(index)
        self._cache[index] = frame
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self._schedule(index)
        return frame

    def source_file(self, index: int) -> Path | None:
        """The JPEG file of frame ``index``."""
        if not 0 <= index < len(self._paths):
            raise IndexError(f"frame {index} out of range 0..{len(self._paths) - 1}")
        path = self._paths[index]
        return path if path.suffix.lower() in (".jpg", ".jpeg") else None

    def read_frame(self, index: int) -> np.ndarray:
        """Decode frame ``index`` now, without the cache (safe on several threads at once)."""
        if not 0 <= index < len(self._paths):
            raise IndexError(f"frame {index} out of range 0..{len(self._paths) - 1}")
        return self._decode(index)

    def close(self) -> None:
        """Stop the read-ahead thread (also happens when the source is garbage collected)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _schedule(self, index: int) -> None:
        if self._read_ahead == 0:
            return
        step = -1 if index < self._last else 1
        self._last = index
        wanted = [
            j
            for j in (index + step * k for k in range(1, self._read_ahead + 1))
            if 0 <= j < len(self._paths) and j not in self._cache
        ]
        # Drop read-ahead that a jump made useless, so memory stays bounded.
        for j in [j for j in self._pending if j not in wanted]:
            self._pending.pop(j).cancel()
        for j in wanted:
            if j not in self._pending:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg-read-ahead")
                self._pending[j] = self._executor.submit(self._decode, j)

    def read_resized(self, index: int, image_size: int) -> np.ndarray:
        """Frame ``index`` resized to ``uint8`` ``(S, S, 3)`` as sam2's loader does (Pillow's
        ``convert("RGB").resize``), without the cache: safe on several threads at once.

        The decoded image goes straight to Pillow's resize. Going through :meth:`read_frame`
        and :func:`resize_frame` instead copies the full frame three times (to NumPy and back)
        and holds the interpreter lock a few more times per frame; on the prefetch thread,
        beside SAM 2, that was ~2 of its ~9.5 ms a frame at 854x480 (same pixels)."""
        if not 0 <= index < len(self._paths):
            raise IndexError(f"frame {index} out of range 0..{len(self._paths) - 1}")
        return self._decode(index, image_size)

    def _decode(self, index: int, image_size: int | None = None) -> np.ndarray:
        """Frame ``index`` as ``uint8`` RGB, resized to ``image_size`` squared if given; a frame
        that cannot be read or has the wrong size is a :class:`FrameReadError` naming its file."""
        # Runs on the read-ahead thread too: touches nothing but its own path.
        path = self._paths[index]
        try:
            with Image.open(path) as image:
                if image.size != (self.width, self.height):  # from the header: before decoding
                    raise FrameReadError(
                        f"{path}: expected a frame of {self.height}x{self.width} (HxW) like frame 0, "
                        f"got {image.size[1]}x{image.size[0]}."
                    )
                rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy if RGB
                if image_size is not None:
                    rgb = rgb.resize((image_size, image_size))
                return np.asarray(rgb, dtype=np.uint8)
        except FrameReadError:
            raise
        except (OSError, ValueError) as exc:
            raise FrameReadError(f"{path}: expected a readable JPEG frame, got: {exc}") from exc


class DatasetReader(abc.ABC):
    """One dataset on disk, in one format."""

    name: str

    @abc.abstractmethod
    def list_videos(self) -> list[str]:
        """Video ids selected by the dataset config, in a stable order."""

    @abc.abstractmethod
    def video(self, video_id: str) -> VideoRef:
        """Identity and geometry of one video; validates its layout without decoding frames."""

    @abc.abstractmethod
    def frames(self, video_id: str) -> FrameSource:
        """A lazy source of the video's frames."""

    @abc.abstractmethod
    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        """The prompt that starts each object, one per object, sorted by (frame, object id).

        MOSE and SA-V start each object on its first annotated frame. DAVIS, as its protocol
        does, starts only the first frame's objects, unless its config sets ``late_objects``
        (:meth:`unprompted_objects` names the objects it leaves out).
        """

    def unprompted_objects(self, video_id: str) -> dict[int, int]:
        """``{object id: first annotated frame}`` of the objects in the ground truth that no
        prompt starts (they are never tracked, and the DAVIS protocol does not evaluate them);
        empty for readers that prompt every object."""
        del video_id
        return {}

    @abc.abstractmethod
    def annotated_frames(self, video_id: str) -> list[int]:
        """Video frame indices that carry ground truth, ascending."""

    @abc.abstractmethod
    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        """Ground truth of one frame, or None if that frame is not annotated."""

    def known_objects(self, video_id: str, annotation: FrameAnnotation) -> frozenset[int]:
        """The objects whose label ``annotation`` (an annotated frame of ``video_id``) knows:
        the ones it holds, and an object it leaves out is known to be absent. Readers whose
        format can leave a frame-object out without saying it is absent (a release's null
        entry) override this."""
        prompted = {p.object_id for p in self.prompts(video_id)}
        return frozenset(prompted | set(annotation.object_ids))
