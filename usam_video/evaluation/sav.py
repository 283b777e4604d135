"""J&F as the SA-V benchmark computes it (SAM 2 ``sav_dataset/sav_evaluator.py``).

Reimplementation of ``sav_dataset/utils/sav_benchmark.py`` (itself adapted from
``hkchengrex/vos-benchmark``) for the SA-V folder layout, in which every object has its own
binary mask per annotated frame (SA-V annotates every 4th video frame, "6 fps"):

* Per object, the annotated frames are evaluated in order; by default the first and the
  last annotated frame are skipped (``--do_not_skip_first_and_last_frame`` turns that off).
* An object is scored from the first evaluated frame on which it is non-empty in the ground
  truth OR in the prediction; frames before that contribute nothing.
* J = |P∩G| / |P∪G| (1 when both are empty); F is the DAVIS boundary F (same disk radius
  ``ceil(0.008 * diagonal)``, same ``seg2bmap``). There is no void handling.
* An object is reported only if it is non-empty in the ground truth on at least one
  evaluated frame (the reference would fail an assertion otherwise; here it is listed in
  ``SavVideoResult.unscored``). Per-object J and F are frame means x100.
* Global J and F are means over all reported objects of all videos; J&F = (J + F) / 2.
* Prediction objects that have no ground-truth object are ignored, as the reference only
  walks the ground-truth folders.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError
from usam_video.evaluation.jf import DEFAULT_BOUND_TH, db_eval_iou, f_measure

__all__ = [
    "SavObjectResult",
    "SavVideoResult",
    "SavReport",
    "evaluate_sav_object",
    "evaluate_sav_video",
    "evaluate_sav",
    "summarize_sav",
]


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class SavObjectResult:
    """SA-V scores of one object.

    ``j`` and ``f`` are means x100 over the scored frames; ``j_per_frame`` and
    ``f_per_frame`` are the raw per-frame values in [0, 1] of those frames, and
    ``first_frame`` is the frame index (from ``frame_indices``) of the first scored frame.
    """

    video: str
    object_id: int
    j: float
    f: float
    first_frame: int
    j_per_frame: tuple[float, ...]
    f_per_frame: tuple[float, ...]

    @property
    def jf(self) -> float:
        """(J + F) / 2, x100."""
        return (self.j + self.f) / 2.0

    @property
    def n_frames(self) -> int:
        """Number of frames that were scored for this object."""
        return len(self.j_per_frame)

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict; per-frame values only when ``per_frame``."""
        out: dict[str, Any] = {
            "video": self.video,
            "object_id": self.object_id,
            "J&F": _json_float(self.jf),
            "J": _json_float(self.j),
            "F": _json_float(self.f),
            "first_frame": self.first_frame,
            "n_frames": self.n_frames,
        }
        if per_frame:
            out["J_per_frame"] = list(self.j_per_frame)
            out["F_per_frame"] = list(self.f_per_frame)
        return out


@dataclass(frozen=True)
class SavVideoResult:
    """Results of one video: ``frames`` are the evaluated frame indices, ``unscored`` the
    ground-truth objects that are empty on every evaluated frame (not reported)."""

    video: str
    frames: tuple[int, ...]
    objects: tuple[SavObjectResult, ...]
    unscored: tuple[int, ...]

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict of the video and its objects."""
        return {
            "video": self.video,
            "frames": list(self.frames),
            "objects": [obj.as_dict(per_frame) for obj in self.objects],
            "unscored": list(self.unscored),
        }


@dataclass(frozen=True)
class SavReport:
    """Global SA-V scores (x100): means over all reported objects of all videos."""

    jf: float
    j: float
    f: float
    videos: tuple[SavVideoResult, ...]

    @property
    def objects(self) -> tuple[SavObjectResult, ...]:
        """All reported objects, video by video."""
        return tuple(obj for video in self.videos for obj in video.objects)

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return {
            "J&F": _json_float(self.jf),
            "J": _json_float(self.j),
            "F": _json_float(self.f),
            "videos": [video.as_dict(per_frame) for video in self.videos],
        }


def _binary_stack(array: npt.ArrayLike, where: str) -> npt.NDArray[np.bool_]:
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise EvaluationError(f"{where}: expected (T, H, W) masks, got shape {arr.shape}.")
    # The reference binarises each PNG with ``> 0``.
    return arr > 0 if arr.dtype != np.bool_ else arr


def evaluate_sav_object(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    video: str = "",
    object_id: int = 0,
    frame_indices: Sequence[int] | None = None,
    skip_first_and_last: bool = True,
    bound_th: float = DEFAULT_BOUND_TH,
) -> SavObjectResult | None:
    """Score one object with the SA-V protocol.

    Args:
        gt: bool ``(T, H, W)`` ground-truth masks on the T annotated frames (non-zero of
            another dtype counts as object).
        pred: bool ``(T, H, W)`` predicted masks on the same frames.
        video, object_id: names for the result and error messages.
        frame_indices: the video frame index of each of the T annotated frames (e.g.
            ``0, 4, 8, ...``); defaults to ``0..T-1``. Only used for reporting.
        skip_first_and_last: leave the first and last annotated frames out.
        bound_th: boundary tolerance (see :func:`usam_video.evaluation.jf.boundary_radius`).

    Returns:
        The object's scores, or None when the object is empty in the ground truth on every
        evaluated frame (the benchmark does not report such an object).
    """
    where = f"{video or 'video'} object {object_id}"
    gt_arr = _binary_stack(gt, f"{where} ground truth")
    pred_arr = _binary_stack(pred, f"{where} prediction")
    if gt_arr.shape != pred_arr.shape:
        raise EvaluationError(
            f"{where}: expected predicted masks of shape {gt_arr.shape} like the ground "
            f"truth, got {pred_arr.shape}."
        )
    n_frames = gt_arr.shape[0]
    indices = list(range(n_frames)) if frame_indices is None else [int(i) for i in frame_indices]
    if len(indices) != n_frames:
        raise EvaluationError(
            f"{where}: expected {n_frames} frame indices (one per annotated frame), got {len(indices)}."
        )
    positions = list(range(1, n_frames - 1)) if skip_first_and_last else list(range(n_frames))

    seen_in_gt = False
    started = False
    first_frame = -1
    j_values: list[float] = []
    f_values: list[float] = []
    for pos in positions:
        gt_frame = gt_arr[pos]
        pred_frame = pred_arr[pos]
        in_gt = bool(gt_frame.any())
        seen_in_gt = seen_in_gt or in_gt
        # The reference keeps the union of ids seen so far in gt or prediction, so an
        # object joins on its first non-empty frame and stays for the rest of the video.
        if not started and (in_gt or bool(pred_frame.any())):
            started = True
            first_frame = indices[pos]
        if not started:
            continue
        j_values.append(float(db_eval_iou(gt_frame, pred_frame)))
        f_values.append(f_measure(pred_frame, gt_frame, None, bound_th))
    if not seen_in_gt:
        return None
    return SavObjectResult(
        video=video,
        object_id=int(object_id),
        j=float(np.mean(j_values)) * 100.0,
        f=float(np.mean(f_values)) * 100.0,
        first_frame=first_frame,
        j_per_frame=tuple(j_values),
        f_per_frame=tuple(f_values),
    )


def evaluate_sav_video(
    gt: Mapping[int, npt.ArrayLike],
    pred: Mapping[int, npt.ArrayLike],
    *,
    video: str = "",
    frame_indices: Sequence[int] | None = None,
    skip_first_and_last: bool = True,
    bound_th: float = DEFAULT_BOUND_TH,
) -> SavVideoResult:
    """Score every ground-truth object of one video with the SA-V protocol.

    Args:
        gt: ``{object_id: bool (T, H, W)}`` ground-truth masks on the T annotated frames.
        pred: ``{object_id: bool (T, H, W)}`` predictions on the same frames; extra objects
            are ignored.
        video, frame_indices, skip_first_and_last, bound_th: see
            :func:`evaluate_sav_object`.

    Raises:
        EvaluationError: a ground-truth object has no prediction, or shapes differ.
    """
    name = video or "video"
    missing = sorted(set(gt) - set(pred))
    if missing:
        raise EvaluationError(
            f"{name}: expected a prediction for every ground-truth object {sorted(gt)}, "
            f"found none for {missing}."
        )
    n_frames = {np.shape(gt[obj_id])[0] for obj_id in gt if np.ndim(gt[obj_id]) == 3}
    if len(n_frames) > 1:
        raise EvaluationError(
            f"{name}: expected every ground-truth object on the same annotated frames, got "
            f"frame counts {sorted(n_frames)}."
        )
    frames: tuple[int, ...] = ()
    if n_frames:
        count = n_frames.pop()
        idx = list(range(count)) if frame_indices is None else [int(i) for i in frame_indices]
        frames = tuple(idx[1:-1] if skip_first_and_last else idx)
    objects: list[SavObjectResult] = []
    unscored: list[int] = []
    for obj_id in sorted(gt):
        result = evaluate_sav_object(
            gt[obj_id],
            pred[obj_id],
            video=video,
            object_id=obj_id,
            frame_indices=frame_indices,
            skip_first_and_last=skip_first_and_last,
            bound_th=bound_th,
        )
        if result is None:
            unscored.append(int(obj_id))
        else:
            objects.append(result)
    return SavVideoResult(video=video, frames=frames, objects=tuple(objects), unscored=tuple(unscored))


def summarize_sav(results: Iterable[SavVideoResult]) -> SavReport:
    """Global SA-V scores from per-video results (means over all reported objects, x100).

    Raises:
        EvaluationError: no object was reported at all.
    """
    videos = tuple(results)
    objects = [obj for video in videos for obj in video.objects]
    if not objects:
        raise EvaluationError(
            "evaluate_sav: expected at least one object present in the ground truth on an "
            "evaluated frame, found none."
        )
    j = float(np.mean([obj.j for obj in objects]))
    f = float(np.mean([obj.f for obj in objects]))
    return SavReport(jf=(j + f) / 2.0, j=j, f=f, videos=videos)


def evaluate_sav(
    videos: Mapping[str, tuple[Mapping[int, npt.ArrayLike], Mapping[int, npt.ArrayLike]]]
    | Iterable[tuple[str, Mapping[int, npt.ArrayLike], Mapping[int, npt.ArrayLike]]],
    *,
    skip_first_and_last: bool = True,
    bound_th: float = DEFAULT_BOUND_TH,
) -> SavReport:
    """Evaluate a set of videos with the SA-V protocol.

    Args:
        videos: ``{video: (gt, pred)}`` or an iterable of ``(video, gt, pred)``, with ``gt``
            and ``pred`` as for :func:`evaluate_sav_video`.
        skip_first_and_last, bound_th: see :func:`evaluate_sav_object`.
    """
    items: Iterable[tuple[str, Mapping[int, npt.ArrayLike], Mapping[int, npt.ArrayLike]]]
    if isinstance(videos, Mapping):
        items = ((name, pair[0], pair[1]) for name, pair in videos.items())
    else:
        items = videos
    return summarize_sav(
        evaluate_sav_video(
            gt,
            pred,
            video=name,
            skip_first_and_last=skip_first_and_last,
            bound_th=bound_th,
        )
        for name, gt, pred in items
    )
