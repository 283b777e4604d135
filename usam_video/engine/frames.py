"""A propagated frame on the device, and its assembly into a host record with two copies.

:meth:`~usam_video.engine.session.PropagationSession.propagate_device` yields a
:class:`DeviceFrame`: references to what sam2 and the token hooks left on the engine's device,
nothing computed, nothing copied, so the loop that drives the model returns to sam2 at once.
:class:`FrameAssembler` then (on any thread, in frame order) stacks the per-object outputs into
``(O, ...)`` tensors, computes the video features of a few frames at once (a
:class:`FrameBatch` of :class:`FrameTensors`, still on the device: the record the scorer takes),
and makes each frame's host record (:class:`~usam_video.types.FramePrediction`) with exactly two copies:
one packed ``float32`` block of every per-object number (plus any extra ``(O, ...)`` tensors a
consumer computed on the device, e.g. the USAM heads' scores) and one ``bool`` block of masks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usam_video.engine.capture import DeviceCall, mask_entropy, stability_score
from usam_video.engine.features import VideoFeatureTracker, colour_thumbnail
from usam_video.engine.transfer import copy_to_host
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.types import FramePrediction

__all__ = ["DeviceFrame", "FrameAssembler", "FrameBatch", "FrameTensors", "flush_due"]


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
        mask_logits: ``(N, 1, h, w)`` mask logits as sam2's decoder output them, on the device,
            not yet resized to video resolution (the assembler does that, off SAM 2's thread).
        image: the frame as sam2's input, ``float32`` ``(1, 3, S, S)`` normalised, on the device
            (what sam2 encoded), for the colour feature; None: ``colour_to_cond`` is NaN.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    rows: tuple[int, ...]
    calls: tuple[tuple[DeviceCall, int], ...]
    is_prompt: tuple[bool, ...]
    is_cond: tuple[bool, ...]
    obj_ptrs: tuple[torch.Tensor | None, ...]
    mask_logits: torch.Tensor
    image: torch.Tensor | None = None


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


@dataclass(frozen=True, eq=False)
class FrameBatch:
    """Consecutive frames assembled together on the engine's device: the one per-frame record
    every propagation goes through, the scorer's input
    (:meth:`~usam_video.scoring.Scorer.score_batch`) and, through :meth:`records`, the frames'
    host records.

    Attributes:
        frames: each frame's :class:`FrameTensors`, in frame order (``n`` frames).
        inputs: the scorer's per-object inputs, the ``n`` frames' rows stacked: ``iou_tokens``
            ``float32`` ``(n*O, D)``, ``mask_tokens`` ``(n*O, K, D)``, ``candidate_ious``
            ``(n*O, K)``, ``chosen``, ``object_score_logits``, ``entropy``, ``stability``
            ``(n*O,)`` (``chosen`` -1 where untracked).
        video_features: ``float32`` ``(n*O, F)``.
        assembler: the assembler that made it (it makes the host records).
    """

    frames: tuple[FrameTensors, ...]
    inputs: dict[str, torch.Tensor]
    video_features: torch.Tensor
    assembler: FrameAssembler

    def rows(self, i: int) -> slice:
        """The rows of frame ``i`` (0-based within the batch) in the stacked inputs."""
        o = self.assembler.num_objects
        return slice(i * o, (i + 1) * o)

    def records(self, extras: Sequence[torch.Tensor] = ()) -> list[tuple[FramePrediction, list[np.ndarray]]]:
        """Each frame's host record and its rows of ``extras`` (``(n*O, ...)`` tensors on the
        device, e.g. the scorer's outputs), copied with the record (two copies per frame)."""
        return [
            self.assembler.prediction(t, extras=[e[self.rows(i)] for e in extras])
            for i, t in enumerate(self.frames)
        ]


def flush_due(frame_index: int, pending: int, batch: int, num_frames: int) -> bool:
    """Whether the frames held (``pending`` of at most ``batch``) are assembled once frame
    ``frame_index`` of ``num_frames`` is added: when the batch is full, or at the last frame but
    one, so that a consumer on another thread finishes them while SAM 2 works on the last frame
    (what is left once propagation has ended, time no one else overlaps, is that one frame).
    The end of propagation flushes whatever is left. Every propagation follows this rule, so
    every caller scores the same frames together and gets the same floating-point results."""
    return pending >= batch or frame_index == num_frames - 2


@dataclass(frozen=True, eq=False)
class _Pending:
    """A frame taken by :meth:`FrameAssembler.add`, waiting for its batch's video features."""

    frame_index: int
    object_ids: tuple[int, ...]
    tracked: np.ndarray
    is_prompt: np.ndarray
    is_cond: np.ndarray
    numbers: torch.Tensor
    masks: torch.Tensor
    ptrs: list[torch.Tensor | None]
    candidate_masks: torch.Tensor | None
    candidate_valid: torch.Tensor | None
    thumbnail: torch.Tensor | None  # float32 (3, G, G): colour_thumbnail of the frame's image


def _mask_stats(calls: tuple[tuple[DeviceCall, int], ...]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Entropy and stability (``float32`` ``(B,)`` each) of every distinct decoder call of a
    frame, keyed by ``id(call)``: computed for all of them in one batch (sam2 1.1.0 makes one
    call per object, so one pass instead of one per object)."""
    distinct = list({id(call): call for call, _ in calls}.values())
    if len(distinct) == 1:
        return {id(distinct[0]): (distinct[0].entropy, distinct[0].stability)}
    logits = torch.cat([call.chosen_logits for call in distinct])
    sizes = [call.batch_size for call in distinct]
    entropy = mask_entropy(logits).split(sizes)
    stability = stability_score(logits).split(sizes)
    return {id(call): (e, st) for call, e, st in zip(distinct, entropy, stability, strict=True)}


def _float32(t: torch.Tensor) -> torch.Tensor:
    # A dtype check costs no device operation (each one is a kernel launch on a GPU).
    return t if t.dtype == torch.float32 else t.float()


class FrameAssembler:
    """Turns :class:`DeviceFrame` records into :class:`FrameTensors` and host records.

    Keeps the video-feature state, so frames must come in order, one assembler per session.
    Frames go one at a time (:meth:`tensors`) or a batch at a time (:meth:`add` each frame, then
    :meth:`flush`): a batch computes its video features in one pass, with a fraction of the
    device operations per frame.

    Args:
        num_objects: ``O``; num_mask_tokens: ``K``; token_dim: ``D``.
        device: the engine's device.
        upsample: takes ``(N, 1, h, w)`` low-res logits to ``(N, 1, H, W)`` at video resolution
            (sam2's own resizing, with its non-overlap constraint when the model sets it): for
            every frame's masks (:attr:`DeviceFrame.mask_logits`) and the candidates.
        batch: the most frames :meth:`add` takes between two :meth:`flush` calls (the masks of
            a batch share one ``bool`` ``(batch, O, H, W)`` block).
    """

    def __init__(
        self,
        num_objects: int,
        num_mask_tokens: int,
        token_dim: int,
        height: int,
        width: int,
        device: torch.device,
        upsample: Callable[[torch.Tensor], torch.Tensor],
        keep_candidates: bool = False,
        batch: int = 1,
    ):
        if batch < 1:
            raise ValueError(f"batch: expected at least 1 frame, got {batch}")
        self.num_objects, self.k, self.d = num_objects, num_mask_tokens, token_dim
        self.batch = batch
        self._pending: list[_Pending] = []
        self._block: torch.Tensor | None = None
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
        work only: no copy to the host, no wait): :meth:`add` then :meth:`flush`."""
        if self._pending:
            raise RuntimeError(f"tensors: {len(self._pending)} added frame(s) not flushed yet")
        self.add(frame)
        return self.flush()[0]

    @property
    def pending(self) -> int:
        """Frames added and not flushed yet."""
        return len(self._pending)

    def add(self, frame: DeviceFrame) -> None:
        """Take one frame (in frame order): its per-object numbers are packed and its masks
        thresholded now, into the batch's mask block, so sam2's logits can go; the video features
        wait for :meth:`flush`. At most ``batch`` frames between flushes."""
        o = self.num_objects
        if len(self._pending) >= self.batch:
            raise RuntimeError(f"add: expected at most {self.batch} frame(s) between flushes")
        if not self._pending:
            # A fresh block per batch: the FrameTensors of the last one still view theirs.
            self._block = torch.empty(
                (self.batch, o, self.height, self.width), dtype=torch.bool, device=self.device
            )
        masks = self._block[len(self._pending)]
        logits = self.upsample(frame.mask_logits)[:, 0]  # sam2's resize, here instead of in sam2
        if frame.rows == tuple(range(o)):
            torch.gt(logits, 0.0, out=masks)
        else:
            masks.zero_()
            for i, row in enumerate(frame.rows):
                torch.gt(logits[i], 0.0, out=masks[row])
        # One (B, P) block per decoder call, then one row per object in record order. The hooks
        # keep float32 already (DeviceCall): only the chosen index changes type.
        stats = _mask_stats(frame.calls)
        packed: dict[int, torch.Tensor] = {}
        for call, _ in frame.calls:
            if id(call) not in packed:
                entropy, stability = stats[id(call)]
                scalars = [call.chosen, call.object_score_logits, entropy, stability]
                packed[id(call)] = torch.cat(
                    [
                        _float32(call.iou_tokens),
                        _float32(call.mask_tokens).flatten(1),
                        _float32(call.candidate_ious),
                        torch.stack([_float32(x) for x in scalars], dim=1),
                    ],
                    dim=1,
                )
        if (
            frame.rows == tuple(range(o))
            and len(packed) == 1
            and all(r == i for i, (_, r) in enumerate(frame.calls))
        ):
            numbers = next(iter(packed.values()))  # one call for every object, in order
        else:
            by_row = {
                row: packed[id(call)][r : r + 1]
                for row, (call, r) in zip(frame.rows, frame.calls, strict=True)
            }
            numbers = torch.cat([by_row.get(i, self._nan_row) for i in range(o)], dim=0)
        tracked = np.zeros(o, bool)
        is_prompt = np.zeros(o, bool)
        is_cond = np.zeros(o, bool)
        tracked[list(frame.rows)] = True
        is_prompt[list(frame.rows)] = frame.is_prompt
        is_cond[list(frame.rows)] = frame.is_cond
        ptrs: list[torch.Tensor | None] = [None] * o
        for row, ptr in zip(frame.rows, frame.obj_ptrs, strict=True):
            ptrs[row] = ptr
        candidate_masks = candidate_valid = None
        if self.keep_candidates:
            candidate_masks, candidate_valid = self._candidates(frame)
        # Shrunk now, so that the batch holds a small grid instead of sam2's image.
        thumbnail = None if frame.image is None else colour_thumbnail(frame.image)
        self._pending.append(
            _Pending(frame.frame_index, frame.object_ids, tracked, is_prompt, is_cond, numbers, masks,
                     ptrs, candidate_masks, candidate_valid, thumbnail)
        )  # fmt: skip

    def flush(self) -> list[FrameTensors]:
        """The :class:`FrameTensors` of every frame added since the last flush, in order, with
        their video features computed in one batch (device work only: no copy, no wait)."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        n = len(pending)
        numbers = torch.stack([p.numbers for p in pending])  # (n, O, P)
        logit = numbers[:, :, self._slices["object_score_logits"].start]
        thumbnails = [p.thumbnail for p in pending]
        features = self.features.update_many(
            [p.frame_index for p in pending],
            self._block[:n],
            np.stack([p.tracked for p in pending]),
            np.stack([p.is_cond for p in pending]),
            logit,
            [p.ptrs for p in pending],
            # A producer gives every frame's image or none (then the colour reads NaN).
            torch.stack(thumbnails) if all(t is not None for t in thumbnails) else None,  # type: ignore[arg-type]
        )
        tensors = []
        for p, f in zip(pending, features.unbind(0), strict=True):
            tensors.append(
                FrameTensors(
                    p.frame_index,
                    p.object_ids,
                    p.tracked,
                    p.is_prompt,
                    p.numbers,
                    f,
                    p.masks,
                    p.candidate_masks,
                    p.candidate_valid,
                )  # fmt: skip
            )
        return tensors

    def _candidates(self, frame: DeviceFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """Every token's mask at video resolution ``bool`` ``(O, K, H, W)`` and which tokens
        produced one ``bool`` ``(O, K)``."""
        o, k = self.num_objects, self.k
        masks = torch.zeros((o, k, self.height, self.width), dtype=torch.bool, device=self.device)
        valid = torch.zeros((o, k), dtype=torch.bool, device=self.device)
        for row, (call, r) in zip(frame.rows, frame.calls, strict=True):
            if call.candidate_logits is None:
                continue
            logits = call.candidate_logits[r]  # (K, h, w), NaN where the token gave no mask
            ok = ~torch.isnan(logits.flatten(1)[:, 0])
            video = self.upsample(logits[:, None])
            masks[row] = (video[:, 0] > 0.0) & ok[:, None, None]
            valid[row] = ok
        return masks, valid

    def flush_batch(self) -> FrameBatch | None:
        """:meth:`flush` as one :class:`FrameBatch` (None when no frame is held)."""
        frames = self.flush()
        if not frames:
            return None
        # split's blocks are score_tensors' keyword arguments; the frames' rows are stacked,
        # so every row is scored as it would be alone.
        parts = [self.split(t.numbers) for t in frames]
        inputs = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}  # type: ignore[misc]
        features = torch.cat([t.video_features for t in frames])
        return FrameBatch(tuple(frames), inputs, features, self)

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
