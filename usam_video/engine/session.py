"""One propagation session per video: add prompts, then iterate typed per-frame records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from usam_video.datasets.base import FrameSource
from usam_video.engine.capture import DecoderCall, TokenCapture
from usam_video.engine.factory import BuiltModel
from usam_video.errors import InputError
from usam_video.types import FramePrediction, ObjectPrompt

__all__ = ["PropagationSession"]


class PropagationSession:
    """Tracks the prompted objects of one video with SAM 2 and yields :class:`FramePrediction`.

    Usage::

        session = PropagationSession(model, frames)
        for prompt in prompts:
            session.add_mask_prompt(prompt)
        for record in session.propagate():
            ...

    The record of a prompted frame carries the tokens of the decoder pass SAM 2 makes on the
    prompt (sam2 runs the decoder on the mask prompt to build the object pointer).
    """

    def __init__(self, model: BuiltModel, frames: FrameSource):
        self.model = model
        self.frames = frames
        self._predictor = model.predictor
        with self._autocast():
            self._state: dict[str, Any] = self._predictor.init_state_from_frames(frames)
        self._prompt_calls: dict[tuple[int, int], DecoderCall] = {}  # (frame, obj_id) -> call

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.model.device.type == "cuda" and self.model.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.model.dtype)
        return contextlib.nullcontext()

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self._state["obj_ids"])

    def add_mask_prompt(self, prompt: ObjectPrompt) -> None:
        """Add an object's mask (``bool`` ``(H, W)`` at video resolution) on its frame."""
        h, w = self.frames.height, self.frames.width
        if prompt.mask.shape != (h, w):
            raise InputError(
                f"object {prompt.object_id} frame {prompt.frame_index}: expected a mask of "
                f"{h}x{w} (HxW), got {prompt.mask.shape}."
            )
        if not 0 <= prompt.frame_index < len(self.frames):
            raise InputError(
                f"object {prompt.object_id}: prompt on frame {prompt.frame_index}, expected a "
                f"frame in 0..{len(self.frames) - 1}."
            )
        with self.model.lock, TokenCapture(self._predictor) as capture, self._autocast():
            self._predictor.add_new_mask(
                self._state, prompt.frame_index, prompt.object_id, torch.from_numpy(prompt.mask.astype(bool))
            )
        calls = capture.drain()
        if len(calls) != 1 or calls[0].iou_tokens.shape[0] != 1:
            raise RuntimeError(
                f"expected one decoder call for one mask prompt, got {len(calls)}: sam2 internals changed"
            )
        self._prompt_calls[(prompt.frame_index, prompt.object_id)] = calls[0]

    def propagate(self) -> Iterator[FramePrediction]:
        """Propagate forward from the earliest prompt, yielding one record per frame."""
        obj_ids = self.object_ids
        if not obj_ids:
            raise InputError("no prompts were added: nothing to propagate")
        with self.model.lock, TokenCapture(self._predictor) as capture:
            with self._autocast():
                stream = self._predictor.propagate_in_video(self._state)
                for frame_idx, _, video_res_masks in stream:
                    yield self._record(int(frame_idx), obj_ids, video_res_masks, capture.drain())

    def _record(
        self,
        frame_idx: int,
        obj_ids: tuple[int, ...],
        video_res_masks: torch.Tensor,
        calls: list[DecoderCall],
    ) -> FramePrediction:
        # sam2 1.1.0 runs the decoder once per object (batch 1) on every frame that is not a
        # conditioning frame of that object, in object-index order; conditioning frames reuse
        # the stored output of the prompt, whose tokens we captured in add_mask_prompt.
        per_obj: list[tuple[DecoderCall, int, bool]] = []
        queue = [(call, row) for call in calls for row in range(call.iou_tokens.shape[0])]
        for obj_id in obj_ids:
            prompt_call = self._prompt_calls.get((frame_idx, obj_id))
            if prompt_call is not None:
                per_obj.append((prompt_call, 0, True))
            elif queue:
                call, row = queue.pop(0)
                per_obj.append((call, row, False))
            else:
                raise RuntimeError(f"frame {frame_idx}: no decoder output captured for object {obj_id}")
        if queue:
            raise RuntimeError(
                f"frame {frame_idx}: {len(queue)} unexpected decoder outputs: sam2 internals changed"
            )
        masks = (video_res_masks[:, 0] > 0.0).cpu().numpy()
        candidate_ious = np.stack([c.candidate_ious[r] for c, r, _ in per_obj])
        chosen = np.array([c.chosen[r] for c, r, _ in per_obj], dtype=np.int64)
        return FramePrediction(
            frame_index=frame_idx,
            object_ids=obj_ids,
            masks=masks,
            sam_iou=candidate_ious[np.arange(len(obj_ids)), chosen].astype(np.float32),
            candidate_ious=candidate_ious.astype(np.float32),
            chosen_candidate=chosen,
            object_score_logits=np.array([c.object_score_logits[r] for c, r, _ in per_obj], dtype=np.float32),
            iou_tokens=np.stack([c.iou_tokens[r] for c, r, _ in per_obj]).astype(np.float32),
            mask_tokens=np.stack([c.mask_tokens[r] for c, r, _ in per_obj]).astype(np.float32),
            is_prompt=np.array([p for _, _, p in per_obj], dtype=bool),
        )
