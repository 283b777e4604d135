"""Shards: a run of many videos cut into tasks of several videos each.

A task per video costs the flow's process a Prefect task run (its future, states and result
record) and the video's frame table, which the run budget, the score plots and the review report
read. Both grow with the run: at SA-V's size (about 50,000 videos, 340 frames and 13 masklets a
video) the frame tables alone are ~11 GB and the task runs ~3 GB. So above :data:`SHARD_FROM`
videos the flow maps *shards* (:func:`shard_size_for`: at most :data:`MAX_TASKS` tasks a run),
and a shard's task hands back, per video, only what the flow's later steps need
(:class:`DigestedVideo`): its summary row, its review plan and its report digest (rank,
worst frames, counts), computed in the worker that labelled it. The flow's process then holds
a few kilobytes a video whatever the videos' length.

A shard retries each video as the per-video task does (transient errors twice, never bad input)
and reports a video that still fails as failed, so one bad video never fails its shard. A shard
whose worker dies (a kill, a lost host) is given to a worker again: its finished videos are
skipped as complete, and the video it was writing is taken over once the dead writer's claim
has lapsed (:mod:`usam_video.store.claims`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from usam_video.errors import NOT_RETRIED, EvaluationError
from usam_video.pipeline.context import RunContext
from usam_video.pipeline.label import SKIPPED_HELD, LabelledVideo, label_video
from usam_video.pipeline.report.digest import VideoDigest, digest_video
from usam_video.store import LEASE_S, PseudoLabelStore
from usam_video.types import VideoResult

__all__ = [
    "MAX_TASKS",
    "SHARD_FROM",
    "DigestedVideo",
    "held_elsewhere",
    "label_shard",
    "wait_for_claims",
    "shard_size_for",
    "shards",
]

#: Up to this many videos a run has one task per video (each video its own retries, states and
#: row in the dashboard); above it, shards.
SHARD_FROM = 1_000
#: A sharded run has at most this many tasks: ~60 MB of Prefect task runs in the flow's process.
MAX_TASKS = 1_000


def shard_size_for(videos: int) -> int:
    """Videos per task for a run of ``videos`` videos: 1 up to :data:`SHARD_FROM`, else the
    smallest size that keeps the run within :data:`MAX_TASKS` tasks."""
    if videos <= SHARD_FROM:
        return 1
    return math.ceil(videos / MAX_TASKS)


def shards(video_ids: Sequence[str], size: int) -> list[list[str]]:
    """``video_ids`` cut into consecutive lists of ``size`` (the last one shorter).

    Raises:
        ValueError: ``size`` below 1.
    """
    if size < 1:
        raise ValueError(f"shard size: expected at least 1 video, got {size}.")
    return [list(video_ids[i : i + size]) for i in range(0, len(video_ids), size)]


@dataclass(frozen=True, eq=False)
class DigestedVideo(VideoResult):
    """A video's summary row with what a sharded run's flow needs of it, and no frame table.

    Attributes:
        plan: the video's review plan entries (the store's, rank order).
        digest: its report digest; None for a failed video or one without a score to rank by.
    """

    plan: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)
    digest: VideoDigest | None = field(default=None, repr=False, compare=False)


def _digested(store: PseudoLabelStore, result: VideoResult) -> VideoResult:
    """``result`` with its plan and digest, its frame table dropped."""
    if result.outcome == "failed":
        return result
    # A labelled video was completed by this very call; a skipped one may be held elsewhere.
    if not isinstance(result, LabelledVideo) and not store.is_complete(result.video_id):
        return result
    table = result.table if isinstance(result, LabelledVideo) else None
    if isinstance(result, LabelledVideo):
        plan: Sequence[dict[str, Any]] = result.plan
    else:  # skipped: labelled by an earlier run (or an earlier try of this shard)
        plan = sorted(store.review_plan(result.video_id).values(), key=lambda e: int(e["rank"]))
    try:
        digest = digest_video(store, result.video_id, table=table, plan=plan)
    except EvaluationError:  # nothing to rank by: the report lists it without a rank
        digest = None
    return DigestedVideo(**vars(result.summary()), plan=tuple(plan), digest=digest)


def label_shard(
    context: RunContext, video_ids: Sequence[str], retries: int = 2, retry_delay_s: float = 5.0
) -> list[VideoResult]:
    """Label a shard's videos in order, each as :func:`~usam_video.pipeline.label_video` does,
    into the run's store; one result per video (:class:`DigestedVideo` for a stored one).

    A video whose labelling raises is tried again ``retries`` times, ``retry_delay_s`` apart,
    unless the error is one that a retry cannot mend (:data:`usam_video.errors.NOT_RETRIED`:
    bad input, a refused write, a damaged video); a video that still fails gets a ``failed``
    row with the error, and the shard goes on.
    """
    store = context.store
    out: list[VideoResult] = []
    for video_id in video_ids:
        for attempt in range(retries + 1):
            try:
                result = label_video(context, video_id, store)
                break
            except Exception as exc:  # reported in the video's row, as the per-video task's are
                if isinstance(exc, NOT_RETRIED) or attempt == retries:
                    result = VideoResult(video_id, "failed", error=f"{type(exc).__name__}: {exc}")
                    break
                time.sleep(retry_delay_s)
        out.append(_digested(store, result))
    return out


def held_elsewhere(results: Sequence[VideoResult]) -> list[str]:
    """The videos a run skipped because another writer held their claim (see
    :data:`~usam_video.pipeline.label.SKIPPED_HELD`)."""
    return [r.video_id for r in results if r.outcome == "skipped" and r.error.startswith(SKIPPED_HELD)]


def wait_for_claims(
    store: PseudoLabelStore, video_ids: Sequence[str], timeout_s: float = LEASE_S + 30.0, poll_s: float = 2.0
) -> list[str]:
    """Wait until each of ``video_ids`` is free (its claim released, or its lease lapsed: a writer
    on a host that died) or proven held by a live writer (its lease was renewed while we
    waited), or until ``timeout_s`` passes (default: one lease and a margin); the videos still
    held then, sorted.

    A run that found a video claimed skips it, since the holder may be another run writing it;
    but the holder may also be a worker killed on another host (its task given to a worker
    again, which found the claim), and then nobody writes the video. Waiting out the claims
    that nobody renews, then labelling those videos again (complete ones are skipped), ends
    every run with every video written once, whichever case it was.
    """
    waiting = set(video_ids)
    first_expiry: dict[str, float] = {}
    renewed: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        live = {c.video_id: c for c in store.claims() if c.live and c.video_id in waiting}
        for video_id, claim in live.items():
            if claim.expires_at > first_expiry.setdefault(video_id, claim.expires_at):
                renewed.add(video_id)  # a live writer: it will finish the video itself
        waiting = set(live) - renewed
        if not waiting or time.monotonic() >= deadline:
            return sorted(set(live) | renewed)
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
