"""One propagation session per video: add prompts, then iterate typed per-frame records.

Memory stays flat in the video's length: frames are decoded on demand (see
:class:`~usam_video.engine.predictor.Sam2Frames`), and once a frame has been yielded, every
per-object output that SAM 2 can no longer read is dropped (see :func:`oldest_frame_needed`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from usam_video.datasets.base import FrameSource
from usam_video.engine.capture import DecoderCall, DeviceCall, TokenCapture
from usam_video.engine.factory import BuiltModel
from usam_video.engine.frames import DeviceFrame, FrameAssembler, FrameBatch, flush_due
from usam_video.engine.predictor import VideoFeatures
from usam_video.errors import InputError
from usam_video.types import FramePrediction, ObjectPrompt

__all__ = ["CorrectionPrompt", "PropagationSession", "oldest_frame_needed"]


@dataclass(frozen=True, eq=False)
class CorrectionPrompt(ObjectPrompt):
    """Clicks (points and/or a box) that correct an object SAM 2 already tracks, on a later frame.

    Applied as a correction in SAM 2's interactive loop: the frame is tracked as usual, then the
    decoder runs again on the same memory-conditioned features with the tracked mask as its mask
    prompt plus these clicks (the same pass as :meth:`PropagationSession.probe_points`), and the
    result becomes a conditioning frame of the object for every later frame. A plain
    :class:`ObjectPrompt` with points on a later frame instead starts the object afresh there from
    the clicks alone (no memory, no tracked mask), as sam2 does for a frame it has not tracked.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask is not None:
            raise ValueError(
                f"object {self.object_id} frame {self.frame_index}: a correction takes points and/or a "
                "box; give a mask as a plain ObjectPrompt"
            )


def oldest_frame_needed(model: torch.nn.Module, frame_idx: int, num_frames: int) -> int:
    """The oldest earlier frame whose non-conditioning output tracking ``frame_idx`` reads.

    Mirrors ``SAM2Base._prepare_memory_conditioned_features`` (sam2 1.1.0, forward tracking,
    eval mode): spatial memories of frame ``t-1`` and of ``num_maskmem - 2`` more frames at the
    eval stride, and object pointers of the last ``max_obj_ptrs_in_encoder - 1`` frames.
    Conditioning (prompted) frames are read separately and never dropped.
    """
    needed = [frame_idx - 1]
    stride = model.memory_temporal_stride_for_eval
    for t_rel in range(2, model.num_maskmem):
        needed.append(((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride)
    if model.use_obj_ptrs_in_encoder:
        max_ptrs = min(num_frames, model.max_obj_ptrs_in_encoder)
        if max_ptrs > 1:
            needed.append(frame_idx - (max_ptrs - 1))
    return min(needed)


class PropagationSession:
    """Tracks the prompted objects of one video with SAM 2 and yields :class:`FramePrediction`.

    Usage::

        session = PropagationSession(model, frames)
        for prompt in prompts:
            session.add_prompt(prompt)
        for record in session.propagate():
            ...

    Every record covers every prompted object (in the order they were added). An object whose
    first prompt lies on a later frame enters there: on earlier frames it is not tracked
    (``tracked`` False, empty mask, NaN scores). The record of a prompted frame carries the
    tokens of the decoder pass SAM 2 makes on the prompt. A :class:`CorrectionPrompt` corrects
    an object on a frame after its first prompt, with the tracked mask and memory as context.

    Args:
        prune: drop per-object outputs SAM 2 can no longer read once their frame is yielded
            (constant memory). Off only to compare against an unpruned run.
        keep_candidates: also return every decoder token's mask at video resolution
            (``FramePrediction.candidate_masks``), for training targets and candidate swaps.
        warm_up: run the image encoder on frame 0 now, as sam2's ``init_state`` does (off: the
            first prompt or propagation step computes it instead; the results are the same).
        features: this video's image-encoder outputs kept across sessions
            (:meth:`~usam_video.engine.predictor.FeatureCache.video`): frames found there are not
            encoded again, frames encoded are stored while its budget lasts; the results are the
            same bit for bit. None (the label loop's default): sam2's own one-frame cache only.
    """

    def __init__(
        self,
        model: BuiltModel,
        frames: FrameSource,
        prune: bool = True,
        keep_candidates: bool = False,
        warm_up: bool = True,
        features: VideoFeatures | None = None,
    ):
        self.model = model
        self.frames = frames
        self.prune = prune
        self.keep_candidates = keep_candidates
        self._capture: TokenCapture | None = None
        self._predictor = model.predictor
        with self._autocast():
            self._state: dict[str, Any] = self._predictor.init_state_from_frames(
                frames, warm_up=warm_up, prefetch_workers=model.config.prefetch_workers, features=features
            )
        self._prompts: list[ObjectPrompt] = []
        self._prompt_calls: dict[tuple[int, int], DeviceCall] = {}  # (frame, obj_id) -> call

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.model.device.type == "cuda" and self.model.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.model.dtype)
        return contextlib.nullcontext()

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Every prompted object, in the order of first appearance (then id)."""
        seen: dict[int, None] = {}
        for prompt in sorted(self._prompts, key=lambda p: (p.frame_index, p.object_id)):
            seen.setdefault(prompt.object_id, None)
        return tuple(seen)

    def add_prompt(self, prompt: ObjectPrompt) -> None:
        """Queue a prompt (mask, points and/or box at video resolution); checked now, applied when
        propagation reaches its frame."""
        h, w = self.frames.height, self.frames.width
        where = f"object {prompt.object_id} frame {prompt.frame_index}"
        if not 0 <= prompt.frame_index < len(self.frames):
            raise InputError(f"{where}: expected a prompt on a frame in 0..{len(self.frames) - 1}.")
        if prompt.mask is not None and prompt.mask.shape != (h, w):
            raise InputError(f"{where}: expected a mask of {h}x{w} (HxW), got {prompt.mask.shape}.")
        if prompt.points is not None:
            points = np.asarray(prompt.points)
            labels = np.asarray(prompt.point_labels)
            if points.ndim != 2 or points.shape[1] != 2 or labels.shape != (points.shape[0],):
                raise InputError(
                    f"{where}: expected points (N, 2) with labels (N,), "
                    f"got {points.shape} and {labels.shape}."
                )
        if prompt.box is not None and np.asarray(prompt.box).shape != (4,):
            raise InputError(
                f"{where}: expected a box (x0, y0, x1, y1), got shape {np.asarray(prompt.box).shape}."
            )
        if any(
            p.object_id == prompt.object_id and p.frame_index == prompt.frame_index for p in self._prompts
        ):
            raise InputError(f"{where}: expected one prompt per object and frame, got two.")
        self._prompts.append(prompt)

    def _apply(self, prompt: ObjectPrompt) -> None:
        if isinstance(prompt, CorrectionPrompt):
            self._apply_correction(prompt)
            return
        with TokenCapture(self._predictor, keep_logits=self.keep_candidates) as capture:
            if prompt.mask is not None:
                self._predictor.add_new_mask(
                    self._state,
                    prompt.frame_index,
                    prompt.object_id,
                    torch.from_numpy(prompt.mask.astype(bool)),
                )
            else:
                self._predictor.add_new_points_or_box(
                    self._state,
                    prompt.frame_index,
                    prompt.object_id,
                    points=None if prompt.points is None else np.asarray(prompt.points, np.float32),
                    labels=None if prompt.point_labels is None else np.asarray(prompt.point_labels, np.int32),
                    box=None if prompt.box is None else np.asarray(prompt.box, np.float32),
                )
        calls = capture.drain()
        if len(calls) != 1 or calls[0].batch_size != 1:
            raise RuntimeError(
                f"expected one decoder call per prompt, got {len(calls)}: sam2 internals changed"
            )
        self._prompt_calls[(prompt.frame_index, prompt.object_id)] = calls[0]

    def _apply_correction(self, prompt: CorrectionPrompt) -> None:
        """Track the prompt's frame for its object, decode again with the clicks and the tracked
        mask, and keep that output as a conditioning frame (merged by sam2's preflight)."""
        t = prompt.frame_index
        obj_idx = self._state["obj_id_to_idx"][prompt.object_id]
        out_dict = self._state["output_dict_per_obj"][obj_idx]
        point_inputs = self._point_inputs(prompt.points, prompt.point_labels, prompt.box)
        with TokenCapture(self._predictor, keep_logits=self.keep_candidates) as capture:
            tracked, _ = self._single_frame(out_dict, t, None, None)
            _ = capture.drain()  # the tracked pass only supplies the mask prompt
            current, _ = self._single_frame(out_dict, t, point_inputs, tracked["pred_masks"])
        calls = capture.drain()
        if len(calls) != 1 or calls[0].batch_size != 1:
            raise RuntimeError(
                f"expected one decoder call per correction, got {len(calls)}: sam2 internals changed"
            )
        self._state["point_inputs_per_obj"][obj_idx][t] = point_inputs
        self._state["mask_inputs_per_obj"][obj_idx].pop(t, None)
        self._state["temp_output_dict_per_obj"][obj_idx]["cond_frame_outputs"][t] = current
        self._prompt_calls[(t, prompt.object_id)] = calls[0]

    def _point_inputs(
        self, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        """sam2's ``point_inputs`` from pixel clicks at video resolution (a box first, as labels
        2 and 3, as ``add_new_points_or_box`` does)."""
        coords = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
        codes = np.zeros(0, np.int32) if labels is None else np.asarray(labels, np.int32)
        if box is not None:
            coords = np.concatenate([np.asarray(box, np.float32).reshape(2, 2), coords])
            codes = np.concatenate([np.array([2, 3], np.int32), codes])
        device = self._state["device"]
        scale = torch.tensor([self.frames.width, self.frames.height], dtype=torch.float32)
        return {
            "point_coords": (torch.as_tensor(coords)[None] / scale * self._predictor.image_size).to(device),
            "point_labels": torch.as_tensor(codes)[None].to(device),
        }

    def _single_frame(
        self,
        out_dict: dict[str, Any],
        frame_index: int,
        point_inputs: dict[str, torch.Tensor] | None,
        prev_mask_logits: torch.Tensor | None,
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """One object's decoder pass on a frame, memory-conditioned as in tracking, without
        running the memory encoder or storing the output."""
        device = self._state["device"]
        with torch.inference_mode():
            return self._predictor._run_single_frame_inference(
                inference_state=self._state,
                output_dict=out_dict,
                frame_idx=frame_index,
                batch_size=1,
                is_init_cond_frame=False,
                point_inputs=point_inputs,
                mask_inputs=None,
                reverse=False,
                run_mem_encoder=False,
                prev_sam_mask_logits=None if prev_mask_logits is None else prev_mask_logits.to(device),
            )

    def _check_corrections(self) -> None:
        """Every correction must follow a plain prompt of its object (which starts it)."""
        first: dict[int, int] = {}
        for p in sorted(self._prompts, key=lambda p: p.frame_index):
            if not isinstance(p, CorrectionPrompt):
                first.setdefault(p.object_id, p.frame_index)
        for p in self._prompts:
            if not isinstance(p, CorrectionPrompt):
                continue
            start = first.get(p.object_id)
            if start is None or p.frame_index <= start:
                got = (
                    "no plain prompt of the object" if start is None else f"its first prompt on frame {start}"
                )
                raise InputError(
                    f"object {p.object_id} frame {p.frame_index}: expected a correction on a frame after "
                    f"the object's first prompt, got {got}."
                )

    def close(self) -> None:
        """Stop the frame prefetching threads (they also stop when the session is collected)."""
        self._state["images"].close()

    def assembler(self, batch: int = 1) -> FrameAssembler:
        """A :class:`FrameAssembler` for this session's frames (one per propagation: it keeps the
        video features' state), taking up to ``batch`` frames per :meth:`FrameAssembler.flush`."""
        return FrameAssembler(
            len(self.object_ids),
            self.model.num_mask_tokens,
            self.model.token_dim,
            self.frames.height,
            self.frames.width,
            self._state["device"],
            upsample=self._upsample,
            keep_candidates=self.keep_candidates,
            batch=batch,
        )

    def _upsample(self, low_res: torch.Tensor) -> torch.Tensor:
        """``(N, 1, h, w)`` low-res logits -> ``(N, 1, H, W)`` at video resolution (sam2's resize,
        under the autocast sam2's own call in its propagation loop would have run under)."""
        with torch.inference_mode(), self._autocast():
            return self._predictor._get_orig_video_res_output(self._state, low_res)[1]

    def propagate(self) -> Iterator[FramePrediction]:
        """Propagate forward from the earliest prompt to the last frame, one host record per frame.

        :meth:`batches` one frame at a time, each assembled on the spot (two copies to the host
        per frame). Prompts on later frames are applied when propagation reaches them (sam2 then
        tracks from each object's own first prompt; later prompts of a tracked object become
        conditioning frames: a mask replaces its mask there, plain points or a box segment it
        there afresh, a :class:`CorrectionPrompt` corrects the tracked mask).
        """
        for batch in self.batches(1):
            with torch.inference_mode():
                records = batch.records()
            for prediction, _ in records:
                yield prediction

    def batches(self, batch: int = 1) -> Iterator[FrameBatch]:
        """Propagate as :meth:`propagate_device`, assembling the frames on this thread into
        :class:`FrameBatch` records of up to ``batch`` frames, the batches cut by
        :func:`~usam_video.engine.frames.flush_due` (the label loop, which assembles on another
        thread, cuts them the same way, so a caller scoring these batches gets the scores the
        loop stored, bit for bit). Score a batch with
        :meth:`~usam_video.scoring.Scorer.score_batch`, then take its host records with
        :meth:`FrameBatch.records`.
        """
        assembler = self.assembler(batch=batch)
        num_frames = len(self.frames)
        for frame in self.propagate_device():
            with torch.inference_mode():
                assembler.add(frame)  # in order: the video features' state
                if flush_due(frame.frame_index, assembler.pending, batch, num_frames):
                    ready = assembler.flush_batch()
                else:
                    ready = None
            if ready is not None:
                yield ready
        with torch.inference_mode():
            last = assembler.flush_batch()
        if last is not None:
            yield last

    def propagate_device(self) -> Iterator[DeviceFrame]:
        """Propagate as :meth:`propagate`, yielding each frame as sam2 left it on the device.

        Nothing is computed or copied per frame beyond sam2's tracking and the token hooks, not
        even sam2's resize of the masks to video resolution (:attr:`DeviceFrame.mask_logits` stay
        at the decoder's resolution): the consumer assembles the frame
        (:class:`FrameAssembler`), on another thread if it likes, while this generator goes on
        with the next frame. Frames must be assembled in order.
        """
        if not self._prompts:
            raise InputError("no prompts were added: nothing to propagate")
        self._check_corrections()
        all_ids = self.object_ids
        by_frame: dict[int, list[ObjectPrompt]] = defaultdict(list)
        for prompt in sorted(self._prompts, key=lambda p: (p.frame_index, all_ids.index(p.object_id))):
            by_frame[prompt.frame_index].append(prompt)
        starts = sorted(by_frame)
        num_frames = len(self.frames)
        # Autocast (bf16 on CUDA) encloses sam2's work only, never the `yield`: the consumer's
        # code (the fused heads, the policy) runs in float32 as on the CPU.
        with self.model.lock:
            for seg, start in enumerate(starts):
                end = starts[seg + 1] - 1 if seg + 1 < len(starts) else num_frames - 1
                with self._autocast():
                    for prompt in by_frame[start]:
                        self._apply(prompt)
                with TokenCapture(self._predictor, keep_logits=self.keep_candidates) as capture:
                    self._capture = capture
                    try:
                        stream = self._predictor.propagate_in_video(
                            self._state, start_frame_idx=start, max_frame_num_to_track=end - start
                        )
                        while True:
                            # sam2 yields its low-res logits: the assembler resizes them to
                            # video resolution, on the consumer's thread if it has one.
                            with self._autocast(), self._predictor.low_res_output():
                                step = next(stream, None)
                                if step is None:
                                    break
                                frame_idx, _, low_res_masks = step
                                record = self._device_frame(
                                    int(frame_idx), all_ids, low_res_masks, capture.drain()
                                )
                            yield record
                            # Pruned after the consumer is done with the frame, so that
                            # probe_points can still read this frame's memory context.
                            if self.prune:
                                self._prune(int(frame_idx) + 1)
                    finally:
                        self._capture = None

    def probe_points(
        self, frame_index: int, object_id: int, points: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, DecoderCall]:
        """What SAM 2 would output on a tracked frame if it also got these clicks, without
        changing the tracking of later frames.

        Call it while :meth:`propagate` is suspended on ``frame_index`` (right after that frame's
        record was yielded). The decoder sees the same memory-conditioned features as the
        tracked pass, the tracked mask as its mask prompt (as sam2 does for correction clicks)
        and the points (``float32`` ``(N, 2)`` pixel ``(x, y)``, labels ``(N,)`` 1/0).

        Returns:
            ``bool`` ``(H, W)`` mask at video resolution and the decoder call (tokens, IoUs).
        """
        if self._capture is None:
            raise InputError("probe_points: expected a propagation suspended on the frame, found none.")
        obj_idx = self._state["obj_id_to_idx"].get(object_id)
        if obj_idx is None:
            raise InputError(f"probe_points: object {object_id} is not tracked.")
        out_dict = self._state["output_dict_per_obj"][obj_idx]
        current = out_dict["non_cond_frame_outputs"].get(frame_index) or out_dict["cond_frame_outputs"].get(
            frame_index
        )
        if current is None:
            raise InputError(f"probe_points: object {object_id} has no output on frame {frame_index} yet.")
        point_inputs = self._point_inputs(points, labels)
        before = len(self._capture.calls)
        _, pred_masks = self._single_frame(out_dict, frame_index, point_inputs, current["pred_masks"])
        video_res = self._upsample(pred_masks)
        if len(self._capture.calls) != before + 1:
            raise RuntimeError("probe_points: expected one decoder call: sam2 internals changed")
        call = self._capture.calls.pop().to_host()
        return (video_res[0, 0] > 0.0).cpu().numpy(), call

    def _prune(self, next_frame: int) -> None:
        oldest = oldest_frame_needed(self._predictor, next_frame, len(self.frames))
        for out in self._state["output_dict_per_obj"].values():
            non_cond = out["non_cond_frame_outputs"]
            for t in [t for t in non_cond if t < oldest]:
                del non_cond[t]
        for key in [k for k in self._prompt_calls if k[0] < next_frame]:
            del self._prompt_calls[key]

    def _device_frame(
        self,
        frame_idx: int,
        all_ids: tuple[int, ...],
        low_res_masks: torch.Tensor,
        calls: list[DeviceCall],
    ) -> DeviceFrame:
        # sam2 1.1.0 runs the decoder once per object (batch 1) on every frame that is not a
        # conditioning frame of that object, in object-index order; conditioning frames reuse
        # the stored output of the prompt, whose tokens were captured in _apply. Only host
        # bookkeeping here: which call belongs to which object.
        tracked_ids = tuple(int(i) for i in self._state["obj_ids"])
        queue = [(call, row) for call in calls for row in range(call.batch_size)]
        per_obj: list[tuple[DeviceCall, int]] = []
        prompted: list[bool] = []
        cond: list[bool] = []
        ptrs: list[torch.Tensor | None] = []
        for obj_id in tracked_ids:
            prompt_call = self._prompt_calls.get((frame_idx, obj_id))
            if prompt_call is not None:
                per_obj.append((prompt_call, 0))
            elif queue:
                per_obj.append(queue.pop(0))
            else:
                raise RuntimeError(f"frame {frame_idx}: no decoder output captured for object {obj_id}")
            prompted.append(prompt_call is not None)
            out_dict = self._state["output_dict_per_obj"][self._state["obj_id_to_idx"][obj_id]]
            out = out_dict["cond_frame_outputs"].get(frame_idx)
            cond.append(out is not None)
            if out is None:
                out = out_dict["non_cond_frame_outputs"].get(frame_idx)
            ptrs.append(out.get("obj_ptr") if out is not None else None)
        if queue:
            raise RuntimeError(
                f"frame {frame_idx}: {len(queue)} unexpected decoder outputs: sam2 internals changed"
            )
        return DeviceFrame(
            frame_index=frame_idx,
            object_ids=all_ids,
            rows=tuple(all_ids.index(obj_id) for obj_id in tracked_ids),
            calls=tuple(per_obj),
            is_prompt=tuple(prompted),
            is_cond=tuple(cond),
            obj_ptrs=tuple(ptrs),
            mask_logits=low_res_masks,
            image=self._frame_image(frame_idx),
        )

    def _frame_image(self, frame_idx: int) -> torch.Tensor:
        """``float32`` ``(1, 3, S, S)``: the frame as sam2's input, normalised, on the device, for
        the colour feature. sam2 caches the image of the frame it last encoded (this one, when
        the frame is yielded): a reference, no copy. A frame read from a
        :class:`~usam_video.engine.predictor.FeatureCache` has a zero-stride stand-in there
        instead (the cache keeps no image): then the frame is read again (decoded and resized
        on the prefetch threads, as sam2 would)."""
        image, _ = self._state["cached_features"].get(frame_idx, (None, None))
        if image is None or image.stride(-1) == 0:
            image = self._state["images"][frame_idx].to(self._state["device"]).float()[None]
        return image
