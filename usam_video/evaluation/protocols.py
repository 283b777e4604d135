"""The protocols applied to one video's predicted masks: DAVIS and SA-V J&F, and the ranking items.

Pure numpy over :class:`FrameMasks` (what a prediction source read) and
:class:`~usam_video.types.FrameAnnotation` (ground truth): where the masks came from (a store, a
predictions folder) and how the ground truth was read are the pipeline's business
(:mod:`usam_video.pipeline.eval_sources`). The rules (frames, overlaps, ranking items) are
those of :mod:`usam_video.pipeline.evaluate`'s module docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError
from usam_video.evaluation.coverage import CoverageReport, coverage_report
from usam_video.evaluation.jf import (
    VOID_LABEL,
    DavisObjectResult,
    DavisSequenceResult,
    db_eval_iou,
    evaluate_davis_sequence,
)
from usam_video.evaluation.ranking import RankingReport, evaluate_ranking, uncertainty_from_confidence
from usam_video.evaluation.sav import SavVideoResult, evaluate_sav_video
from usam_video.score_registry import direction_of, is_known
from usam_video.types import FrameAnnotation

__all__ = [
    "coverage_of_items",
    "davis_late_object",
    "RANDOM_SAMPLE",
    "FrameMasks",
    "RankingItems",
    "davis_sequence",
    "masks_to_index_map",
    "rank_items",
    "sav_video",
    "score_direction",
]

#: Name of the seeded uniform random score ranked beside the store's scores ("random" is the
#: exact expected random ordering, computed without sampling).
RANDOM_SAMPLE = "random_sample"


def score_direction(name: str) -> str | None:
    """``"confidence"`` or ``"uncertainty"`` as :mod:`usam_video.score_registry` says; None for
    a video feature (no direction of its own) or a name the registry does not know (a column of
    an older store), which ranking then leaves out with the reason."""
    if not is_known(name):
        return None
    direction = direction_of(name)
    return None if direction == "feature" else direction


def masks_to_index_map(
    object_ids: Sequence[int], masks: npt.ArrayLike, *, where: str = "masks"
) -> npt.NDArray[np.uint8]:
    """Compose per-object masks into one DAVIS index map.

    Args:
        object_ids: the ``O`` ids, each in 1..254.
        masks: bool ``(O, H, W)``; masks may overlap.
        where: names the masks in error messages.

    Returns:
        uint8 ``(H, W)``: 0 background, else the id of the covering object; objects are
        painted in ascending id order, so on overlap the higher id wins.

    Raises:
        EvaluationError: an id outside 1..254 (0 is background, 255 void in DAVIS maps), or
            a mask count that differs from the id count.
    """
    arr = np.asarray(masks, dtype=bool)
    if arr.ndim != 3 or arr.shape[0] != len(object_ids):
        raise EvaluationError(
            f"{where}: expected bool (O, H, W) masks for {len(object_ids)} objects, got shape {arr.shape}."
        )
    bad = [int(i) for i in object_ids if not 1 <= int(i) <= 254]
    if bad:
        raise EvaluationError(
            f"{where}: expected object ids 1..254 for the DAVIS protocol (one id per pixel), got "
            f"{bad}. Use --protocol sav for datasets with other ids."
        )
    out = np.zeros(arr.shape[1:], dtype=np.uint8)
    for index in np.argsort(np.asarray(object_ids, dtype=np.int64), kind="stable"):
        out[arr[index]] = int(object_ids[index])
    return out


@dataclass(frozen=True, eq=False)
class FrameMasks:
    """Predicted masks of one frame: ``masks`` bool ``(O, H, W)`` for ``object_ids``; a DAVIS
    folder also keeps the uint8 ``(H, W)`` ``index_map`` it read, used as is by the DAVIS
    protocol (so its checks see the file's own ids, 255 included)."""

    object_ids: tuple[int, ...]
    masks: np.ndarray
    index_map: np.ndarray | None = None

    def mask_of(self, object_id: int) -> np.ndarray:
        """bool ``(H, W)``: the object's mask, all False when the frame does not hold it."""
        if object_id in self.object_ids:
            return self.masks[self.object_ids.index(object_id)]
        return np.zeros(self.masks.shape[1:], dtype=bool)


@dataclass
class RankingItems:
    """Accumulated ranking items: base IoU and the store's score rows, video by video."""

    base_iou: list[float] = dataclasses.field(default_factory=list)
    scores: list[np.ndarray] = dataclasses.field(default_factory=list)  # float32 (S,) each
    score_names: tuple[str, ...] | None = None
    videos: list[str] = dataclasses.field(default_factory=list)
    unranked: dict[str, str] = dataclasses.field(default_factory=dict)

    def add_video(
        self,
        video_id: str,
        score_names: Sequence[str],
        object_ids: Sequence[int],
        scores: np.ndarray,
        truth: Mapping[int, FrameAnnotation],
        predicted: Mapping[int, FrameMasks],
        prompt_frames: Mapping[int, set[int]],
    ) -> None:
        """Add one video's items: a frame-object per ground-truth frame of ``truth``, except the
        frames in ``prompt_frames[object]`` (the mask is its prompt there).

        Args:
            video_id: names the video in the reasons of unranked scores.
            score_names: the video's ``S`` score columns.
            object_ids: the video's ``O`` objects, in the order of ``scores``.
            scores: float ``(T, O, S)``, the video's stored scores.
            truth: ``{frame: ground truth}``; predicted: ``{frame: masks}`` on the same frames.
            prompt_frames: ``{object id: frames where it is prompted}``.
        """
        names = tuple(score_names)
        # Different videos of one store may come from runs with other heads: rank the scores
        # every contributing video has, and say which were left out.
        if self.score_names is None:
            keep = list(range(len(names)))
            self.score_names = names
        else:
            common = [n for n in self.score_names if n in names]
            for name in set(self.score_names) - set(common):
                self.unranked[name] = f"missing in video {video_id!r}"
            for name in set(names) - set(self.score_names):
                self.unranked.setdefault(name, "missing in an earlier video")
            if len(common) != len(self.score_names):
                positions = [self.score_names.index(n) for n in common]
                self.scores = [row[positions] for row in self.scores]
                self.score_names = tuple(common)
            keep = [names.index(n) for n in self.score_names]
        added = 0
        for t in sorted(truth):
            gt = truth[t]
            pred = predicted[t]
            for o, obj in enumerate(object_ids):
                if t in prompt_frames.get(int(obj), set()):
                    continue  # the mask is the prompt itself: nothing to rank
                iou = db_eval_iou(gt.mask_of(int(obj)), pred.mask_of(int(obj)), gt.void)
                self.base_iou.append(float(iou))
                self.scores.append(np.asarray(scores[t, o], dtype=np.float32)[keep])
                added += 1
        if added:
            self.videos.append(video_id)


def rank_items(
    items: RankingItems, random_seed: int | None, ratios: npt.ArrayLike
) -> tuple[RankingReport | None, str, dict[str, str], int]:
    """Run the ranking protocol on the accumulated items.

    Scores without a direction are added to ``items.unranked`` with the reason.

    Returns ``(report or None, note, score directions, dropped item count)``.
    """
    if not items.base_iou:
        return None, "no frame-object with ground truth beside the prompts", {}, 0
    names = items.score_names or ()
    base = np.asarray(items.base_iou, dtype=np.float64)
    scores = np.stack(items.scores).astype(np.float64) if names else np.zeros((len(base), 0))
    directions: dict[str, str] = {}
    columns: list[int] = []
    for j, name in enumerate(names):
        direction = score_direction(name)
        if direction is None:
            items.unranked[name] = (
                "a video feature: no direction of its own"
                if is_known(name)
                else "unknown direction (neither a confidence nor an uncertainty)"
            )
            continue
        directions[name] = direction
        columns.append(j)
    # A score not written (NaN) for some frame-object cannot be ranked; drop such items
    # rather than the whole score, and report how many.
    finite = np.all(np.isfinite(scores[:, columns]), axis=1) if columns else np.ones(len(base), bool)
    dropped = int(np.count_nonzero(~finite))
    if not finite.any():
        return None, f"every one of {len(base)} frame-objects has a non-finite score", directions, dropped
    base = base[finite]
    uncertainties: dict[str, np.ndarray] = {}
    for j in columns:
        column = scores[finite, j]
        name = names[j]
        uncertainties[name] = (
            uncertainty_from_confidence(column) if directions[name] == "confidence" else column
        )
    if random_seed is not None:
        draw = np.random.default_rng(random_seed).random(size=(base.shape[0],))
        uncertainties[RANDOM_SAMPLE] = draw
        directions[RANDOM_SAMPLE] = "random"
    report = evaluate_ranking(base, np.ones_like(base), uncertainties, ratios=ratios)
    note = ""
    if report.degenerate:
        note = "every ranked mask already equals its ground truth: relative AUC is undefined"
    return report, note, directions, dropped


def coverage_of_items(items: RankingItems, bad_iou: float = 0.5) -> CoverageReport | None:
    """Coverage at 2/5/10 % risk (:mod:`usam_video.evaluation.coverage`) of every directed
    score of the ranking items and of the oracle; items with a non-finite score are left out,
    as in :func:`rank_items`. None without items or directed scores."""
    names = items.score_names or ()
    columns = [j for j, name in enumerate(names) if score_direction(name) in ("confidence", "uncertainty")]
    if not items.base_iou or not columns:
        return None
    base = np.asarray(items.base_iou, dtype=np.float64)
    scores = np.stack(items.scores).astype(np.float64)[:, columns]
    finite = np.all(np.isfinite(scores), axis=1)
    if not finite.any():
        return None
    picked = [names[j] for j in columns]
    return coverage_report(
        base[finite],
        {name: scores[finite, i] for i, name in enumerate(picked)},
        {name: str(score_direction(name)) for name in picked},
        bad_iou=bad_iou,
    )


def davis_sequence(
    video_id: str,
    gt: np.ndarray,
    eval_frames: Sequence[int],
    predicted: Mapping[int, FrameMasks],
    location: str,
    late: Mapping[int, int] | None = None,
    annotated: Sequence[int] | None = None,
    ignore: Sequence[int] = (),
) -> DavisSequenceResult:
    """DAVIS protocol on one video: ``gt`` uint8 ``(T, H, W)`` index maps of its T annotated
    frames; ``eval_frames`` are frames 1..T-2 of them, the only ones predictions are read on;
    ``location`` names the predictions in error messages.

    ``late`` (``{object id: first annotated frame}``, a dataset with ``late_objects``): those
    objects are left out of the first frame's evaluation (the protocol counts the first frame's
    ids only) and each is evaluated alone, as a sequence from its first annotated frame
    (:func:`davis_late_object`; ``annotated`` gives the video frame of each of gt's T
    positions); they join the result's objects. ``ignore``: ids the predictions may hold that
    are not evaluated at all (objects entering late under DAVIS semantics, tracked by a store
    labelled with ``late_objects``).
    """
    late = dict(late or {})
    dropped = set(late) | {int(i) for i in ignore}
    pred = np.zeros_like(gt)  # the first and last frame are not evaluated: left empty
    for pos, t in enumerate(eval_frames, start=1):
        frame = predicted[t]
        if frame.index_map is not None:
            # a late object's id is not one of the first frame's: it is evaluated on its own
            pred[pos] = np.where(np.isin(frame.index_map, sorted(dropped)), 0, frame.index_map)
        else:
            where = f"{location} video {video_id!r} frame {t}"
            keep = [i for i, obj in enumerate(frame.object_ids) if obj not in dropped]
            pred[pos] = masks_to_index_map(
                [frame.object_ids[i] for i in keep], frame.masks[keep], where=where
            )
    result = evaluate_davis_sequence(gt, pred, sequence=video_id)
    extra = []
    for object_id, first in sorted(late.items()):
        found = davis_late_object(video_id, object_id, first, gt, annotated or (), predicted)
        if found is not None:
            extra.append(found)
    # Positions in the stack of annotated frames -> the video's frame indices.
    return dataclasses.replace(result, frames=tuple(eval_frames), objects=result.objects + tuple(extra))


def davis_late_object(
    video_id: str,
    object_id: int,
    first: int,
    gt: np.ndarray,
    frames: Sequence[int],
    predicted: Mapping[int, FrameMasks],
) -> DavisObjectResult | None:
    """One object that enters at annotated frame ``first``, evaluated by the DAVIS protocol on
    the annotated frames from ``first`` on (``gt`` uint8 ``(T, H, W)`` at video frames
    ``frames``): the object against everything else, the first and last of them left out.
    None when fewer than 3 annotated frames remain."""
    positions = [i for i, t in enumerate(frames) if t >= first]
    if len(positions) < 3:
        return None
    sub = gt[positions]
    gt_bin = np.where(sub == VOID_LABEL, VOID_LABEL, (sub == object_id).astype(np.uint8)).astype(np.uint8)
    pred_bin = np.zeros_like(gt_bin)
    for j, pos in enumerate(positions[1:-1], start=1):
        pred_bin[j] = predicted[frames[pos]].mask_of(object_id).astype(np.uint8)
    result = evaluate_davis_sequence(gt_bin, pred_bin, sequence=video_id)
    return dataclasses.replace(result.objects[0], object_id=object_id)


def sav_video(
    video_id: str,
    truth: Mapping[int, FrameAnnotation],
    eval_frames: Sequence[int],
    predicted: Mapping[int, FrameMasks],
    gt_objects: Sequence[int],
) -> SavVideoResult:
    """SA-V protocol on one video: bool ``(T_eval, H, W)`` stacks per ground-truth object."""
    gt = {i: np.stack([truth[t].mask_of(i) for t in eval_frames]) for i in gt_objects}
    pred = {i: np.stack([predicted[t].mask_of(i) for t in eval_frames]) for i in gt_objects}
    # eval_frames already leaves the first and last annotated frame out.
    return evaluate_sav_video(gt, pred, video=video_id, frame_indices=eval_frames, skip_first_and_last=False)
