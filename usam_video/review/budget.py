"""From stored scores to the review planner's tracks, and from config to planner settings.

The planner (:mod:`usam_video.review.planner`) sees one uncertainty sequence per object of a
video; the store holds ``(T, O, S)`` score tables. Every score's direction comes from the score
registry, so a confidence (``iou_video``, ``sam_iou``) and an uncertainty (``lost_video``, a gap)
plan alike.

A human budget is a run's total over every review round (:class:`~usam_video.config.HumanBudget`):
a video relabelled after an import plans only what its budget has left (:func:`budget_left`), and
every plan entry records the round it was made in (:func:`review_round`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from usam_video.config import HumanBudget, ReviewPlanConfig
from usam_video.review.planner import Pick, PlannerSettings, Track, plan_reviews, rank_percentile
from usam_video.score_registry import to_uncertainty
from usam_video.store import WriteBatch

__all__ = [
    "BudgetInput",
    "BudgetPlan",
    "budget_left",
    "budget_uncertainty",
    "plan_budget",
    "plan_entries",
    "planner_settings",
    "review_round",
    "round_share",
    "tracks_of",
    "uncertainty_table",
    "video_limit",
]


def planner_settings(config: ReviewPlanConfig | None) -> PlannerSettings:
    """The planner's settings from a policy's ``human_budget.plan`` (defaults when None)."""
    c = config or ReviewPlanConfig()
    return PlannerSettings(
        kind=c.kind,
        low_quantile=c.low_quantile,
        threshold=c.threshold,
        merge_gap=c.merge_gap,
        mass=c.mass,
        object_decay=c.object_decay,
        video_decay=c.video_decay,
        skip_after=c.skip_after,
    )


def uncertainty_table(score_names: Sequence[str], scores: np.ndarray, score: str) -> np.ndarray:
    """``float64`` ``(T, O)``: score ``score`` of a ``(T, O, S)`` table as an uncertainty
    (higher = less certain, NaN kept).

    Raises:
        ConfigError: ``score`` is unknown to the registry or a video feature.
        KeyError: the table has no such column (callers check names first).
    """
    return to_uncertainty(score, scores[..., list(score_names).index(score)])


def tracks_of(
    video_id: str,
    object_ids: Sequence[int],
    uncertainty: np.ndarray,
    tracked: np.ndarray,
    eligible: np.ndarray,
) -> list[Track]:
    """One :class:`Track` per object: its tracked frames (from its first tracked frame on), its
    uncertainty on them, and which of them a reviewer may be asked to correct.

    Args:
        uncertainty: ``float64`` ``(T, O)``; tracked, eligible: ``bool`` ``(T, O)``.
    """
    tracks = []
    for o, obj in enumerate(object_ids):
        frames = np.nonzero(tracked[:, o])[0]
        if len(frames) == 0:
            continue
        u = np.asarray(uncertainty[frames, o], np.float64)
        tracks.append(
            Track(
                video_id=video_id,
                object_id=int(obj),
                frames=frames.astype(np.int64),
                uncertainty=np.where(np.isfinite(u), u, np.nan),
                eligible=eligible[frames, o].astype(bool) & np.isfinite(u),
            )
        )
    return tracks


def budget_uncertainty(budget: HumanBudget, values: np.ndarray) -> np.ndarray:
    """``float64`` uncertainty of a human budget's ``priority`` values (higher = less certain).

    An explicit ``ascending`` (configs written before the score registry) orders by rank, so
    that any scale works; otherwise the registry turns the score into an uncertainty.
    """
    v = np.asarray(values, np.float64)
    if budget.ascending is not None:
        return rank_percentile(-v if budget.ascending else v)
    return to_uncertainty(budget.priority, v)


def budget_left(budget: HumanBudget, total: int, spent: int = 0, rounds_done: int = 0) -> int | None:
    """How many more of a video's frame-objects its budget lets go to humans, over all rounds:
    its cap (``fraction_per_video`` of ``total``, the video's frame-objects; ``max_per_video``)
    less the ``spent`` ones humans corrected already, never below 0; 0 once the video has had
    its ``rounds`` rounds of corrections (``rounds_done``); None when nothing caps the video."""
    if rounds_done >= budget.rounds:
        return 0
    caps = []
    if budget.fraction_per_video is not None:
        caps.append(int(np.floor(budget.fraction_per_video * total)))
    if budget.max_per_video is not None:
        caps.append(budget.max_per_video)
    return max(0, min(caps) - spent) if caps else None


def round_share(left: int, rounds_left: int) -> int:
    """This round's part of ``left`` corrections with ``rounds_left`` rounds to go (this one
    included): an even split, the earlier rounds one more; nothing once no round is left."""
    return 0 if rounds_left < 1 else -(-left // rounds_left)


def video_limit(budget: HumanBudget, queued: int, total: int, spent: int = 0, rounds_done: int = 0) -> int:
    """How many of a video's ``queued`` frame-objects this round of its budget lets through
    (``total``: the video's frame-objects, the base of ``fraction_per_video``; ``spent``: its
    frame-objects humans corrected in the ``rounds_done`` earlier rounds): this round's share
    (:func:`round_share`) of what is left (:func:`budget_left`)."""
    left = budget_left(budget, total, spent, rounds_done)
    return queued if left is None else min(queued, round_share(left, budget.rounds - rounds_done))


def review_round(batches: Iterable[WriteBatch], video_id: str) -> int:
    """The review round a plan of ``video_id`` made now belongs to: 1 + the import batches
    (``PseudoLabelStore.batches``; only imports write named batches) that brought corrections
    to the video, i.e. wrote rows of its history (an interrupted batch counts once, as its
    rerun finishes it under the same id)."""
    rounds = 1
    for batch in batches:
        start, end = batch.history.get(video_id, (0, 0))
        rounds += end > start
    return rounds


def plan_entries(picks: Sequence[Pick], in_round: int = 1) -> list[dict[str, Any]]:
    """The store's record of a plan: per pick ``frame``, ``object``, ``rank`` (1 = first),
    ``reason``, ``value``, its run's span and ``round``: ``in_round``, the round the plan was
    made in (:func:`review_round`)."""
    return [
        {
            "frame": p.frame_index,
            "object": p.object_id,
            "rank": i,
            "reason": p.reason,
            "value": round(float(p.value), 6),
            "run_start": p.run_start,
            "run_end": p.run_end,
            "round": in_round,
        }
        for i, p in enumerate(picks, start=1)
    ]


@dataclass(frozen=True, eq=False)
class BudgetInput:
    """One video's frame-objects as a human budget sees them.

    Attributes:
        object_ids: the video's ``O`` objects.
        priority: ``float`` ``(T, O)``: the budget's ``priority`` score (NaN: unscored).
        tracked: ``bool`` ``(T, O)``: the object was tracked on the frame.
        queued: ``bool`` ``(T, O)``: the policy queued the frame-object for a human.
    """

    video_id: str
    object_ids: tuple[int, ...]
    priority: np.ndarray
    tracked: np.ndarray
    queued: np.ndarray


@dataclass(frozen=True)
class BudgetPlan:
    """What a human budget keeps: the planner's ``picks`` (rank order, across videos) and, per
    video, the queued frame-objects it turns away as ``(frame, object index)`` pairs."""

    picks: tuple[Pick, ...]
    dropped: dict[str, list[tuple[int, int]]]

    def entries(self, video_id: str, in_round: int = 1) -> list[dict[str, Any]]:
        """The store's record of ``video_id``'s part of the plan, made in round ``in_round``
        (:func:`plan_entries`)."""
        return plan_entries([p for p in self.picks if p.video_id == video_id], in_round)


def plan_budget(videos: Sequence[BudgetInput], budget: HumanBudget, limit: int) -> BudgetPlan:
    """Spend ``limit`` human corrections over ``videos`` (one video: its own budget; a run's
    videos: the run's ``max_per_run``): the review planner ranks the runs of doubtful frames of
    every object, wherever they are, and picks up to ``limit`` queued frame-objects; every other
    queued frame-object is turned away."""
    tracks = [
        track
        for v in videos
        for track in tracks_of(
            v.video_id, v.object_ids, budget_uncertainty(budget, v.priority), v.tracked, v.queued
        )
    ]
    picks = plan_reviews(tracks, limit, planner_settings(budget.plan))
    kept = {(p.video_id, p.frame_index, p.object_id) for p in picks}
    dropped = {
        v.video_id: [
            (int(t), int(o))
            for t, o in zip(*np.nonzero(v.queued), strict=True)
            if (v.video_id, int(t), v.object_ids[o]) not in kept
        ]
        for v in videos
    }
    return BudgetPlan(tuple(picks), dropped)
