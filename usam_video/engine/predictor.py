"""A sam2 video predictor that reads frames from a lazy source instead of a folder path.

Selected through sam2's own seam (the ``++model._target_=`` override in the factory), it only
adds a constructor of the inference state and a switch that leaves the resizing of the
propagated masks to video resolution to the consumer
(:meth:`StreamingVideoPredictor.low_res_output`); tracking is sam2's code, unchanged. The state
mirrors ``SAM2VideoPredictor.init_state`` of sam2 1.1.0 (the version we pin; a test checks the
keys still match).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

from usam_video.datasets.base import FrameSource, resize_frame
from usam_video.errors import InputError

__all__ = [
    "FeatureCache",
    "Sam2Frames",
    "VideoFeatures",
    "StreamingVideoPredictor",
    "default_prefetch_workers",
    "normalise_frame",
    "preprocess_frame",
    "preprocess_frames",
]

# sam2's ImageNet normalisation (utils/misc.py load_video_frames defaults).
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)


_MEAN = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
_STD = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]


def _normalisation_table() -> np.ndarray:
    """``float32`` ``(3, 256)``: per channel, what sam2's frame loader makes of each ``uint8``
    value: divided by 255 in float64, rounded to float32, minus the mean, over the std (float32
    arithmetic, correctly rounded whatever the path)."""
    values = torch.from_numpy(np.arange(256) / 255.0).to(torch.float32)
    return ((values[None, :] - _MEAN[:, 0]) / _STD[:, 0]).numpy()


_TABLE = _normalisation_table()


def normalise_frame(resized: np.ndarray) -> torch.Tensor:
    """``uint8`` ``(S, S, 3)`` -> ``float32`` ``(3, S, S)``, exactly as sam2's frame loader
    (divided by 255 in float64, then float32, minus ImageNet mean, over std), as a look-up of
    each pixel's value: a byte has 256 values, so the table holds every result the arithmetic
    can give, and the look-up writes each output once (the arithmetic made a float64 copy, a
    float32 copy and two passes over it: 2.5x the time, beside SAM 2 on the other core)."""
    height, width, _ = resized.shape
    out = np.empty((3, height, width), np.float32)
    for c in range(3):
        np.take(_TABLE[c], resized[:, :, c], out=out[c])
    return torch.from_numpy(out)


def preprocess_frame(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """``uint8`` ``(H, W, 3)`` RGB -> ``float32`` ``(3, S, S)``, exactly as sam2's frame loader
    (:func:`~usam_video.datasets.base.resize_frame` then :func:`normalise_frame`)."""
    return normalise_frame(resize_frame(frame, image_size))


def preprocess_frames(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """``uint8`` ``(T, H, W, 3)`` -> ``float32`` ``(T, 3, S, S)`` by :func:`preprocess_frame`."""
    return torch.stack([preprocess_frame(frame, image_size) for frame in frames])


def default_prefetch_workers() -> int:
    """Threads decoding and resizing ahead of the model: half the cores, 1 to 8 (the model's own
    host thread, the finishing and writer threads need the rest).

    Why up to 8: a 1920x1080 JPEG decoded and resized to SAM 2's 1024x1024 input takes ~40 ms
    of one core (BENCHMARKS.md section 2), while SAM 2.1 tiny takes ~11 ms a frame on a
    GPU; four threads would only just keep up, eight leave a margin. Each thread holds the
    interpreter lock only between Pillow's calls."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class FeatureCache:
    """The image encoder's outputs of video frames, kept across propagation sessions within a
    byte budget: what a relabel of a video from new prompts cannot change.

    sam2 keeps one frame's features (``inference_state["cached_features"]``, the last frame it
    encoded) and encodes every frame again in every session. A session given a
    :class:`VideoFeatures` of this cache (through :class:`Sam2Frames`) reads the frames it holds
    instead of decoding and encoding them, and stores the frames it encodes while the budget
    lasts. The outputs are sam2's own tensors, so the tracking is bit for bit that of an
    uncached session (tests/engine/test_feature_cache.py).

    Per frame it holds ``backbone_fpn`` (the levels ``_get_image_feature`` reads, on the
    device and in the dtype the encoder produced them: at 128 px (micro) 128 KiB in float32; at
    1024 px (SAM 2.1 hiera) 16 MiB). ``vision_pos_enc`` depends only on the input size: a frame's
    encodings are stored once and shared by every frame whose encodings are equal (checked with
    ``torch.equal``, so sharing changes no value; 672 KiB at 128 px, 84 MiB at 1024 px). The
    input image, which sam2 1.1.0's video predictor returns but never reads, is not kept: a
    zero-stride stand-in of its shape takes its place.

    When the next frame would exceed ``max_bytes`` it is not stored (frames already stored
    stay): propagation reads frames in order, so keeping the first ones gives a fixed hit rate
    where evicting the oldest would give none.

    Attributes:
        max_bytes: the budget; ``bytes``: held now; ``hits``/``misses``: frames read from the
            cache / encoded by sam2 while a cache was given.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise InputError(f"feature cache: expected a budget of 0 or more bytes, got {max_bytes}.")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._frames: dict[tuple[str, int], tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = {}
        self._positions: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._frames)

    def video(self, key: str) -> VideoFeatures:
        """The frames of one video (``key``: any name unique to the video in this cache)."""
        return VideoFeatures(self, key)

    def get(self, key: str, frame_idx: int) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]] | None:
        """``(image stand-in, backbone_out)`` as sam2's ``cached_features`` holds them, or None."""
        entry = self._frames.get((key, frame_idx))
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        image, fpn, positions = entry
        return image, {"backbone_fpn": list(fpn), "vision_pos_enc": list(positions)}

    def put(self, key: str, frame_idx: int, image: torch.Tensor, backbone_out: dict[str, Any]) -> None:
        """Store a frame's encoder outputs (what ``forward_image`` returned) if the budget allows."""
        if (key, frame_idx) in self._frames:
            return
        fpn = list(backbone_out["backbone_fpn"])
        positions = [self._shared(p) for p in backbone_out["vision_pos_enc"]]
        new_positions = [p for p in positions if not any(p is q for q in self._positions)]
        size = sum(_nbytes(t) for t in fpn + new_positions)
        if self.bytes + size > self.max_bytes:
            return
        self._positions += new_positions
        self.bytes += size
        stand_in = image.new_zeros(()).expand(image.shape)  # never read by sam2 1.1.0: see above
        self._frames[(key, frame_idx)] = (stand_in, fpn, positions)

    def _shared(self, position: torch.Tensor) -> torch.Tensor:
        """An equal position encoding already held, else ``position`` itself."""
        for held in self._positions:
            if (
                held.shape == position.shape
                and held.dtype == position.dtype
                and held.device == position.device
                and torch.equal(held, position)
            ):
                return held
        return position


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class VideoFeatures:
    """One video's frames in a :class:`FeatureCache` (what :class:`Sam2Frames` carries)."""

    def __init__(self, cache: FeatureCache, key: str) -> None:
        self.cache = cache
        self.key = key

    def get(self, frame_idx: int) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]] | None:
        return self.cache.get(self.key, frame_idx)

    def put(self, frame_idx: int, image: torch.Tensor, backbone_out: dict[str, Any]) -> None:
        self.cache.put(self.key, frame_idx, image, backbone_out)


class Sam2Frames:
    """Adapts a :class:`FrameSource` to what sam2 indexes as ``inference_state["images"]``.

    ``self[i]`` is a ``float32`` ``(3, S, S)`` tensor, resized and normalised exactly as sam2's
    ``load_video_frames`` does for JPEG folders (Pillow's default resize of the RGB frame to
    ``S x S``, divided by 255, minus mean, over std), on the CPU or already on ``device``.

    Frames are decoded and resized (in ``uint8``) on a small thread pool, up to ``ahead`` frames
    ahead of the last one asked for, in the direction of travel, so the model never waits for
    a decode. At most ``ahead`` frames are held beyond the one being read: memory does not grow
    with the video's length. On the CPU the pool also normalises (the result is bit-identical to
    :func:`preprocess_frame`); on CUDA it hands pinned ``uint8`` pixels, uploaded
    ``non_blocking`` and normalised on the device (a quarter of the bytes to copy, and no wait).

    A source that allows concurrent reads (``FrameSource.concurrent_reads``, e.g. JPEG files)
    is decoded by every worker at once; any other (an mp4's decoder) is read by one worker at
    a time, in order, and only the resizing runs in parallel.

    ``features``: the video's image-encoder outputs kept across sessions (see
    :class:`FeatureCache`); a frame found there is neither decoded nor encoded.
    """

    def __init__(
        self,
        source: FrameSource,
        image_size: int,
        device: torch.device | None = None,
        workers: int | None = None,
        ahead: int | None = None,
        features: VideoFeatures | None = None,
    ):
        self.source = source
        self.features = features
        self.image_size = image_size
        self.device = device if device is not None else torch.device("cpu")
        self.workers = workers if workers is not None else default_prefetch_workers()
        self.ahead = ahead if ahead is not None else self.workers + 2
        self._cuda = self.device.type == "cuda"
        self._read_lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._last = -1
        self._executor: ThreadPoolExecutor | None = None
        if self.ahead > 0:
            self._executor = ThreadPoolExecutor(max(1, self.workers), thread_name_prefix="usam-frames")
            # Threads end with the frames object even if nobody calls close().
            self._finalizer = weakref.finalize(self, self._executor.shutdown, False, cancel_futures=True)
        if self._cuda:
            self._mean = _MEAN.to(self.device)
            self._std = _STD.to(self.device)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.source):
            raise IndexError(f"frame {index} out of range 0..{len(self.source) - 1}")
        future = self._pending.pop(index, None)
        self._schedule(index)
        # A read error surfaces here, on the frame that failed, not earlier.
        item = future.result() if future is not None else self._load(index)
        if not self._cuda:
            return item
        pixels = item.to(self.device, non_blocking=True)  # pinned uint8 (S, S, 3)
        image = pixels.permute(2, 0, 1).float().div_(255.0)
        return (image - self._mean) / self._std

    def close(self) -> None:
        """Stop the prefetch threads (also happens when the object is garbage collected)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._finalizer()
            self._executor = None

    def _schedule(self, index: int) -> None:
        if self._executor is None:
            return
        step = -1 if index < self._last else 1
        self._last = index
        ahead = (index + step * k for k in range(1, self.ahead + 1))
        wanted = [j for j in ahead if 0 <= j < len(self.source)]
        # Drop prefetches a jump made useless, so memory stays bounded.
        for j in [j for j in self._pending if j not in wanted]:
            self._pending.pop(j).cancel()
        for j in wanted:
            if j not in self._pending:
                self._pending[j] = self._executor.submit(self._load, j)

    def _load(self, index: int) -> Any:
        """Decode and resize frame ``index`` (on a worker thread, or inline on a miss)."""
        if self.source.concurrent_reads:
            resized = self.source.read_resized(index, self.image_size)
        else:
            with self._read_lock:  # one reader at a time: the source is not thread-safe
                frame = self.source[index]
            resized = resize_frame(frame, self.image_size)  # outside the lock: in parallel
        if not self._cuda:
            return normalise_frame(resized)
        return torch.from_numpy(np.ascontiguousarray(resized)).pin_memory()


#: Set, on one thread, while that thread runs sam2 under
#: :meth:`StreamingVideoPredictor.low_res_output`; a context variable, so that the finishing
#: thread, which resizes the masks meanwhile through the same method, is never affected.
_LOW_RES_OUTPUT: ContextVar[bool] = ContextVar("usam_low_res_output", default=False)


class StreamingVideoPredictor(SAM2VideoPredictor):
    """``SAM2VideoPredictor`` plus :meth:`init_state_from_frames` and :meth:`low_res_output`."""

    @contextlib.contextmanager
    def low_res_output(self) -> Iterator[None]:
        """Within the block (on this thread only), sam2's output masks stay at the decoder's
        resolution: ``propagate_in_video`` yields ``(N, 1, h, w)`` logits (``h = w =
        image_size / 4``) instead of resizing them to the video's ``(N, 1, H, W)``.

        The consumer resizes them with :meth:`_get_orig_video_res_output` outside the block,
        the same function sam2 would have run, so the masks are identical. Why: that resize
        (and sam2's non-overlap constraint, when set) is sam2's only per-frame work that tracking
        never reads, and at video resolution it is large: on one CPU thread ~3 ms of a ~58 ms
        854x480 frame with 2 objects, ~60-80 ms of a ~350 ms 1080p frame with 8. Done on the
        finishing thread, it leaves SAM 2's thread. sam2 1.1.0 calls the method in
        ``propagate_in_video`` only for the yielded masks (a test checks the masks match).
        """
        token = _LOW_RES_OUTPUT.set(True)
        try:
            yield
        finally:
            _LOW_RES_OUTPUT.reset(token)

    def _get_image_feature(
        self, inference_state: dict[str, Any], frame_idx: int, batch_size: int
    ) -> tuple[Any, ...]:
        """sam2's, reading and filling the frames' :class:`FeatureCache` when they carry one.

        A frame found in the cache takes the place of sam2's own one-frame cache, so sam2 skips
        the decoding and the encoder and expands the same tensors as after encoding it."""
        images = inference_state["images"]
        features = images.features if isinstance(images, Sam2Frames) else None
        if features is not None and frame_idx not in inference_state["cached_features"]:
            held = features.get(frame_idx)
            if held is not None:
                inference_state["cached_features"] = {frame_idx: held}
        out = super()._get_image_feature(inference_state, frame_idx, batch_size)
        if features is not None:
            features.put(frame_idx, *inference_state["cached_features"][frame_idx])
        return out

    def _get_orig_video_res_output(
        self, inference_state: dict[str, Any], any_res_masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sam2's resize to video resolution, skipped under :meth:`low_res_output`."""
        if _LOW_RES_OUTPUT.get():
            masks = any_res_masks.to(inference_state["device"], non_blocking=True)
            return masks, masks
        return super()._get_orig_video_res_output(inference_state, any_res_masks)

    @torch.inference_mode()
    def init_state_from_frames(
        self,
        source: FrameSource,
        offload_state_to_cpu: bool = False,
        warm_up: bool = True,
        prefetch_workers: int | None = None,
        features: VideoFeatures | None = None,
    ) -> dict[str, Any]:
        """Build sam2's inference state over a lazy frame source (no up-front decoding).

        Returns the same dict ``init_state`` returns, with ``images`` a :class:`Sam2Frames`
        (``prefetch_workers`` threads; default :func:`default_prefetch_workers`) carrying
        ``features``, the video's encoder outputs kept across sessions (default none).
        ``warm_up`` runs the image encoder on frame 0 now, as ``init_state`` does.
        """
        compute_device = self.device
        images = Sam2Frames(
            source, self.image_size, device=compute_device, workers=prefetch_workers, features=features
        )
        state: dict[str, Any] = {
            "images": images,
            "num_frames": len(source),
            # Frames reach the device one at a time, prefetched (Sam2Frames).
            "offload_video_to_cpu": True,
            "offload_state_to_cpu": offload_state_to_cpu,
            "video_height": source.height,
            "video_width": source.width,
            "device": compute_device,
            "storage_device": torch.device("cpu") if offload_state_to_cpu else compute_device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }
        if warm_up:  # the backbone on frame 0, as init_state does
            self._get_image_feature(state, frame_idx=0, batch_size=1)
        return state
