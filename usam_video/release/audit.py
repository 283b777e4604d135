"""The audit a release's risk is certified on: candidates whose truth is known.

Truth comes from the dataset's ground truth (:func:`ground_truth_audit`: every candidate
pseudo-label on an annotated frame), or from a person: ``usam-video audit`` draws a sample
(:func:`draw_audit`) and exports it for review, and the reviewed export is read back by
:func:`reviewed_audit`, which compares each sampled stored mask with the reviewer's mask and
writes nothing to the store. A label is *bad* when its IoU with the truth is below the
policy's ``bad_iou`` (0.5).

Sampling is stratified by confidence with proportional allocation: the candidates are cut
into ``strata`` bins of equal size by score and each bin gets its share of the sample, so every
candidate is equally likely to be drawn (what the binomial test of :mod:`.risk` assumes) while
the sample covers the whole score range evenly, including the top where a threshold falls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from usam_video.datasets import DatasetReader
from usam_video.errors import InputError
from usam_video.release.policy import VideoSelection
from usam_video.store import PseudoLabelStore

__all__ = ["AuditSet", "draw_audit", "ground_truth_audit", "mask_iou", "truth_ious"]


def mask_iou(pred: np.ndarray, truth: np.ndarray, void: np.ndarray | None = None) -> float:
    """IoU of two ``bool`` ``(H, W)`` masks, void pixels ignored; 1.0 when both are empty
    (an object correctly predicted absent)."""
    if void is not None:
        pred, truth = pred & ~void, truth & ~void
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


@dataclass(frozen=True, eq=False)
class AuditSet:
    """Audited candidates, ``N`` of them, in (video, frame, object) order.

    Attributes:
        video_ids: ``str`` ``(N,)`` (object array).
        frames, objects: ``int64`` ``(N,)``.
        iou: ``float64`` ``(N,)``: IoU of the stored mask with the truth.
        confidence: ``float64`` ``(N,)``: the release score as a confidence (NaN if missing).
        source: ``ground truth`` or ``review``.
    """

    video_ids: np.ndarray
    frames: np.ndarray
    objects: np.ndarray
    iou: np.ndarray
    confidence: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.iou.size)

    def bad(self, bad_iou: float) -> np.ndarray:
        """``bool`` ``(N,)``: the stored label is bad (IoU below ``bad_iou``)."""
        return self.iou < bad_iou

    def subset(self, index: np.ndarray) -> AuditSet:
        """The audit restricted to ``index`` (sorted, so the order stays canonical)."""
        index = np.sort(np.asarray(index, dtype=np.int64))
        return AuditSet(
            self.video_ids[index], self.frames[index], self.objects[index], self.iou[index],
            self.confidence[index], self.source,
        )  # fmt: skip

    def keys(self) -> list[tuple[str, int, int]]:
        """``(video, frame, object)`` of every audited candidate."""
        return [
            (str(v), int(t), int(o))
            for v, t, o in zip(self.video_ids, self.frames, self.objects, strict=True)
        ]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready rows (for ``audit.json``)."""
        return {
            "source": self.source,
            "items": [
                {
                    "video": v,
                    "frame": t,
                    "object": o,
                    "iou": float(i),
                    "confidence": None if not np.isfinite(c) else float(c),
                }
                for (v, t, o), i, c in zip(self.keys(), self.iou, self.confidence, strict=True)
            ],  # fmt: skip
        }


def _empty(source: str) -> AuditSet:
    return AuditSet(
        np.array([], dtype=object), np.array([], np.int64), np.array([], np.int64),
        np.array([], np.float64), np.array([], np.float64), source,
    )  # fmt: skip


def _concat(parts: Sequence[AuditSet], source: str) -> AuditSet:
    if not parts:
        return _empty(source)
    return AuditSet(
        np.concatenate([p.video_ids for p in parts]), np.concatenate([p.frames for p in parts]),
        np.concatenate([p.objects for p in parts]), np.concatenate([p.iou for p in parts]),
        np.concatenate([p.confidence for p in parts]), source,
    )  # fmt: skip


def truth_ious(
    store: PseudoLabelStore,
    reader: DatasetReader,
    video_id: str,
    object_ids: Sequence[int],
    wanted: np.ndarray,
) -> list[tuple[int, int, float]]:
    """``(frame, object position, IoU)`` of every ``wanted`` frame-object on a frame with ground
    truth: the IoU of the stored mask with the truth (void left out, 1 when both are empty).

    Args:
        object_ids: the video's ``O`` stored object ids.
        wanted: ``bool`` ``(T, O)``: the frame-objects to measure.
    """
    rows = []
    for t in reader.annotated_frames(video_id):
        if t >= wanted.shape[0] or not wanted[t].any():
            continue
        truth = reader.ground_truth(video_id, t)
        if truth is None:
            continue
        masks = store.read_masks(video_id, t)
        for k in np.flatnonzero(wanted[t]):
            rows.append((t, int(k), mask_iou(masks[k], truth.mask_of(int(object_ids[k])), truth.void)))
    return rows


def ground_truth_audit(
    store: PseudoLabelStore,
    selections: Mapping[str, VideoSelection],
    reader_of: Callable[[str], DatasetReader],
) -> AuditSet:
    """Every candidate (a pseudo-label the threshold decides on) on a frame with ground truth.

    Args:
        selections: per video, the policy applied without a threshold (its ``candidate`` and
            ``confidence``).
        reader_of: video id -> the dataset reader holding its ground truth.
    """
    parts = []
    for video_id, sel in selections.items():
        rows = truth_ious(store, reader_of(video_id), video_id, sel.object_ids, sel.candidate)
        if rows:
            parts.append(AuditSet(
                np.array([video_id] * len(rows), dtype=object),
                np.array([t for t, _, _ in rows], dtype=np.int64),
                np.array([sel.object_ids[k] for _, k, _ in rows], dtype=np.int64),
                np.array([iou for _, _, iou in rows], dtype=np.float64),
                np.array([sel.confidence[t, k] for t, k, _ in rows], dtype=np.float64),
                "ground truth",
            ))  # fmt: skip
    return _concat(parts, "ground truth")


def draw_audit(
    pool: AuditSet | Sequence[tuple[str, int, int, float]], n: int, seed: int, strata: int = 10
) -> np.ndarray:
    """Indices of an audit sample of ``n`` from ``pool``, stratified by confidence with
    proportional allocation (largest remainders); NaN confidences form a stratum of their own.

    Args:
        pool: an :class:`AuditSet`, or ``(video, frame, object, confidence)`` rows of candidates
            whose truth is not known yet (``usam-video audit``).

    Raises:
        InputError: ``n`` < 1 or more than the pool holds.
    """
    confidence = (
        pool.confidence
        if isinstance(pool, AuditSet)
        else np.array([row[3] for row in pool], dtype=np.float64)
    )
    total = confidence.size
    if not 1 <= n <= total:
        raise InputError(f"--n: expected an audit size in 1..{total} (the candidates), got {n}.")
    rng = np.random.default_rng(seed)
    finite = np.flatnonzero(np.isfinite(confidence))
    order = finite[np.argsort(confidence[finite], kind="stable")]
    bins = [b for b in np.array_split(order, max(1, min(strata, order.size))) if b.size]
    nan_stratum = np.flatnonzero(~np.isfinite(confidence))
    if nan_stratum.size:
        bins.append(nan_stratum)
    quota = np.array([b.size * n / total for b in bins])
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]:
        take[i] += 1
    chosen = [rng.choice(b, size=k, replace=False) for b, k in zip(bins, take, strict=True) if k]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
