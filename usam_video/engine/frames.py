"""A propagated frame on the device, and its assembly into a host record with two copies.

:meth:`~usam_video.engine.session.PropagationSession.propagate_device` yields a
:class:`DeviceFrame`: references to what sam2 and the token hooks left on the engine's device,
nothing computed, nothing copied, so the loop that drives the model returns to sam2 at once.
:class:`FrameAssembler` then (on any thread, in frame order) stacks the per-object outputs into
``(O, ...)`` tensors, computes the video features (:class:`FrameTensors`, still on the device),
and makes the host record (:class:`~usam_video.types.FramePrediction`) with exactly two copies:
one packed ``float32`` block of every per-object number (plus any extra ``(O, ...)`` tensors a
consumer computed on the device, e.g. the USAM heads' scores) and one ``bool`` block of masks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usam_video.engine.capture import DeviceCall
from usam_video.engine.features import VideoFeatureTracker
from usam_video.engine.transfer import copy_to_host
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.types import FramePrediction

__all__ = ["DeviceFrame", "FrameAssembler", "FrameTensors"]


@dataclass(frozen=True, eq=False)
class DeviceFrame:
    """One propagated frame as sam2 left it, for the ``N`` objects tracked so far.

    Attributes:
        frame_index: 0-based frame index.
        object_ids: every object of the session (``O``), in record order.
        rows: per tracked object (sam2's object order), its row in ``object_ids``.
        calls: per tracked object, the decoder call that produced its output and its row there.
        is_prompt: per tracked object: its output on this frame is its prompt's.
        is_cond: per tracked object: this frame is one of its conditioning frames.
        obj_ptrs: per tracked object, its object pointer ``(C,)`` on the device, or None.
        video_res_masks: ``(N, 1, H, W)`` mask logits at video resolution, on the device.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    rows: tuple[int, ...]
    calls: tuple[tuple[DeviceCall, int], ...]
    is_prompt: tuple[bool, ...]
    is_cond: tuple[bool, ...]
    obj_ptrs: tuple[torch.Tensor | None, ...]
    video_res_masks: torch.Tensor


@dataclass(frozen=True, eq=False)
class FrameTensors:
    """Every per-object output of one frame, stacked over all ``O`` objects, on the device.

    Host facts (``tracked``, ``is_prompt``) are numpy; everything computed by the model is a
    tensor. Untracked objects have NaN numbers, chosen candidate -1 and empty masks.

    Attributes:
        numbers: ``float32`` ``(O, P)``: IoU token ``D``, mask tokens ``K*D``, candidate IoUs
            ``K``, chosen candidate, object-score logit, entropy, stability (see
            :meth:`FrameAssembler.split`).
        video_features: ``float32`` ``(O, F)``.
        masks: ``bool`` ``(O, H, W)``.
        candidate_masks: ``bool`` ``(O, K, H, W)`` or None; candidate_valid: ``bool`` ``(O, K)``.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    tracked: np.ndarray
    is_prompt: np.ndarray
    numbers: torch.Tensor
    video_features: torch.Tensor
    masks: torch.Tensor
    candidate_masks: torch.Tensor | None
    candidate_valid: torch.Tensor | None


class FrameAssembler:
    """Turns :class:`DeviceFrame` records into :class:`FrameTensors` and host records.

    Keeps the video-feature state, so frames must come in order, one assembler per session.

    Args:
        num_objects: ``O``; num_mask_tokens: ``K``; token_dim: ``D``.
        device: the engine's device.
        upsample: takes ``(K, 1, h, w)`` low-res logits to ``(K, 1, H, W)`` at video resolution
            (sam2's own resizing); needed only with ``keep_candidates``.
    """

    def __init__(
        self,
        num_objects: int,
        num_mask_tokens: int,
        token_dim: int,
        height: int,
        width: int,
        device: torch.device,
        upsample: Callable[[torch.Tensor], torch.Tensor] | None = None,
        keep_candidates: bool = False,
    ):
        self.num_objects, self.k, self.d = num_objects, num_mask_tokens, token_dim
        self.height, self.width, self.device = height, width, device
        self.upsample = upsample
        self.keep_candidates = keep_candidates
        self.features = VideoFeatureTracker(num_objects, device)
        k, d = num_mask_tokens, token_dim
        sizes = {"iou_tokens": d, "mask_tokens": k * d, "candidate_ious": k, "chosen": 1,
                 "object_score_logits": 1, "entropy": 1, "stability": 1}  # fmt: skip
        self._slices: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self._slices[name] = slice(start, start + size)
            start += size
        self.width_numbers = start
        self._nan_row = torch.full((1, start), float("nan"), device=device)
        self._nan_row[0, self._slices["chosen"]] = -1.0

    def split(self, numbers: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor | np.ndarray]:
        """The named blocks of a ``(O, P)`` numbers array (views), reshaped to their shapes."""
        o = numbers.shape[0]
        out = {name: numbers[:, s] for name, s in self._slices.items()}
        out["mask_tokens"] = out["mask_tokens"].reshape(o, self.k, self.d)
        for name in ("chosen", "object_score_logits", "entropy", "stability"):
            out[name] = out[name].reshape(o)
        return out

    def tensors(self, frame: DeviceFrame) -> FrameTensors:
        """Stack one frame's outputs over all objects and compute its video features (device
        work only: no copy to the host, no wait)."""
        o = self.num_objects
        tracked = np.zeros(o, bool)
        is_prompt = np.zeros(o, bool)
        is_cond = np.zeros(o, bool)
        tracked[list(frame.rows)] = True
        is_prompt[list(frame.rows)] = frame.is_prompt
        is_cond[list(frame.rows)] = frame.is_cond
        # One (B, P) block per decoder call, then one row per object in record order.
        packed: dict[int, torch.Tensor] = {}
        for call, _ in frame.calls:
            if id(call) not in packed:
                packed[id(call)] = torch.cat(
                    [
                        call.iou_tokens.float(),
                        call.mask_tokens.float().flatten(1),
                        call.candidate_ious.float(),
                        call.chosen.float()[:, None],
                        call.object_score_logits.float()[:, None],
                        call.entropy.float()[:, None],
                        call.stability.float()[:, None],
                    ],
                    dim=1,
                )
        by_row = {
            row: packed[id(call)][r : r + 1] for row, (call, r) in zip(frame.rows, frame.calls, strict=True)
        }
        numbers = torch.cat([by_row.get(i, self._nan_row) for i in range(o)], dim=0)
        logits = frame.video_res_masks[:, 0]
        if frame.rows == tuple(range(o)):
            masks = logits > 0.0
        else:
            empty = torch.zeros((1, self.height, self.width), dtype=torch.bool, device=logits.device)
            tracked_rows = {row: i for i, row in enumerate(frame.rows)}
            masks = torch.cat(
                [logits[tracked_rows[i]][None] > 0.0 if i in tracked_rows else empty for i in range(o)]
            )
        ptrs: list[torch.Tensor | None] = [None] * o
        for row, ptr in zip(frame.rows, frame.obj_ptrs, strict=True):
            ptrs[row] = ptr
        logit = numbers[:, self._slices["object_score_logits"]][:, 0]
        features = self.features.update(frame.frame_index, masks, tracked, is_cond, logit, ptrs)
        candidate_masks = candidate_valid = None
        if self.keep_candidates:
            candidate_masks, candidate_valid = self._candidates(frame)
        return FrameTensors(
            frame.frame_index, frame.object_ids, tracked, is_prompt, numbers, features, masks,
            candidate_masks, candidate_valid,
        )  # fmt: skip

    def _candidates(self, frame: DeviceFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """Every token's mask at video resolution ``bool`` ``(O, K, H, W)`` and which tokens
        produced one ``bool`` ``(O, K)``."""
        o, k = self.num_objects, self.k
        masks = torch.zeros((o, k, self.height, self.width), dtype=torch.bool, device=self.device)
        valid = torch.zeros((o, k), dtype=torch.bool, device=self.device)
        if self.upsample is None:
            raise RuntimeError("keep_candidates needs the session's upsampling")
        for row, (call, r) in zip(frame.rows, frame.calls, strict=True):
            if call.candidate_logits is None:
                continue
            logits = call.candidate_logits[r]  # (K, h, w), NaN where the token gave no mask
            ok = ~torch.isnan(logits.flatten(1)[:, 0])
            video = self.upsample(logits[:, None])
            masks[row] = (video[:, 0] > 0.0) & ok[:, None, None]
            valid[row] = ok
        return masks, valid

    def prediction(
        self, t: FrameTensors, extras: Sequence[torch.Tensor] = ()
    ) -> tuple[FramePrediction, list[np.ndarray]]:
        """The host record of one frame, and the host copies of ``extras`` (each ``(O, ...)`` on
        the device, any float dtype; returned ``float32`` in their shapes).

        Exactly two device-to-host copies, whatever the number of objects: one ``float32``
        block (numbers, features, candidate validity, extras) and one ``bool`` block (masks,
        candidate masks).
        """
        o = self.num_objects
        floats = [t.numbers, t.video_features]
        if t.candidate_valid is not None:
            floats.append(t.candidate_valid.float())
        floats += [e.float().reshape(o, -1) for e in extras]
        float_copy = copy_to_host(torch.cat(floats, dim=1))
        bools = [t.masks.reshape(o, -1)]
        if t.candidate_masks is not None:
            bools.append(t.candidate_masks.reshape(o, -1))
        bool_copy = copy_to_host(bools[0] if len(bools) == 1 else torch.cat(bools, dim=1))
        flat = float_copy.wait()
        flags = bool_copy.wait()

        parts = self.split(flat[:, : self.width_numbers])
        col = self.width_numbers
        features = flat[:, col : col + len(VIDEO_FEATURES)]
        col += len(VIDEO_FEATURES)
        candidate_valid = None
        if t.candidate_valid is not None:
            candidate_valid = flat[:, col : col + self.k] > 0.5
            col += self.k
        extra_arrays = []
        for e in extras:
            width = int(np.prod(e.shape[1:], dtype=np.int64))
            extra_arrays.append(np.array(flat[:, col : col + width]).reshape(e.shape))
            col += width
        h, w = self.height, self.width
        masks = flags[:, : h * w].reshape(o, h, w)
        candidate_masks = None
        if t.candidate_masks is not None:
            candidate_masks = flags[:, h * w :].reshape(o, self.k, h, w)
        chosen = parts["chosen"].astype(np.int64)  # exact small integers; -1 where untracked
        candidate_ious = np.array(parts["candidate_ious"])
        sam_iou = np.full(o, np.nan, np.float32)
        tracked = t.tracked
        sam_iou[tracked] = candidate_ious[tracked, chosen[tracked]]
        prediction = FramePrediction(
            frame_index=t.frame_index,
            object_ids=t.object_ids,
            masks=masks,  # a view of the copied block: no second host copy
            sam_iou=sam_iou,
            candidate_ious=candidate_ious,
            chosen_candidate=chosen,
            object_score_logits=np.array(parts["object_score_logits"]),
            iou_tokens=np.array(parts["iou_tokens"]),
            mask_tokens=np.array(parts["mask_tokens"]),
            is_prompt=t.is_prompt.copy(),
            entropy=np.array(parts["entropy"]),
            stability=np.array(parts["stability"]),
            tracked=tracked.copy(),
            candidate_masks=candidate_masks,
            candidate_valid=candidate_valid,
            video_features=np.array(features),
        )
        return prediction, extra_arrays
