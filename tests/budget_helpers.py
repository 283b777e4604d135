"""Helpers shared by the tests of the human budget."""

from __future__ import annotations

import numpy as np

from usam_video.config import HumanBudget
from usam_video.review.budget import budget_uncertainty, video_limit
from usam_video.review.planner import PlannerSettings, Track, plan_reviews

__all__ = ["budget_keep"]


def budget_keep(priority: np.ndarray, budget: HumanBudget, total_frames: int) -> np.ndarray:
    """Which frame-objects of one object's frames the human budget keeps, as the label loop
    decides it (the review planner, per-frame ordering)."""
    u = budget_uncertainty(budget, priority)
    limit = video_limit(budget, len(priority), total_frames)
    track = Track("v", 1, np.arange(len(priority)), np.where(np.isfinite(u), u, np.nan), np.isfinite(u))
    picks = plan_reviews([track], limit, PlannerSettings(kind="per_frame", skip_after=0))
    keep = np.zeros(len(priority), bool)
    keep[[p.frame_index for p in picks]] = True
    return keep
