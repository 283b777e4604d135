"""Scores from decoder tokens (SamScore, object score, USAM heads) and decision policies."""

from usam_video.scoring.policy import ThresholdPolicy
from usam_video.scoring.scores import BASELINE_SCORES, head_features, score_frame, score_names

__all__ = ["BASELINE_SCORES", "ThresholdPolicy", "head_features", "score_frame", "score_names"]
