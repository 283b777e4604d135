"""Scores from decoder tokens (SamScore, object score, entropy, stability, USAM heads) and policies."""

from usam_video.scoring.fused import FusedHeads
from usam_video.scoring.policy import ThresholdPolicy
from usam_video.scoring.scores import (
    BASELINE_SCORES,
    Scorer,
    candidate_score_names,
    head_features,
    score_frame,
    score_names,
)

__all__ = [
    "BASELINE_SCORES",
    "FusedHeads",
    "Scorer",
    "ThresholdPolicy",
    "candidate_score_names",
    "head_features",
    "score_frame",
    "score_names",
]
