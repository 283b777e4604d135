"""A sam2 video predictor that reads frames from a lazy source instead of a folder path.

Selected through sam2's own seam (the ``++model._target_=`` override in the factory), it only
adds a constructor of the inference state; tracking is sam2's code, unchanged. The state
mirrors ``SAM2VideoPredictor.init_state`` of sam2 1.1.0 (the version we pin; a test checks the
keys still match).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from PIL import Image
from sam2.sam2_video_predictor import SAM2VideoPredictor

from usam_video.datasets.base import FrameSource

__all__ = ["Sam2Frames", "StreamingVideoPredictor", "preprocess_frame", "preprocess_frames"]

# sam2's ImageNet normalisation (utils/misc.py load_video_frames defaults).
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)


_MEAN = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
_STD = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]


def preprocess_frame(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """``uint8`` ``(H, W, 3)`` RGB -> ``float32`` ``(3, S, S)``, exactly as sam2's frame loader.

    Pillow's default resize of the RGB frame to ``S x S``, divided by 255 (float64, then a
    float32 copy: the same arithmetic as sam2's loader), minus ImageNet mean, over std.
    """
    resized = np.array(Image.fromarray(frame).resize((image_size, image_size)))
    image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).to(torch.float32)
    image -= _MEAN
    image /= _STD
    return image


def preprocess_frames(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """``uint8`` ``(T, H, W, 3)`` -> ``float32`` ``(T, 3, S, S)`` by :func:`preprocess_frame`."""
    return torch.stack([preprocess_frame(frame, image_size) for frame in frames])


class Sam2Frames:
    """Adapts a :class:`FrameSource` to what sam2 indexes as ``inference_state["images"]``.

    ``self[i]`` is a ``float32`` ``(3, S, S)`` tensor on the CPU, resized and normalised exactly
    as sam2's ``load_video_frames`` does for JPEG folders (Pillow's default resize of the RGB
    frame to ``S x S``, divided by 255, minus mean, over std). Frames are produced on demand,
    so memory does not grow with the video's length.
    """

    def __init__(self, source: FrameSource, image_size: int):
        self.source = source
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        return preprocess_frame(self.source[index], self.image_size)


class StreamingVideoPredictor(SAM2VideoPredictor):
    """``SAM2VideoPredictor`` plus :meth:`init_state_from_frames`."""

    @torch.inference_mode()
    def init_state_from_frames(
        self, source: FrameSource, offload_state_to_cpu: bool = False
    ) -> dict[str, Any]:
        """Build sam2's inference state over a lazy frame source (no up-front decoding).

        Returns the same dict ``init_state`` returns, with ``images`` a :class:`Sam2Frames`.
        """
        compute_device = self.device
        state: dict[str, Any] = {
            "images": Sam2Frames(source, self.image_size),
            "num_frames": len(source),
            # Frames are moved to the device one at a time in _get_image_feature.
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
        # Warm up the backbone on frame 0, as init_state does.
        self._get_image_feature(state, frame_idx=0, batch_size=1)
        return state
