"""Per-frame, per-object scores: SAM's own, mask-based baselines, and every USAM head.

Score columns (store order): ``sam_iou`` (SamScore), ``object_score`` (sigmoid of the object
logit), ``entropy`` (H_std, an uncertainty), ``stability`` (SAM's stability score), the video
features (``VIDEO_FEATURES``), then one per token head (``HeadSet.token_head_names``), each
evaluated on the chosen candidate's feature, then one per video head
(``HeadSet.video_head_names``: the chosen candidate's feature plus normalised score columns).
Heads with a registry ``shift`` (the ``*_gap`` heads, ``-0.5``) are shifted back so they read as
gaps in IoU. :meth:`Scorer.score_tensors` computes them all where the frame's tensors are (the
engine's device); :meth:`Scorer.__call__` does the same for a host record.

Candidate columns: for every decoder token ``k`` (0 single-mask, 1..3 multimask), SAM's
predicted IoU and every token head the registry marks ``per_candidate``.

The feature of candidate ``k`` follows the heads' pairing (:mod:`usam_video.heads.manifest`):
``concat(iou_token, mask_tokens[k])`` for ``"aligned"`` heads (the project's own), and
``concat(iou_token, mask_tokens[max(k - 1, 0)])`` for ``"reference"`` heads (the published
UncertainSAM sets), for the chosen mask and for every candidate alike.
"""

from __future__ import annotations

import copy
import weakref
from typing import Protocol

import numpy as np
import torch

from usam_video.errors import HeadsError
from usam_video.heads import HeadSet
from usam_video.heads.manifest import token_index
from usam_video.score_registry import VIDEO_FEATURES, score_info
from usam_video.scoring.fused import FusedHeads
from usam_video.types import FramePrediction, FrameScores


class ScoreInputs(Protocol):
    """What :meth:`Scorer.score_batch` reads from a batch of frames (the engine's
    ``FrameBatch``; scoring does not import the engine): ``inputs``, the keyword arguments of
    :meth:`Scorer.score_tensors` but ``video_features``, and ``video_features``."""

    inputs: dict[str, torch.Tensor]
    video_features: torch.Tensor


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
        self._on_device: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._candidate_rows = [i for i, n in enumerate(token_heads) if score_info(n).per_candidate]
        video_heads = heads.video_head_names if heads is not None else ()
        self._video = [_VideoHead.build(heads, name, device) for name in video_heads]  # type: ignore[arg-type]

    def _constants(self, device: torch.device, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """On ``device``, uploaded once: the heads' shifts ``float32`` ``(H,)``, the pairing's mask
        token of each of ``K`` candidates ``int64`` ``(K,)`` and the rows of the per-candidate
        heads ``int64``. (Indexing a device tensor with a Python list uploads the list every time,
        and on a GPU that upload waits for the device.)"""
        cached = self._on_device.get((device, k))
        if cached is None:
            cached = self._on_device[(device, k)] = (
                torch.from_numpy(self._shift).to(device),
                torch.tensor(token_index(self.pairing, k), dtype=torch.int64).to(device),
                torch.tensor(self._candidate_rows, dtype=torch.int64).to(device),
            )
        return cached

    def __call__(self, prediction: FramePrediction) -> FrameScores:
        """Every score of one frame (``float32``; NaN for untracked objects), on the CPU."""
        o = len(prediction.object_ids)
        features = prediction.video_features
        if features is None:  # a producer without video features: their columns read NaN
            features = np.full((o, len(VIDEO_FEATURES)), np.nan, np.float32)
        chosen = np.where(prediction.tracked, prediction.chosen_candidate, -1)

        def t(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, np.float32))

        columns, candidates = self.score_tensors(
            iou_tokens=t(prediction.iou_tokens),
            mask_tokens=t(prediction.mask_tokens),
            candidate_ious=t(prediction.candidate_ious),
            chosen=torch.from_numpy(np.asarray(chosen, np.int64)),
            object_score_logits=t(prediction.object_score_logits),
            entropy=t(prediction.entropy),
            stability=t(prediction.stability),
            video_features=t(features),
        )
        return self.frame_scores(prediction, columns.cpu().numpy(), candidates.cpu().numpy())

    def frame_scores(
        self, prediction: FramePrediction, columns: np.ndarray, candidates: np.ndarray
    ) -> FrameScores:
        """Wrap the host copies of :meth:`score_tensors`' outputs for ``prediction``'s frame."""
        return FrameScores(
            prediction.frame_index,
            prediction.object_ids,
            self.names,
            np.ascontiguousarray(columns, np.float32),
            self.candidate_names,
            np.ascontiguousarray(candidates, np.float32),
        )

    def score_batch(self, batch: ScoreInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`score_tensors` of a batch of frames (the engine's
        :class:`~usam_video.engine.FrameBatch`: the frames' rows stacked), on its device.

        Returns:
            ``float32`` ``(n*O, S)`` and ``(n*O, K, C)``: pass them to the batch's ``records``
            as extras, then to :meth:`frame_scores` per frame.
        """
        return self.score_tensors(**batch.inputs, video_features=batch.video_features)

    @torch.inference_mode()
    def score_tensors(
        self,
        *,
        iou_tokens: torch.Tensor,
        mask_tokens: torch.Tensor,
        candidate_ious: torch.Tensor,
        chosen: torch.Tensor,
        object_score_logits: torch.Tensor,
        entropy: torch.Tensor,
        stability: torch.Tensor,
        video_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every score of one frame, computed where the inputs are (the engine's device): no copy
        to the host, no wait.

        Args:
            iou_tokens: ``float32`` ``(O, D)``; mask_tokens: ``float32`` ``(O, K, D)``;
                candidate_ious: ``float32`` ``(O, K)``; object_score_logits, entropy,
                stability: ``float32`` ``(O,)``; video_features: ``float32`` ``(O, F)``.
            chosen: ``(O,)`` the chosen candidate, any real dtype; negative for an untracked
                object (whose scores come out NaN).

        Returns:
            ``float32`` ``(O, S)`` scores in :attr:`names` order and ``float32`` ``(O, K, C)``
            per-candidate scores in :attr:`candidate_names` order.
        """
        o, k = candidate_ious.shape
        tracked = chosen >= 0
        pick = chosen.clamp_min(0).long()
        rows = torch.arange(o, device=pick.device)
        device = candidate_ious.device
        # Constants made on the device (a fill kernel): a tensor built from host values would be
        # a blocking upload on a GPU, every frame.
        nan = torch.full((), float("nan"), device=device)
        sam_iou = torch.where(tracked, candidate_ious[rows, pick], nan)
        # The object score in float64, as the stored column always was (sigmoid of the logit).
        object_score = (1.0 / (1.0 + torch.exp(-object_score_logits.double()))).float()
        baseline = torch.stack([sam_iou, object_score, entropy.float(), stability.float()], dim=1)
        columns = torch.cat([baseline, video_features.float()], dim=1)
        candidates = candidate_ious.float()[:, :, None]
        if self._fused is not None and mask_tokens.shape[2] != self._fused.token_dim:
            raise HeadsError(
                f"heads from {self.heads.source}: expected {self._fused.token_dim}-d tokens, "  # type: ignore[union-attr]
                f"the model gives {mask_tokens.shape[2]}-d tokens. Use heads trained for this model."
            )
        shift, paired, candidate_rows = self._constants(device, k)
        if self._fused is not None:
            # (O, K, 2D): every candidate's IoU token beside the mask token its pairing sets there.
            features = torch.cat(
                [iou_tokens[:, None, :].expand(o, k, -1), mask_tokens.index_select(1, paired)],
                dim=2,
            ).reshape(o * k, -1)
            out = self._fused(features).float().reshape(len(self._fused), o, k)  # (H, O, K)
            per_head = out[:, rows, pick].T + shift  # (O, H)
            per_head = torch.where(tracked[:, None], per_head, nan)
            columns = torch.cat([columns, per_head], dim=1)
            if self._candidate_rows:
                candidates = torch.cat(
                    [candidates, out.index_select(0, candidate_rows).permute(1, 2, 0)], dim=2
                )
        if self._video:
            chosen_token = paired[pick]
            tokens = torch.cat([iou_tokens, mask_tokens[rows, chosen_token]], dim=1)
            tokens = torch.where(tracked[:, None], tokens, nan)
            video = torch.stack([head(tokens, columns) for head in self._video], dim=1)
            video = torch.where(tracked[:, None], video, nan)
            columns = torch.cat([columns, video], dim=1)
        candidates = torch.where(tracked[:, None, None], candidates, nan)
        return columns.float(), candidates.float()


class _VideoHead:
    """A head on ``concat(iou_token, mask_token, normalised extra inputs)``; the extra inputs are
    score columns computed before the heads (baselines and video features)."""

    def __init__(
        self,
        name: str,
        head: torch.nn.Module,
        columns: list[int],
        mean: np.ndarray,
        std: np.ndarray,
        shift: float,
        device: torch.device,
    ):
        # A copy: Module.to moves in place, and the same head set may be scored on the engine's
        # device and on the CPU (task swaps are rescored on the host) in one process.
        self.name, self.head, self.columns = name, copy.deepcopy(head).to(device).eval(), columns
        self.shift, self.device = shift, device
        # On the device once: the heads run where the frame's tensors are.
        self.mean = torch.from_numpy(mean).to(device)
        self.std = torch.from_numpy(std).to(device)
        self._columns = torch.tensor(columns, dtype=torch.int64).to(device)

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

    def __call__(self, tokens: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``float32`` ``(O, 2D)``, ``columns`` ``float32`` ``(O, S)`` -> ``float32`` ``(O,)``
        (on the inputs' device)."""
        extra = (columns.index_select(1, self._columns) - self.mean) / self.std
        # A missing input (entropy after a candidate swap, an untracked object) sits at the mean.
        x = torch.nan_to_num(torch.cat([tokens, torch.nan_to_num(extra, nan=0.0)], dim=1), nan=0.0)
        return self.head(x.to(self.device, torch.float32)).float().reshape(-1) + self.shift


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
