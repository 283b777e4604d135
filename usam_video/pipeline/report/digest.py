"""What a review page says about one stored video: its :class:`VideoDigest`, read from the
store's frame table and review plan, the run's confidence score it is ranked by, and where its
review stands (its round, the human budget spent and left)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from usam_video.config import DatasetConfig, HumanBudget, RunConfig
from usam_video.errors import EvaluationError, InputError
from usam_video.review.budget import budget_left
from usam_video.score_registry import is_known, score_info, to_uncertainty
from usam_video.store import FrameTable, PseudoLabelStore
from usam_video.types import MaskSource, Status

__all__ = ["TAIL_FRACTION", "PlanItem", "VideoDigest", "chosen_score", "dataset_of", "digest_video"]

#: Share of a video's frames its uncertainty is averaged over (the worst ones): a short lost run
#: in a long video still ranks the video high, one noisy frame alone does not.
TAIL_FRACTION = 0.1


@dataclass(frozen=True)
class PlanItem:
    """One pick of the review planner: ``rank`` 1 is asked for first; ``value`` is the chosen
    score of that frame-object (NaN when unscored)."""

    rank: int
    frame: int
    object_id: int
    value: float
    reason: str


@dataclass(frozen=True)
class VideoDigest:
    """What a page says about one stored video, read from its frame table and review plan.

    Attributes:
        score: the score drawn and ranked by (:func:`chosen_score`).
        uncertainty: mean of the worst :data:`TAIL_FRACTION` of its frame uncertainties, a
            frame's uncertainty being that of its most doubtful object (the registry's
            :func:`~usam_video.score_registry.to_uncertainty` of ``score``), conditioning
            frame-objects (prompts, corrections) left out; NaN when nothing is scored.
        worst_frames: the most uncertain frames, worst first, spaced apart (adjacent frames of
            one low run look alike); ``worst_objects``/``worst_values`` give each frame's most
            doubtful object and its score.
        queued_by_reason: ``(reason, count)`` of the queued frame-objects, most frequent first.
        plan: the review planner's picks by rank.
        jf, jf_baseline: J&F of the video and of the copy-first-mask baseline (ground truth only).
        untrained: the masks or scores come from random weights.
        review_round: the review round of its plan (1: the first pass; one more per import that
            brought it corrections). ``corrected`` is the human budget it has spent.
        budget_left: how many more frame-objects its human budget lets go to humans, over all
            rounds (0 once its ``rounds`` rounds are done); None: no per-video cap or no budget.
    """

    video_id: str
    score: str
    complete: bool
    frames: int
    objects: int
    uncertainty: float
    worst_frames: tuple[int, ...]
    worst_objects: tuple[int, ...]
    worst_values: tuple[float, ...]
    queued_human: int
    queued_refine: int
    corrected: int
    conditioning: int
    queued_by_reason: tuple[tuple[str, int], ...]
    plan: tuple[PlanItem, ...]
    jf: float | None = None
    jf_baseline: float | None = None
    untrained: bool = False
    review_round: int = 1
    budget_left: int | None = None


def _run_config(store: PseudoLabelStore, video_id: str) -> RunConfig:
    """The run config in a video's provenance. Imported here: ``pipeline.label`` loads torch and
    the engine, which reading a store for a report does not need."""
    from usam_video.pipeline.label import run_config_of

    return run_config_of(store, video_id)


def chosen_score(store: PseudoLabelStore, video_id: str, score_names: Sequence[str]) -> str:
    """The run's confidence score of a video: its human budget's ``priority`` when stored, else
    ``sam_iou``, else the first stored score with a direction in the score registry.

    Raises:
        EvaluationError: no stored score is a confidence or an uncertainty.
    """
    return _score_of(_budget_of(store, video_id), video_id, score_names)


def _budget_of(store: PseudoLabelStore, video_id: str) -> HumanBudget | None:
    """The human budget a video was labelled with; None without one, or without a run config in
    its provenance (an older store)."""
    try:
        return _run_config(store, video_id).policy.human_budget
    except InputError:
        return None


def _score_of(budget: HumanBudget | None, video_id: str, score_names: Sequence[str]) -> str:
    """:func:`chosen_score` of a video labelled with ``budget``."""
    if budget is not None and budget.priority in score_names:
        return budget.priority
    if "sam_iou" in score_names:
        return "sam_iou"
    for name in score_names:
        if is_known(name) and score_info(name).direction != "feature":
            return name
    raise EvaluationError(
        f"video {video_id!r}: expected a confidence or uncertainty score among its scores, got "
        f"{list(score_names)}."
    )


def _spaced_worst(frame_u: np.ndarray, count: int, spacing: int) -> list[int]:
    """Up to ``count`` frames of highest uncertainty (``frame_u``, float ``(T,)``, NaN skipped),
    greedily, each at least ``spacing`` frames from those taken before."""
    order = [int(t) for t in np.argsort(-np.where(np.isfinite(frame_u), frame_u, -np.inf), kind="stable")]
    taken: list[int] = []
    for t in order:
        if len(taken) == count or not math.isfinite(frame_u[t]):
            break
        if all(abs(t - s) >= spacing for s in taken):
            taken.append(t)
    return taken


def digest_video(
    store: PseudoLabelStore,
    video_id: str,
    *,
    worst: int = 4,
    table: FrameTable | None = None,
    plan: Sequence[Mapping[str, Any]] | None = None,
) -> VideoDigest:
    """One video's :class:`VideoDigest` (``worst``: how many worst frames to keep), from its
    frame ``table`` and review ``plan`` entries when the caller has them (what a run's label
    loop returned), else read from the store.

    Raises:
        VideoNotFoundError: the store has no such video.
        EvaluationError: it has no score to rank by.
    """
    summary = store.summary(video_id)
    table = table if table is not None else store.frame_table(video_id)
    entries = plan if plan is not None else list(store.review_plan(video_id).values())
    budget = _budget_of(store, video_id)
    score = _score_of(budget, video_id, table.score_names)
    values = table.scores[..., table.score_names.index(score)].astype(np.float64)  # (T, O)
    conditioning = np.zeros(table.status.shape, bool)
    if table.source is not None:
        conditioning = np.isin(table.source, [MaskSource.PROMPT, MaskSource.HUMAN])
    scored = ~np.isin(table.status, [Status.PENDING, Status.NOT_STARTED]) & ~conditioning
    uncertainty = np.where(scored, to_uncertainty(score, values), np.nan)  # (T, O), higher = worse
    with warnings.catch_warnings():  # all-NaN frames (nothing scored) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        frame_u = np.nanmax(uncertainty, axis=1) if uncertainty.shape[1] else np.full(len(values), np.nan)
    finite = np.sort(frame_u[np.isfinite(frame_u)])[::-1]
    video_u = (
        float(finite[: max(1, math.ceil(TAIL_FRACTION * len(finite)))].mean()) if finite.size else math.nan
    )
    frames = _spaced_worst(frame_u, worst, max(1, summary.num_frames // 16))
    objects = [int(np.nanargmax(uncertainty[t])) for t in frames]

    queued = np.isin(table.status, [Status.QUEUED_HUMAN, Status.QUEUED_REFINE])
    reasons = Counter(table.reason_label(int(code)) or "(none)" for code in table.reason[queued])
    ids = list(table.object_ids)
    plan = []
    for entry in entries:
        t, obj = int(entry["frame"]), int(entry["object"])
        value = float(values[t, ids.index(obj)]) if obj in ids and 0 <= t < len(values) else math.nan
        plan.append(PlanItem(int(entry["rank"]), t, obj, value, str(entry.get("reason", ""))))
    provenance = summary.provenance
    corrected = int((table.status == Status.CORRECTED).sum())
    # The summary's round stays known when the round planned no pick; a plan read from an
    # older store (no round in its summary) knows its own.
    in_round = max([summary.review_round, *(int(e["round"]) for e in entries)])
    left = None if budget is None else budget_left(budget, table.status.size, corrected, in_round - 1)
    return VideoDigest(
        video_id=video_id,
        score=score,
        complete=summary.complete,
        frames=summary.num_frames,
        objects=len(ids),
        uncertainty=video_u,
        worst_frames=tuple(frames),
        worst_objects=tuple(int(ids[o]) for o in objects),
        worst_values=tuple(float(values[t, o]) for t, o in zip(frames, objects, strict=True)),
        queued_human=int((table.status == Status.QUEUED_HUMAN).sum()),
        queued_refine=int((table.status == Status.QUEUED_REFINE).sum()),
        corrected=corrected,
        conditioning=int(conditioning.sum()),
        queued_by_reason=tuple(reasons.most_common()),
        plan=tuple(sorted(plan, key=lambda p: p.rank)),
        untrained=bool(provenance.get("model_untrained") or provenance.get("heads_untrained")),
        review_round=in_round,
        budget_left=left,
    )


def dataset_of(store: PseudoLabelStore, video_id: str, dataset: DatasetConfig | None) -> DatasetConfig:
    """``dataset`` when given, else the one the video was labelled from (its provenance)."""
    return dataset if dataset is not None else _run_config(store, video_id).dataset
