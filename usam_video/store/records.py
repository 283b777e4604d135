"""What the store hands out: a video's summary, its per-frame decisions, its mask history.

Frozen dataclasses over numpy arrays (no zarr): ``T`` frames, ``O`` objects, ``S`` score columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from usam_video.types import MaskSource, Status

__all__ = ["FrameTable", "HistoryEntry", "VideoSummary"]


@dataclass(frozen=True)
class VideoSummary:
    """What ``inspect`` shows of one video."""

    video_id: str
    complete: bool
    num_frames: int
    height: int
    width: int
    object_ids: tuple[int, ...]
    score_names: tuple[str, ...]
    status_counts: dict[str, int]
    provenance: dict[str, Any]
    fingerprint: str
    failure: str = ""  # why the last labelling of an incomplete video failed ("" if unknown)


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Every frame-object's decision and scores of one video.

    Attributes:
        status: ``uint8`` ``(T, O)``; reason: ``uint8`` ``(T, O)``; scores: ``float32`` ``(T, O, S)``.
    """

    video_id: str
    object_ids: tuple[int, ...]
    score_names: tuple[str, ...]
    reasons: tuple[str, ...]
    status: np.ndarray
    reason: np.ndarray
    scores: np.ndarray
    candidate_score_names: tuple[str, ...] = ()
    candidate_scores: np.ndarray | None = None  # float32 (T, O, K, C)
    source: np.ndarray | None = None  # uint8 (T, O) MaskSource
    revision: np.ndarray | None = None  # uint32 (T, O)

    def reason_label(self, code: int) -> str:
        return self.reasons[code - 1] if code else ""


@dataclass(frozen=True)
class HistoryEntry:
    """One replaced mask kept in a video's history (``index`` addresses its mask)."""

    index: int
    frame_index: int
    object_id: int
    revision: int
    source: MaskSource
    status: Status
