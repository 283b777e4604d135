"""What the store hands out: a video's summary, its per-frame decisions, its mask history.

Frozen dataclasses over numpy arrays (no zarr): ``T`` frames, ``O`` objects, ``S`` score columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from usam_video.types import MaskSource, Status

__all__ = ["FrameTable", "HistoryEntry", "VideoSummary", "WriteBatch", "WriteCounts"]


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
    fps: float | None = None  # the video's frame rate, when its dataset knows it
    review_round: int = 1  # the review round its last labelling planned in (1: the first pass)


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


@dataclass(frozen=True)
class WriteBatch:
    """A named batch of mask replacements (one import) as the store recorded it.

    Attributes:
        batch_id: the caller's id for the batch (an import: sha256 of its manifest and files).
        generation: the batch's generation, the ``revision`` of every mask it wrote.
        complete: every update of the batch landed; False for an interrupted batch, which a
            rerun with the same id resumes under the same generation.
        history: video id -> ``(start, end)``: the rows ``start <= i < end`` of the video's
            history are this batch's (``end`` is the row count so far while incomplete).
        key: what the batch belongs to (an import: the sha256 of its export's manifest), so a
            later batch of the same key can finish an interrupted one ("" when not given).
    """

    batch_id: str
    generation: int
    complete: bool
    history: dict[str, tuple[int, int]]
    key: str = ""


@dataclass(frozen=True)
class WriteCounts:
    """What :meth:`usam_video.store.VideoWriter.finish` wrote: frame-objects per status and per
    reason code, as finally written (after ``update_decisions``), counted from the writer's own
    bookkeeping, not read back from the store.

    Attributes:
        frames: frames written (``T``); objects: objects per frame (``O``).
        by_status: frame-objects per :class:`~usam_video.types.Status`, every status present
            (0 where none); the values sum to ``frames * objects``.
        by_reason: frame-objects per reason code (0 = no reason, ``i + 1`` = the video's
            ``reasons[i]``), only codes that occur.
        by_status_reason: frame-objects per ``(status, reason code)`` pair, only pairs that occur.
    """

    frames: int
    objects: int
    by_status: dict[Status, int]
    by_reason: dict[int, int]
    by_status_reason: dict[tuple[Status, int], int]

    @classmethod
    def count(cls, status: np.ndarray, reason: np.ndarray) -> WriteCounts:
        """Counts of ``uint8`` ``(T, O)`` status and reason codes."""
        frames, objects = status.shape
        pairs = status.astype(np.int64) * 256 + reason.astype(np.int64)
        codes, counts = np.unique(pairs.ravel(), return_counts=True)
        joint = {(Status(int(c) // 256), int(c) % 256): int(n) for c, n in zip(codes, counts, strict=True)}
        by_reason: dict[int, int] = {}
        for (_, code), n in joint.items():
            by_reason[code] = by_reason.get(code, 0) + n
        by_status = {s: sum(n for (t, _), n in joint.items() if t == s) for s in Status}
        return cls(frames, objects, by_status, dict(sorted(by_reason.items())), joint)

    def reasons_of(self, statuses: Iterable[Status]) -> dict[int, int]:
        """Frame-objects per reason code among those with one of ``statuses`` (e.g. the queued)."""
        wanted = set(statuses)
        out: dict[int, int] = {}
        for (status, code), n in self.by_status_reason.items():
            if status in wanted:
                out[code] = out.get(code, 0) + n
        return dict(sorted(out.items()))
