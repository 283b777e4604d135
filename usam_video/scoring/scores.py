"""Per-frame, per-object scores: SAM's own, mask-based baselines, and every USAM head.

Score columns (store order): ``sam_iou`` (SamScore), ``object_score`` (sigmoid of the object
logit), ``entropy`` (H_std, an uncertainty), ``stability`` (SAM's stability score), then one per
token head (``HeadSet.token_head_names``), each evaluated on the chosen candidate's feature.
Heads with a registry ``shift`` (the ``*_gap`` heads, ``-0.5``) are shifted back so they read as
gaps in IoU. Video heads (``HeadSet.video_head_names``: extra inputs after the tokens) are not
scored here yet; their columns will follow the token heads, in their order.

Candidate columns: for every decoder token ``k`` (0 single-mask, 1..3 multimask), SAM's
predicted IoU and every token head the registry marks ``per_candidate``.

The feature of candidate ``k`` follows the heads' pairing (:mod:`usam_video.heads.manifest`):
``concat(iou_token, mask_tokens[k])`` for ``"aligned"`` heads (the project's own), and
``concat(iou_token, mask_tokens[max(k - 1, 0)])`` for ``"reference"`` heads (the published
UncertainSAM sets), for the chosen mask and for every candidate alike.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from usam_video.errors import HeadsError
from usam_video.heads import HeadSet
from usam_video.heads.manifest import token_index
from usam_video.score_registry import VIDEO_FEATURES, score_info
from usam_video.scoring.fused import FusedHeads
from usam_video.types import FramePrediction, FrameScores

__all__ = [
    "BASELINE_SCORES",
    "Scorer",
    "candidate_features",
    "candidate_score_names",
    "head_features",
    "score_frame",
    "score_names",
]

#: Scores every run stores, heads or not.
BASELINE_SCORES: tuple[str, ...] = ("sam_iou", "object_score", "entropy", "stability")


def score_names(heads: HeadSet | None) -> tuple[str, ...]:
    """The score columns of a run, in store order: the baselines, the video features
    (``VIDEO_FEATURES``), then the token heads.

    Raises:
        ConfigError: a head name the score registry does not know.
    """
    names = heads.token_head_names if heads is not None else ()
    for name in names:
        score_info(name)  # an unknown head name fails here, before anything is stored
    video = heads.video_head_names if heads is not None else ()
    for name in video:
        score_info(name)
    return BASELINE_SCORES + VIDEO_FEATURES + names + video


def candidate_score_names(heads: HeadSet | None) -> tuple[str, ...]:
    """The per-candidate score columns: SAM's IoU and every token head the registry marks
    ``per_candidate`` (the IoU heads).

    Raises:
        ConfigError: a head name the score registry does not know.
    """
    names = heads.token_head_names if heads is not None else ()
    return ("sam_iou",) + tuple(n for n in names if score_info(n).per_candidate)


def head_features(prediction: FramePrediction, pairing: str = "aligned") -> np.ndarray:
    """``float32`` ``(O, 2D)``: IoU token concatenated with the mask token that ``pairing``
    sets beside the chosen candidate (NaN rows for untracked objects)."""
    o, k, _ = prediction.mask_tokens.shape
    tokens = np.asarray(token_index(pairing, k))[np.maximum(prediction.chosen_candidate, 0)]
    mask = prediction.mask_tokens[np.arange(o), tokens]
    mask[~prediction.tracked] = np.nan
    return np.concatenate([prediction.iou_tokens, mask], axis=1)


def candidate_features(prediction: FramePrediction, pairing: str = "aligned") -> np.ndarray:
    """``float32`` ``(O, K, 2D)``: for every candidate ``k``, the IoU token concatenated with the
    mask token ``pairing`` sets beside it (token ``k``, or ``max(k - 1, 0)`` for ``"reference"``)."""
    o, k, d = prediction.mask_tokens.shape
    iou = np.broadcast_to(prediction.iou_tokens[:, None, :], (o, k, d))
    mask = prediction.mask_tokens[:, list(token_index(pairing, k))]
    return np.concatenate([iou, mask], axis=2)


class Scorer:
    """Scores frames with a fixed set of heads, fused, on a device (build once per run).

    Only the token heads are fused (the video heads take a wider input); the features follow
    the head set's pairing.
    """

    def __init__(self, heads: HeadSet | None, device: torch.device | str = "cpu"):
        self.heads = heads
        self.pairing = heads.pairing if heads is not None else "aligned"
        self.names = score_names(heads)
        self.candidate_names = candidate_score_names(heads)
        token_heads = heads.token_head_names if heads is not None else ()
        self._fused = FusedHeads(heads, device, token_heads) if heads is not None and token_heads else None
        # The registry's shift takes a head's raw sigmoid back to the stored scale (gaps: -0.5).
        self._shift = np.array([score_info(n).shift for n in token_heads], np.float32)
        self._candidate_rows = [i for i, n in enumerate(token_heads) if score_info(n).per_candidate]
        video_heads = heads.video_head_names if heads is not None else ()
        self._video = [_VideoHead.build(heads, name, device) for name in video_heads]  # type: ignore[arg-type]

    def __call__(self, prediction: FramePrediction) -> FrameScores:
        """Every score of one frame (``float32``; NaN for untracked objects)."""
        o = len(prediction.object_ids)
        baseline = [
            prediction.sam_iou.astype(np.float32),
            (1.0 / (1.0 + np.exp(-prediction.object_score_logits.astype(np.float64)))).astype(np.float32),
            prediction.entropy.astype(np.float32),
            prediction.stability.astype(np.float32),
        ]
        features = prediction.video_features
        if features is None:  # a producer without video features: their columns read NaN
            features = np.full((o, len(VIDEO_FEATURES)), np.nan, np.float32)
        columns = np.concatenate([np.stack(baseline, axis=1), features.astype(np.float32)], axis=1)
        candidates = prediction.candidate_ious.astype(np.float32)[:, :, None]
        if self._fused is not None:
            features = candidate_features(prediction, self.pairing)
            if features.shape[2] != 2 * self._fused.token_dim:
                raise HeadsError(
                    f"heads from {self.heads.source}: expected {self._fused.token_dim}-d tokens, "  # type: ignore[union-attr]
                    f"the model gives {features.shape[2] // 2}-d tokens. Use heads trained for this model."
                )
            k = features.shape[1]
            out = self._fused(torch.from_numpy(np.ascontiguousarray(features.reshape(o * k, -1))))
            out = out.float().cpu().numpy().reshape(len(self._fused), o, k)  # (H, O, K)
            chosen = np.maximum(prediction.chosen_candidate, 0)
            per_head = out[:, np.arange(o), chosen].T + self._shift  # (O, H)
            per_head[~prediction.tracked] = np.nan
            columns = np.concatenate([columns, per_head], axis=1)
            if self._candidate_rows:
                candidates = np.concatenate(
                    [candidates, out[self._candidate_rows].transpose(1, 2, 0)], axis=2
                )
        if self._video:
            tokens = head_features(prediction, self.pairing)
            video = np.stack([head(tokens, columns) for head in self._video], axis=1)
            video[~prediction.tracked] = np.nan
            columns = np.concatenate([columns, video], axis=1)
        candidates[~prediction.tracked] = np.nan
        return FrameScores(
            prediction.frame_index,
            prediction.object_ids,
            self.names,
            columns.astype(np.float32),
            self.candidate_names,
            candidates.astype(np.float32),
        )


class _VideoHead:
    """A head on ``concat(iou_token, mask_token, normalised extra inputs)``; the extra inputs are
    score columns computed before the heads (baselines and video features)."""

    def __init__(self, name: str, head: torch.nn.Module, columns: list[int], mean: np.ndarray,
                 std: np.ndarray, shift: float, device: torch.device):
        self.name, self.head, self.columns = name, head.to(device).eval(), columns
        self.mean, self.std, self.shift, self.device = mean, std, shift, device

    @classmethod
    def build(cls, heads: HeadSet, name: str, device: torch.device | str) -> _VideoHead:
        spec = heads.inputs_of(name)
        known = BASELINE_SCORES + VIDEO_FEATURES
        unknown = [i for i in spec.inputs if i not in known]
        if unknown:
            raise HeadsError(
                f"heads from {heads.source}: head {name!r} expected inputs among {list(known)}, "
                f"got {unknown}. Use heads trained by this version of usam-video."
            )
        return cls(
            name,
            heads.heads[name],
            [known.index(i) for i in spec.inputs],
            np.asarray(spec.mean, np.float32),
            np.asarray(spec.std, np.float32),
            score_info(name).shift,
            torch.device(device),
        )

    def __call__(self, tokens: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``tokens`` ``float32`` ``(O, 2D)``, ``columns`` ``float32`` ``(O, S)`` -> ``float32`` ``(O,)``."""
        extra = (columns[:, self.columns] - self.mean) / self.std
        # A missing input (entropy after a candidate swap, an untracked object) sits at the mean.
        x = np.concatenate([tokens, np.nan_to_num(extra, nan=0.0)], axis=1)
        x = np.nan_to_num(x, nan=0.0)
        with torch.inference_mode():
            out = self.head(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device))
        return out.float().cpu().numpy() + self.shift


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
