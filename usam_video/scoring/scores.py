"""Per-frame, per-object scores from the decoder's tokens: SAM's own and every USAM head's."""

from __future__ import annotations

import numpy as np
import torch

from usam_video.errors import HeadsError
from usam_video.heads import GAP_HEADS, GAP_SHIFT, HeadSet
from usam_video.types import FramePrediction, FrameScores

__all__ = ["BASELINE_SCORES", "score_names", "head_features", "score_frame"]

#: Scores every run stores, heads or not: SamScore and the object-presence probability.
BASELINE_SCORES: tuple[str, ...] = ("sam_iou", "object_score")


def score_names(heads: HeadSet | None) -> tuple[str, ...]:
    """The score columns of a run, in store order."""
    return BASELINE_SCORES + (heads.names if heads is not None else ())


def head_features(prediction: FramePrediction) -> np.ndarray:
    """``float32`` ``(O, 2D)``: IoU token concatenated with the chosen candidate's mask token."""
    return np.concatenate([prediction.iou_tokens, prediction.chosen_mask_tokens()], axis=1)


def score_frame(prediction: FramePrediction, heads: HeadSet | None) -> FrameScores:
    """Score every object of a frame.

    Gap heads (``*_gap``) are shifted back by ``-0.5`` so that they read as gaps in IoU.
    """
    columns = [prediction.sam_iou.astype(np.float32), 1.0 / (1.0 + np.exp(-prediction.object_score_logits))]
    if heads is not None and heads.heads:
        features = head_features(prediction)
        if features.shape[1] != 2 * heads.token_dim:
            raise HeadsError(
                f"heads from {heads.source}: expected {heads.token_dim}-d tokens, the model gives "
                f"{features.shape[1] // 2}-d tokens. Use heads trained for this model."
            )
        with torch.inference_mode():
            x = torch.from_numpy(features)
            for name, head in heads.heads.items():
                value = head(x).numpy().astype(np.float32)
                columns.append(value - GAP_SHIFT if name in GAP_HEADS else value)
    values = np.stack(columns, axis=1).astype(np.float32)
    return FrameScores(prediction.frame_index, prediction.object_ids, score_names(heads), values)
