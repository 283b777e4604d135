"""Per-frame, per-object scores: SAM's own, mask-based baselines, and every USAM head.

Score columns (store order): ``sam_iou`` (SamScore), ``object_score`` (sigmoid of the object
logit), ``entropy`` (H_std, an uncertainty), ``stability`` (SAM's stability score), then one per
loaded head, each evaluated on the IoU token and the chosen candidate's mask token. Gap heads
(``*_gap``) are shifted back by ``-0.5`` so they read as gaps in IoU.

Candidate columns: for every decoder token ``k`` (0 single-mask, 1..3 multimask), SAM's
predicted IoU and every ``iou_*`` head on ``(iou_token, mask_token[k])``.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from usam_video.errors import HeadsError
from usam_video.heads import GAP_HEADS, GAP_SHIFT, HeadSet
from usam_video.scoring.fused import FusedHeads
from usam_video.types import FramePrediction, FrameScores

__all__ = [
    "BASELINE_SCORES",
    "Scorer",
    "candidate_score_names",
    "head_features",
    "score_frame",
    "score_names",
]

#: Scores every run stores, heads or not.
BASELINE_SCORES: tuple[str, ...] = ("sam_iou", "object_score", "entropy", "stability")


def score_names(heads: HeadSet | None) -> tuple[str, ...]:
    """The score columns of a run, in store order."""
    return BASELINE_SCORES + (heads.names if heads is not None else ())


def candidate_score_names(heads: HeadSet | None) -> tuple[str, ...]:
    """The per-candidate score columns: SAM's IoU and every IoU head."""
    iou_heads = tuple(n for n in (heads.names if heads is not None else ()) if n.startswith("iou_"))
    return ("sam_iou",) + iou_heads


def head_features(prediction: FramePrediction) -> np.ndarray:
    """``float32`` ``(O, 2D)``: IoU token concatenated with the chosen candidate's mask token."""
    return np.concatenate([prediction.iou_tokens, prediction.chosen_mask_tokens()], axis=1)


def _all_candidate_features(prediction: FramePrediction) -> np.ndarray:
    """``float32`` ``(O, K, 2D)``: IoU token concatenated with each mask token."""
    o, k, d = prediction.mask_tokens.shape
    iou = np.broadcast_to(prediction.iou_tokens[:, None, :], (o, k, d))
    return np.concatenate([iou, prediction.mask_tokens], axis=2)


class Scorer:
    """Scores frames with a fixed set of heads, fused, on a device (build once per run)."""

    def __init__(self, heads: HeadSet | None, device: torch.device | str = "cpu"):
        self.heads = heads
        self.names = score_names(heads)
        self.candidate_names = candidate_score_names(heads)
        self._fused = FusedHeads(heads, device) if heads is not None and heads.heads else None
        self._gap = np.array([n in GAP_HEADS for n in (heads.names if heads else ())], dtype=bool)
        self._iou_rows = [i for i, n in enumerate(heads.names if heads else ()) if n.startswith("iou_")]

    def __call__(self, prediction: FramePrediction) -> FrameScores:
        o = len(prediction.object_ids)
        baseline = [
            prediction.sam_iou.astype(np.float32),
            (1.0 / (1.0 + np.exp(-prediction.object_score_logits.astype(np.float64)))).astype(np.float32),
            prediction.entropy.astype(np.float32),
            prediction.stability.astype(np.float32),
        ]
        columns = np.stack(baseline, axis=1)
        candidates = prediction.candidate_ious.astype(np.float32)[:, :, None]
        if self._fused is not None:
            features = _all_candidate_features(prediction)
            if features.shape[2] != 2 * self._fused.token_dim:
                raise HeadsError(
                    f"heads from {self.heads.source}: expected {self._fused.token_dim}-d tokens, "  # type: ignore[union-attr]
                    f"the model gives {features.shape[2] // 2}-d tokens. Use heads trained for this model."
                )
            k = features.shape[1]
            out = self._fused(torch.from_numpy(np.ascontiguousarray(features.reshape(o * k, -1))))
            out = out.float().cpu().numpy().reshape(len(self._fused), o, k)  # (H, O, K)
            chosen = np.maximum(prediction.chosen_candidate, 0)
            per_head = out[:, np.arange(o), chosen].T.copy()  # (O, H)
            per_head[:, self._gap] -= GAP_SHIFT
            per_head[~prediction.tracked] = np.nan
            columns = np.concatenate([columns, per_head], axis=1)
            if self._iou_rows:
                candidates = np.concatenate([candidates, out[self._iou_rows].transpose(1, 2, 0)], axis=2)
        candidates[~prediction.tracked] = np.nan
        return FrameScores(
            prediction.frame_index,
            prediction.object_ids,
            self.names,
            columns.astype(np.float32),
            self.candidate_names,
            candidates.astype(np.float32),
        )


_SCORERS: weakref.WeakKeyDictionary[HeadSet, Scorer] = weakref.WeakKeyDictionary()


def score_frame(prediction: FramePrediction, heads: HeadSet | None) -> FrameScores:
    """Score one frame on the CPU. Stacking the heads' weights costs more than a frame's
    scoring, so one :class:`Scorer` per head set is kept (for as long as the head set lives)."""
    if heads is None:
        return Scorer(None)(prediction)
    scorer = _SCORERS.get(heads)
    if scorer is None:
        scorer = _SCORERS[heads] = Scorer(heads)
    return scorer(prediction)
