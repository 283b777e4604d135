"""Typed records passed between the layers of usam-video.

Frozen dataclasses over numpy arrays: no torch here, so readers, the store and the CLI can
use them without importing the model stack. Every array field states its shape and dtype;
``O`` is the number of objects, ``K`` the number of mask-decoder output tokens (4 for SAM 2:
token 0 is the single-mask output, tokens 1..3 the multimask candidates), ``D`` the token
width (256 for every SAM 2 size).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = [
    "VideoRef",
    "ObjectPrompt",
    "FrameAnnotation",
    "FramePrediction",
    "FrameScores",
    "Status",
    "MaskSource",
    "MaskUpdate",
    "Decision",
    "QueueEntry",
    "VideoResult",
    "TrainingSamples",
]


@dataclass(frozen=True)
class VideoRef:
    """One video of a dataset: its identity and geometry (no pixels)."""

    dataset: str
    video_id: str
    num_frames: int
    height: int
    width: int
    fps: float | None = None


@dataclass(frozen=True, eq=False)
class ObjectPrompt:
    """A prompt that starts (or corrects) one object on one frame: a mask, or points and/or a box.

    Attributes:
        object_id: dataset object id (1..254 for palette datasets).
        frame_index: 0-based frame the prompt sits on.
        mask: ``bool`` ``(H, W)`` at video resolution, or None.
        points: ``float32`` ``(N, 2)`` pixel ``(x, y)`` at video resolution, or None.
        point_labels: ``int32`` ``(N,)``: 1 positive, 0 negative (required with ``points``).
        box: ``float32`` ``(4,)`` pixel ``(x0, y0, x1, y1)`` at video resolution, or None.
    """

    object_id: int
    frame_index: int
    mask: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mask is None and self.points is None and self.box is None:
            raise ValueError(
                f"object {self.object_id} frame {self.frame_index}: a prompt needs a mask, points or a box"
            )
        if self.mask is not None and (self.points is not None or self.box is not None):
            raise ValueError(
                f"object {self.object_id} frame {self.frame_index}: a mask excludes points and box"
            )
        if (self.points is None) != (self.point_labels is None):
            raise ValueError(f"object {self.object_id} frame {self.frame_index}: points need point_labels")


@dataclass(frozen=True, eq=False)
class FrameAnnotation:
    """Ground truth of one annotated frame; objects may overlap (SA-V masklets do).

    Attributes:
        object_ids: the ``O`` objects annotated on this frame (absent objects may be left out
            or given an empty mask).
        masks: ``bool`` ``(O, H, W)``.
        void: ``bool`` ``(H, W)`` pixels to ignore (DAVIS 255), or None.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    masks: np.ndarray
    void: np.ndarray | None = None

    def mask_of(self, object_id: int) -> np.ndarray:
        """``bool`` ``(H, W)``; all False for an object not annotated on this frame."""
        if object_id in self.object_ids:
            return self.masks[self.object_ids.index(object_id)]
        return np.zeros(self.masks.shape[1:], dtype=bool)


@dataclass(frozen=True, eq=False)
class FramePrediction:
    """What SAM 2 produced for one frame, for every object tracked so far.

    Attributes:
        frame_index: 0-based frame index in the video.
        object_ids: the ``O`` object ids, in the order of every array's first axis.
        masks: ``bool`` ``(O, H, W)`` at video resolution (logits > 0).
        sam_iou: ``float32`` ``(O,)``: SAM's predicted IoU of the chosen mask (SamScore).
        candidate_ious: ``float32`` ``(O, K)``: predicted IoU of every decoder token.
        chosen_candidate: ``int64`` ``(O,)``: index in ``0..K-1`` of the token whose mask
            SAM 2 output.
        object_score_logits: ``float32`` ``(O,)``: SAM 2's object-presence logit.
        iou_tokens: ``float32`` ``(O, D)``: the IoU token after the decoder's transformer.
        mask_tokens: ``float32`` ``(O, K, D)``: the mask tokens after the transformer.
        is_prompt: ``bool`` ``(O,)``: the object's mask on this frame is its prompt.
        entropy: ``float32`` ``(O,)``: H_std of the chosen mask's probabilities (uncertainty).
        stability: ``float32`` ``(O,)``: SAM's stability score of the chosen mask (confidence).
        tracked: ``bool`` ``(O,)``: the object is tracked on this frame. False before its first
            prompt: then its mask is empty, its tokens and IoUs NaN and its candidate -1.
        candidate_masks: ``bool`` ``(O, K, H, W)`` every token's mask at video resolution, or
            None unless the session keeps candidates. A token the decoder did not run for
            output (token 0 when tracking with multimask output) has an empty mask and
            ``candidate_valid`` False.
        candidate_valid: ``bool`` ``(O, K)`` or None.
        video_features: ``float32`` ``(O, F)``: the video features of every object
            (``usam_video.score_registry.VIDEO_FEATURES`` in column order; NaN rows for
            untracked objects), or None when the producer computed none.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    masks: np.ndarray
    sam_iou: np.ndarray
    candidate_ious: np.ndarray
    chosen_candidate: np.ndarray
    object_score_logits: np.ndarray
    iou_tokens: np.ndarray
    mask_tokens: np.ndarray
    is_prompt: np.ndarray
    entropy: np.ndarray
    stability: np.ndarray
    tracked: np.ndarray
    candidate_masks: np.ndarray | None = None
    candidate_valid: np.ndarray | None = None
    video_features: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class FrameScores:
    """Every score of one frame: ``values[o, s]`` is score ``names[s]`` of object ``o``.

    Attributes:
        values: ``float32`` ``(O, S)``: scores of the mask SAM 2 chose.
        candidate_names: the ``C`` per-candidate score names.
        candidate_values: ``float32`` ``(O, K, C)``: scores of every decoder token's mask.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    names: tuple[str, ...]
    values: np.ndarray
    candidate_names: tuple[str, ...] = ()
    candidate_values: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        """``float32`` ``(O,)``: one score for every object."""
        return self.values[:, self.names.index(name)]


class Status(enum.IntEnum):
    """State of one frame-object in the store (stored as ``uint8``)."""

    PENDING = 0  # not written yet
    ACCEPTED = 1
    QUEUED_REFINE = 2  # queued for automatic refinement
    QUEUED_HUMAN = 3  # queued for human review
    REFINED = 4
    CORRECTED = 5
    NOT_STARTED = 6  # the object enters later in the video: no mask, no scores

    @property
    def label(self) -> str:
        return self.name.lower()


class MaskSource(enum.IntEnum):
    """Which step produced a frame-object's stored mask (stored as ``uint8``)."""

    PROPAGATED = 0  # SAM 2 tracking
    PROMPT = 1  # the dataset's own prompt mask (e.g. DAVIS first-frame annotation)
    TASK = 2  # another candidate of the same decoder pass (task refinement)
    MODEL = 3  # a larger SAM 2 (model refinement)
    HUMAN = 4  # a human correction

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, eq=False)
class MaskUpdate:
    """A replacement of one frame-object's mask (a refinement or a correction).

    Attributes:
        mask: ``bool`` ``(H, W)`` at video resolution.
        scores: ``float32`` ``(S,)`` new scores of the mask, or None to keep the stored ones.
    """

    video_id: str
    frame_index: int
    object_id: int
    mask: np.ndarray
    source: MaskSource
    status: Status
    reason: str = ""
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class Decision:
    """A policy's verdict on one frame-object; ``reason`` is empty when accepted."""

    status: Status
    reason: str = ""


@dataclass(frozen=True)
class QueueEntry:
    """One queued frame-object, as read back from the store."""

    video_id: str
    frame_index: int
    object_id: int
    status: Status
    reason: str
    scores: Mapping[str, float] = field(default_factory=dict)
    plan: str = ""  # why the review planner picked it ("onset of a low run of 14 frames ...")
    plan_round: int | None = None  # the review round of the planner's pick; None: no pick


@dataclass(frozen=True)
class VideoResult:
    """Outcome of labelling one video (what a flow's summary table shows)."""

    video_id: str
    outcome: str  # "labelled", "skipped" (already complete) or "failed"
    frames: int = 0
    objects: int = 0
    accepted: int = 0
    queued_refine: int = 0
    queued_human: int = 0
    refined: int = 0
    corrected: int = 0
    mean_predicted_iou: float = float("nan")
    min_predicted_iou: float = float("nan")
    queued_by_reason: str = ""  # "reason: count, ..." (a flat string keeps artifact tables flat)
    seconds: float = 0.0
    error: str = ""

    def summary(self) -> VideoResult:
        """The plain row (what a flow's table shows and returns): what a subclass carries beside
        it (a frame table, a digest) left behind."""
        return VideoResult(**{f.name: getattr(self, f.name) for f in fields(VideoResult)})


@dataclass(frozen=True, eq=False)
class TrainingSamples:
    """Heads-training records of annotated frame-objects (``N`` rows) of one or more videos.

    Attributes:
        video_ids: ``N`` video ids.
        frame_index: ``int32`` ``(N,)``; object_id: ``int32`` ``(N,)``.
        iou_tokens: ``float32`` ``(N, D)``; mask_tokens: ``float32`` ``(N, K, D)``.
        chosen: ``int8`` ``(N,)``: the token SAM 2 chose.
        candidate_iou: ``float32`` ``(N, K)``: true IoU of every token's mask (NaN: no mask).
        sam_iou: ``float32`` ``(N,)``: SamScore, SAM 2's predicted IoU of the chosen token (the
            decoder's IoU head); NaN for rows recorded before it was kept.
        targets: name -> ``float32`` ``(N,)`` (NaN where a target is undefined for a row).
        inputs: ``float32`` ``(N, F)``: the video heads' extra inputs of every row (the
            baseline scores and video features, named by ``input_names``), or None for
            records made before they were kept.
    """

    video_ids: tuple[str, ...]
    frame_index: np.ndarray
    object_id: np.ndarray
    iou_tokens: np.ndarray
    mask_tokens: np.ndarray
    chosen: np.ndarray
    candidate_iou: np.ndarray
    sam_iou: np.ndarray
    targets: Mapping[str, np.ndarray]
    inputs: np.ndarray | None = None
    input_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.video_ids)

    def features(self) -> np.ndarray:
        """``float32`` ``(N, 2D)``: IoU token concatenated with the chosen mask token."""
        rows = np.arange(len(self))
        return np.concatenate([self.iou_tokens, self.mask_tokens[rows, self.chosen.astype(np.int64)]], axis=1)
