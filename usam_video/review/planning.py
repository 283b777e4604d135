"""From stored scores to the review planner's tracks, and from config to planner settings.

The planner (:mod:`usam_video.review.planner`) sees one uncertainty sequence per object of a
video; the store holds ``(T, O, S)`` score tables. Every score's direction comes from the score
registry, so a confidence (``iou_video``, ``sam_iou``) and an uncertainty (``lost_video``, a gap)
plan alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from usam_video.config import HumanBudget, ReviewPlanConfig
from usam_video.review.planner import Pick, PlannerSettings, Track, rank_percentile
from usam_video.score_registry import to_uncertainty

__all__ = [
    "budget_uncertainty",
    "plan_entries",
    "planner_settings",
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


def video_limit(budget: HumanBudget, queued: int, total: int) -> int:
    """How many of a video's ``queued`` frame-objects its budget lets through (``total``: the
    video's frame-objects, the base of ``fraction_per_video``)."""
    limit = queued
    if budget.fraction_per_video is not None:
        limit = min(limit, int(np.floor(budget.fraction_per_video * total)))
    if budget.max_per_video is not None:
        limit = min(limit, budget.max_per_video)
    return limit


def plan_entries(picks: Sequence[Pick]) -> list[dict[str, Any]]:
    """The store's record of a plan: per pick ``frame``, ``object``, ``rank`` (1 = first),
    ``reason``, ``value`` and its run's span."""
    return [
        {
            "frame": p.frame_index,
            "object": p.object_id,
            "rank": i,
            "reason": p.reason,
            "value": round(float(p.value), 6),
            "run_start": p.run_start,
            "run_end": p.run_end,
        }
        for i, p in enumerate(picks, start=1)
    ]
