"""Pseudo-labelling: the functions the labelling flow and ``usam-video run`` call.

``label_video`` is the whole per-video path: read, propagate with token capture, score,
decide, write. Heavy objects (the SAM 2 model, the heads) are built once per process and
reused across videos.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from usam_video.background import BackgroundConsumer
from usam_video.config import RunConfig, config_fingerprint
from usam_video.engine import PropagationSession, flush_due
from usam_video.errors import UsamVideoError
from usam_video.pipeline.context import RunContext, load_context
from usam_video.pipeline.provenance import run_config_of
from usam_video.review.budget import BudgetInput, plan_budget, review_round, round_share, video_limit
from usam_video.scoring import Scorer, score_frame
from usam_video.scoring.policy import OVER_BUDGET, FrameDecision, decide_frame
from usam_video.store import FrameTable, PseudoLabelStore, VideoWriter, WriteCounts
from usam_video.types import (
    FramePrediction,
    FrameScores,
    MaskUpdate,
    ObjectPrompt,
    Status,
    VideoRef,
    VideoResult,
)

if TYPE_CHECKING:  # the engine's frame type loads torch: named here for annotations only
    from usam_video.engine.frames import DeviceFrame

__all__ = [
    "SKIPPED_COMPLETE",
    "SKIPPED_HELD",
    "code_version",
    "label_video",
    "label_dataset",
    "untrained_warnings",
    "unprompted_warnings",
    "run_fingerprint",
    "run_config_of",
    "relabel_videos",
    "scored_frames",
    "apply_run_budget",
    "share_run_budget",
    "video_result",
    "run_score_values",
    "stored_videos",
    "LabelledVideo",
    "run_score_plot",
]

log = logging.getLogger(__name__)

#: Why a video was skipped, in its result row (the run's table and the flow's summary artifact).
SKIPPED_COMPLETE = "already complete under this config"
#: The start of a skipped row's reason when another writer holds the video's claim (its owner
#: follows): the flow waits for such claims at the end and labels what they left undone.
SKIPPED_HELD = "being labelled by"


def code_version() -> str:
    """The installed usam-video version (recorded in provenance)."""
    try:
        return version("usam-video")
    except PackageNotFoundError:
        return "unknown"


def run_fingerprint(run: RunConfig) -> str:
    """Identifies the output of a run: dataset, model, heads, policy and code version.

    The store path and the selection of videos are left out: the same labels written
    elsewhere, or a run over more videos, leave a labelled video current.
    """
    dataset = run.dataset.model_copy(update={"videos": None, "split": None, "name": ""})
    payload = run.model_copy(update={"store": "", "name": "", "gpu_concurrency": 1, "dataset": dataset})
    return f"{config_fingerprint(payload)}-{code_version()}"


def untrained_warnings(context: RunContext) -> list[str]:
    """Plain-language warnings when masks or scores come from random weights."""
    out = []
    if context.run.model.random_init:  # from the config: the flow's process builds no SAM 2
        out.append(
            f"model {context.run.model.name!r} has RANDOM weights (random_init: true): its masks are "
            "not real segmentations. Point 'checkpoint' at a SAM 2 checkpoint for real pseudo-labels."
        )
    if context.heads is not None and context.heads.untrained:
        out.append("USAM heads are RANDOMLY initialised (random_init: true): their scores carry no meaning.")
    if context.heads is not None and context.heads.missing:
        out.append(f"USAM heads missing from {context.heads.source}: {list(context.heads.missing)}.")
    return out


def unprompted_warnings(context: RunContext, video_ids: Sequence[str]) -> list[str]:
    """One line per video whose ground truth holds objects no prompt starts (DAVIS semantics:
    an object entering after the first frame is never tracked), naming them and the remedy."""
    out = []
    for video_id in video_ids:
        try:
            unprompted = context.reader.unprompted_objects(video_id)
        except UsamVideoError:
            continue  # the video's own labelling reports what is wrong with it
        if unprompted:
            entered = ", ".join(f"{obj} (frame {frame})" for obj, frame in sorted(unprompted.items()))
            out.append(
                f"video {video_id!r}: objects {entered} enter after the first frame and will not be "
                "tracked (DAVIS semantics); set 'late_objects: true' in the dataset config to prompt "
                "them where they enter"
            )
    return out


def _provenance(context: RunContext) -> dict[str, Any]:
    model, heads = context.model, context.heads
    import torch

    return {
        # The whole run config, so that a store alone suffices to relabel a video later.
        "run_config": context.run.model_dump(mode="json"),
        "model_name": context.run.model.name,
        "sam2_config": str(model.config_path),
        "checkpoint_sha256": model.checkpoint_sha256,
        "model_untrained": model.untrained,
        "heads_source": heads.source if heads else "none",
        "heads_sha256": heads.sha256 if heads else "none",
        "heads_untrained": heads.untrained if heads else False,
        "heads_pairing": heads.pairing if heads else "none",
        "policy": context.run.policy.model_dump(mode="json"),
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "code_version": code_version(),
        "sam2_version": _dist_version("sam2"),
        "torch_version": torch.__version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def prompts_with_corrections(
    prompts: list[ObjectPrompt], corrections: list[MaskUpdate]
) -> tuple[list[ObjectPrompt], set[tuple[int, int]]]:
    """The dataset's prompts plus every human correction as a mask prompt (a correction on a
    prompt's own frame replaces it). Returns the prompts and the corrected (frame, object) keys."""
    merged = {(p.frame_index, p.object_id): p for p in prompts}
    corrected = set()
    for c in corrections:
        merged[(c.frame_index, c.object_id)] = ObjectPrompt(c.object_id, c.frame_index, mask=c.mask)
        corrected.add((c.frame_index, c.object_id))
    return sorted(merged.values(), key=lambda p: (p.frame_index, p.object_id)), corrected


def label_video(
    context: RunContext, video_id: str, store: PseudoLabelStore | None = None, force: bool = False
) -> VideoResult:
    """Pseudo-label one video into the run's store; skip it if already complete and current.

    Human corrections already in the store are kept: they become SAM 2 conditioning frames
    (mask prompts) of the new propagation, so every frame's memory holds them, and they are
    written back unchanged with status ``corrected``. Prompt masks are stored exactly as given.

    Input is validated (frames listed, first-frame masks read) before the store is touched, so
    a bad video never damages what is stored. Raises :class:`UsamVideoError` subclasses for bad
    input; the flow reports those as failed videos.

    Args:
        force: relabel even if the video is complete under the same config (after corrections).
    """
    started = time.perf_counter()
    run = context.run
    store = store or PseudoLabelStore.open(run.store_path, storage_options=run.storage_options)
    fingerprint = run_fingerprint(context.run)
    done_under = store.completed_under(video_id)  # one read of the video's metadata
    if done_under is not None:
        # A damaged chunk is reported, never skipped as complete nor relabelled over (its
        # corrections are read from it); an incomplete video holds nothing kept and is redone.
        store.require_intact(video_id)
    if not force and done_under == fingerprint:
        skipped = video_result(store, video_id, "skipped", time.perf_counter() - started)
        return replace(skipped, error=SKIPPED_COMPLETE)
    ref = context.reader.video(video_id)
    prompts, corrected = prompts_with_corrections(
        context.reader.prompts(video_id), store.corrections(video_id)
    )
    # One writer per video: a second worker (or a concurrent flow run) that reaches the same
    # video skips it instead of writing it too.
    holder = store.claim(video_id)
    if holder is not None:
        return VideoResult(video_id, "skipped", error=f"{SKIPPED_HELD} {holder}")
    try:
        if not force and store.is_complete(video_id, fingerprint):  # finished while we waited
            return VideoResult(
                video_id, "skipped", seconds=time.perf_counter() - started, error=SKIPPED_COMPLETE
            )
        # The claim's lease is renewed while the video is written (a thread: see ClaimRenewal),
        # so a long video keeps it and a host that dies frees it within one lease.
        with store.keep_claim(video_id):
            return _label_claimed(context, store, video_id, ref, prompts, corrected, fingerprint, started)
    except Exception as exc:  # e.g. an mp4 broken mid-way: inspect and queue say why it is incomplete
        store.record_failure(video_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.release(video_id)


def _label_claimed(
    context: RunContext,
    store: PseudoLabelStore,
    video_id: str,
    ref: VideoRef,
    prompts: list[ObjectPrompt],
    corrected: set[tuple[int, int]],
    fingerprint: str,
    started: float,
) -> VideoResult:
    """Label a claimed video (see :func:`label_video`): read, propagate, score, decide, write.

    This thread only drives SAM 2: each propagated frame goes, as sam2 left it on the device,
    to a background thread that assembles it, scores it, decides and hands it to the store's
    writer (its own thread), while SAM 2 already works on the next frame.
    """
    frames = context.reader.frames(video_id)
    # Candidate masks are upsampled only when the policy may swap one in. No backbone warm-up:
    # the first prompt computes frame 0's features anyway, and the store is still being set up.
    session = PropagationSession(
        context.model, frames, keep_candidates=context.policy.swaps_candidates, warm_up=False
    )
    for prompt in prompts:
        session.add_prompt(prompt)  # checked here, before the store is touched
    prompt_masks = {(p.frame_index, p.object_id): p.mask for p in prompts if p.mask is not None}
    # The store's arrays are created on a thread of their own while SAM 2 starts propagating:
    # ~6 ms of CPU (store/nodes.py; half a frame of SAM 2.1 tiny on a GPU), which SAM 2's first
    # frame need not wait for. On a 2-core CPU, running it first instead measures the same.
    pending_writer = _begin_in_background(
        store,
        ref,
        session.object_ids,
        context.score_names,
        context.policy.reasons,
        _provenance(context),
        fingerprint,
        candidate_score_names=context.scorer.candidate_names,
        num_candidates=context.model.num_mask_tokens,
    )
    object_ids = tuple(int(o) for o in session.object_ids)
    written = _Written.for_video(ref.num_frames, len(object_ids), len(context.score_names))
    finish_frame = _frame_finisher(
        context,
        session,
        pending_writer,
        prompt_masks,
        corrected,
        written,
        batch=FINISH_BATCH,
        last_frame=ref.num_frames - 1,
    )
    try:
        with BackgroundConsumer(finish_frame, maxsize=2, name=f"usam-finish-{video_id}") as consumer:
            for frame in session.propagate_device():
                consumer.put(frame)
            consumer.put(None)  # the last, partial batch
        writer = pending_writer.result()
        plan = _plan_human_reviews(context, store, video_id, object_ids, written, writer, len(corrected))
        counts = writer.finish()
    except BaseException:
        # The store's set-up may still run: wait for it, then stop its writer without completing.
        if pending_writer.exception() is None:
            pending_writer.result().abort()
        raise
    finally:
        session.close()
    seconds = time.perf_counter() - started
    table = written.table(video_id, object_ids, context.score_names, context.policy.reasons)
    sam_iou = table.scores[..., table.score_names.index("sam_iou")]
    row = _result_row(video_id, counts, sam_iou, table.reasons, seconds, "labelled")
    return LabelledVideo.of(row, table, plan)


def _begin_in_background(store: PseudoLabelStore, *args: Any, **kwargs: Any) -> Future[VideoWriter]:
    """``store.begin_video(*args, **kwargs)`` on a short-lived thread; its errors surface from
    the returned future's ``result()``."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usam-begin")
    try:
        return pool.submit(store.begin_video, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)  # the thread ends once begin_video has returned


def scored_frames(
    session: PropagationSession, scorer: Scorer, batch: int = 0
) -> Iterator[tuple[FramePrediction, FrameScores]]:
    """Propagate ``session`` and score every frame on the engine's device, as the label loop
    does (the same batches, so the same scores bit for bit), on this thread: each frame's host
    record and its scores, in frame order. ``batch``: frames per scoring call (default
    :data:`FINISH_BATCH`, the label loop's)."""
    import torch

    for held in session.batches(batch or FINISH_BATCH):
        with torch.inference_mode():
            records = held.records(scorer.score_batch(held))
        for prediction, (columns, candidates) in records:
            yield prediction, scorer.frame_scores(prediction, columns, candidates)


#: Frames whose video features and USAM heads run as one batch on the finishing thread. The nine
#: heads read ~19 MB of weights per call whatever the number of rows, so on a CPU scoring one
#: frame at a time is memory-bound (and its traffic slows SAM 2 on the other core); four frames
#: per call read them a quarter as often. The video features of four frames take ~30 device
#: operations a frame instead of ~110: each is a kernel launch on a GPU, and on the CPU a
#: hand-over of the interpreter lock that SAM 2's own thread then waits for. A frame's record
#: lands at most three frames later, and the finishing thread holds four frames' masks.
FINISH_BATCH = 4


def _frame_finisher(
    context: RunContext,
    session: PropagationSession,
    pending_writer: Future[VideoWriter],
    prompt_masks: dict[tuple[int, int], np.ndarray],
    corrected: set[tuple[int, int]],
    written: _Written,
    *,
    batch: int,
    last_frame: int,
) -> Callable[[DeviceFrame | None], None]:
    """The host work of the frames, in frame order on the background thread: take each frame on
    the device (its masks thresholded, its numbers packed), compute the video features of
    ``batch`` frames and score them at once on the device, two copies to the host per frame,
    decide, hand to the writer. ``None`` finishes the frames still held (the last batch).

    The batches are cut by :func:`~usam_video.engine.flush_due`, as every propagation's are
    (:meth:`PropagationSession.batches`): the frames held are also finished once frame
    ``last_frame - 1`` arrives, batch full or not, while SAM 2 still works on the last frame."""
    import torch

    assembler = session.assembler(batch=batch)
    scorer = context.scorer

    def rescore(prediction: FramePrediction) -> FrameScores:
        return score_frame(prediction, context.heads)

    def finish_held() -> None:
        with torch.inference_mode():
            held = assembler.flush_batch()  # the batch's video features in one pass
            if held is None:
                return
            records = held.records(scorer.score_batch(held))
        writer = pending_writer.result()  # set up by now, but for the first frames
        for prediction, (host_columns, host_candidates) in records:
            scores = scorer.frame_scores(prediction, host_columns, host_candidates)
            # A task swap rescores its frame on the host (the heads' CPU copy): no device round trip.
            decision = decide_frame(prediction, scores, context.policy, rescore, prompt_masks, corrected)
            writer.write_frame(
                prediction.frame_index,
                decision.masks,
                decision.scores.values,
                decision.status,
                decision.reason,
                decision.scores.candidate_values,
                decision.source,
            )
            written.record(prediction, decision)

    def finish_frame(frame: DeviceFrame | None) -> None:
        if frame is not None:
            with torch.inference_mode():
                assembler.add(frame)  # in order: the video features' state
        if frame is None or flush_due(frame.frame_index, assembler.pending, batch, last_frame + 1):
            finish_held()

    return finish_frame


@dataclass(frozen=True, eq=False)
class LabelledVideo(VideoResult):
    """A labelled video's summary row and what the label loop wrote, so that the run's later
    steps (the run budget, the score plots, the review report) never read it back.

    Attributes:
        table: the video's frame table as written (candidate scores and revisions left out).
        plan: the review plan kept for the video (the store's entries, rank order).
    """

    table: FrameTable | None = field(default=None, repr=False, compare=False)
    plan: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, row: VideoResult, table: FrameTable | None, plan: Sequence[dict[str, Any]]) -> LabelledVideo:
        """``row`` with its video's frame table and review plan."""
        return cls(**_row_fields(row), table=table, plan=tuple(plan))


def _row_fields(row: VideoResult) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(VideoResult)}


@dataclass
class _Written:
    """The label loop's own record of what it hands to the writer, frame by frame, and of the
    review planner's inputs: the loop never reads back what it has just written.

    Attributes:
        status, reason, source: ``uint8`` ``(T, O)``; scores: ``float32`` ``(T, O, S)`` (NaN
            where untracked).
        tracked: ``bool`` ``(T, O)``: the engine tracked the object on the frame.
    """

    status: np.ndarray
    reason: np.ndarray
    source: np.ndarray
    scores: np.ndarray
    tracked: np.ndarray

    @classmethod
    def for_video(cls, num_frames: int, num_objects: int, num_scores: int) -> _Written:
        shape = (num_frames, num_objects)
        return cls(
            np.zeros(shape, np.uint8),
            np.zeros(shape, np.uint8),
            np.zeros(shape, np.uint8),
            np.full((*shape, num_scores), np.nan, np.float32),
            np.zeros(shape, bool),
        )

    def record(self, prediction: FramePrediction, decision: FrameDecision) -> None:
        t = prediction.frame_index
        self.status[t] = decision.status
        self.reason[t] = decision.reason
        self.source[t] = decision.source
        self.scores[t] = decision.scores.values
        self.tracked[t] = prediction.tracked

    def table(
        self, video_id: str, object_ids: Sequence[int], score_names: Sequence[str], reasons: Sequence[str]
    ) -> FrameTable:
        return FrameTable(
            video_id=video_id,
            object_ids=tuple(int(o) for o in object_ids),
            score_names=tuple(score_names),
            reasons=tuple(reasons),
            status=self.status,
            reason=self.reason,
            scores=self.scores,
            source=self.source,
        )


def _plan_human_reviews(
    context: RunContext,
    store: PseudoLabelStore,
    video_id: str,
    object_ids: tuple[int, ...],
    written: _Written,
    writer: VideoWriter,
    spent: int,
) -> list[dict[str, Any]]:
    """Spend what is left of the video's human budget (``spent``: its frame-objects humans
    corrected in earlier rounds, kept as they are): the review planner picks which queued
    frame-objects go to people; the others are accepted with reason ``over_human_budget``; the
    plan, marked with its review round, is kept and returned (the store's entries)."""
    budget = context.run.policy.human_budget
    for_humans = written.status == Status.QUEUED_HUMAN
    # Corrections outlive every relabel, so a video without any has had no import yet: its
    # first round, without reading the store's batch records.
    in_round = review_round(store.batches(), video_id) if spent else 1
    if budget is None or not for_humans.any():
        if in_round > 1:
            writer.set_review_plan([], in_round)  # where its review stands, with no pick
        return []
    priority = written.scores[..., context.score_names.index(budget.priority)].astype(np.float64)
    plan = plan_budget(
        [BudgetInput(video_id, object_ids, priority, written.tracked, for_humans)],
        budget,
        video_limit(budget, int(for_humans.sum()), for_humans.size, spent, rounds_done=in_round - 1),
    )
    dropped = plan.dropped[video_id]
    if dropped:
        frames, objects = (np.array(column) for column in zip(*dropped, strict=True))
        code = context.policy.reasons.index(OVER_BUDGET) + 1
        writer.update_decisions(frames, objects, Status.ACCEPTED, code)
        written.status[frames, objects] = Status.ACCEPTED
        written.reason[frames, objects] = code
    entries = plan.entries(video_id, in_round)
    writer.set_review_plan(entries, in_round)
    return entries


def video_result(store: PseudoLabelStore, video_id: str, outcome: str, seconds: float) -> VideoResult:
    """A video's summary row from the store: counts by status and by queue reason, and the mean
    and lowest SAM predicted IoU of its tracked frame-objects."""
    table = store.frame_table(video_id)
    sam = table.scores[..., table.score_names.index("sam_iou")]
    counts = WriteCounts.count(table.status, table.reason)
    return _result_row(video_id, counts, sam, table.reasons, seconds, outcome)


def _result_row(
    video_id: str,
    counts: WriteCounts,
    sam_iou: np.ndarray,
    reasons: Sequence[str],
    seconds: float,
    outcome: str,
) -> VideoResult:
    """The summary row of a video's counts and its ``float32`` ``(T, O)`` SAM predicted IoUs
    (NaN where untracked; ``reasons[i]`` is reason code ``i + 1``)."""
    by_reason: dict[str, int] = {}
    for code, n in counts.reasons_of([Status.QUEUED_REFINE, Status.QUEUED_HUMAN]).items():
        label = reasons[code - 1] if code else ""
        by_reason[label] = by_reason.get(label, 0) + n
    tracked = np.isfinite(sam_iou)
    return VideoResult(
        video_id,
        outcome,
        frames=counts.frames,
        objects=counts.objects,
        accepted=counts.by_status[Status.ACCEPTED],
        queued_refine=counts.by_status[Status.QUEUED_REFINE],
        queued_human=counts.by_status[Status.QUEUED_HUMAN],
        refined=counts.by_status[Status.REFINED],
        corrected=counts.by_status[Status.CORRECTED],
        mean_predicted_iou=float(sam_iou[tracked].mean()) if tracked.any() else math.nan,
        min_predicted_iou=float(sam_iou[tracked].min()) if tracked.any() else math.nan,
        queued_by_reason=", ".join(f"{k}: {v}" for k, v in sorted(by_reason.items())),
        seconds=seconds,
    )


def stored_videos(store: PseudoLabelStore, results: Sequence[VideoResult]) -> list[LabelledVideo]:
    """The complete videos among a run's ``results``, each with its frame table and review plan:
    as the label loop returned them, or, for a video it skipped (labelled before), read from
    the store once."""
    out = []
    for r in results:
        if isinstance(r, LabelledVideo) and r.table is not None:
            out.append(r)
        elif r.outcome != "failed" and store.is_complete(r.video_id):
            plan = sorted(store.review_plan(r.video_id).values(), key=lambda e: int(e["rank"]))
            out.append(LabelledVideo.of(r, store.frame_table(r.video_id), plan))
    return out


def run_score_values(videos: Sequence[LabelledVideo]) -> dict[str, np.ndarray]:
    """Every score of a run's videos, flattened over tracked frame-objects (``float32`` ``(N,)``
    per score name), for the run's score plots."""
    values: dict[str, list[np.ndarray]] = {}
    for video in videos:
        table = video.table
        assert table is not None  # stored_videos gives every video its table
        tracked = table.status != Status.NOT_STARTED
        for i, name in enumerate(table.score_names):
            values.setdefault(name, []).append(table.scores[..., i][tracked])
    return {name: np.concatenate(parts) for name, parts in values.items()}


def run_score_plot(run_name: str, videos: Sequence[LabelledVideo], path: Path) -> Path | None:
    """Histograms of every score of a run's videos (PNG at ``path``); None when there is none."""
    from usam_video.evaluation.plots import plot_score_histograms

    values = run_score_values(videos)
    if not values:
        return None
    return plot_score_histograms(
        {k: v.tolist() for k, v in values.items()}, path, title=f"scores of run {run_name}"
    )


def relabel_videos(
    store_path: str | Path, video_ids: Sequence[str], *, run_budget: bool = True
) -> list[VideoResult]:
    """Propagate videos again with the run config they were labelled with (after corrections):
    each correction becomes a conditioning frame and is kept as is. Each video plans what its
    human budget has left (a new review round); with ``run_budget`` the relabelled videos then
    share what the run's ``max_per_run`` has left (:func:`share_run_budget`)."""
    store = PseudoLabelStore.open(store_path)
    results = []
    # Each video's own stored config, which may differ from video to video: one context per
    # distinct config, shared by the videos labelled under it.
    contexts: dict[str, RunContext] = {}
    for video_id in video_ids:
        run = run_config_of(store, video_id).model_copy(update={"store": str(store_path)})
        key = run.model_dump_json()
        if key not in contexts:
            contexts[key] = load_context(run)
        results.append(label_video(contexts[key], video_id, store, force=True))
    return share_run_budget(store, results) if run_budget else results


def share_run_budget(
    store: PseudoLabelStore | str | Path, results: Sequence[VideoResult]
) -> list[VideoResult]:
    """The run budget (``max_per_run``) of videos relabelled after an import: ``results``, each
    relabelled video's plan cut where the run has less left than the videos ask for.

    The run is the store's videos. The relabelled videos (the ``labelled`` rows of ``results``)
    share, by the review planner's expected gain, at most ``max_per_run`` less every correction
    already made in the store's videos, less the frame-objects still queued for humans in its
    other videos: picks already handed to curators keep their place, and the new round gets the
    rest. Videos are grouped by the human budget they were labelled with (one group when they
    share a run config); a group counts every video outside it as the store holds it now.
    """
    labelled = [r for r in results if isinstance(r, LabelledVideo) and r.table is not None]
    if not labelled:
        return list(results)
    store = PseudoLabelStore.opened(store, mode="a")
    groups: dict[str, tuple[RunConfig, list[LabelledVideo]]] = {}
    for video in labelled:
        run = run_config_of(store, video.video_id)
        budget = run.policy.human_budget
        if budget is not None and budget.max_per_run is not None:
            groups.setdefault(budget.model_dump_json(), (run, []))[1].append(video)
    summaries = store.summaries() if groups else []
    shared: dict[str, VideoResult] = {}
    for run, videos in groups.values():
        inside = {v.video_id for v in videos}
        counts = [s.status_counts for s in summaries if s.video_id not in inside]
        reserved = sum(c.get(Status.CORRECTED.label, 0) + c.get(Status.QUEUED_HUMAN.label, 0) for c in counts)
        capped, _ = apply_run_budget(run, store, videos, reserved=reserved)
        shared.update({v.video_id: v for v in capped})
    return [shared.get(r.video_id, r) for r in results]


def apply_run_budget(
    run: RunConfig, store: PseudoLabelStore, videos: Sequence[LabelledVideo], *, reserved: int = 0
) -> tuple[list[LabelledVideo], int]:
    """Cap the frame-objects queued for humans across a run's videos (``max_per_run``, a total
    over every review round): what is left of it after the corrections already made in
    ``videos`` and the ``reserved`` frame-objects (the run's other videos' corrections and
    queued picks, see :func:`share_run_budget`) goes where the review planner expects the most
    gain, across videos; the rest are accepted with reason ``over_human_budget`` and each
    video's review plan is rewritten (its round kept), in the store and in the returned videos'
    tables. Returns the videos and how many frame-objects were turned away."""
    budget = run.policy.human_budget
    if budget is None or budget.max_per_run is None:
        return list(videos), 0
    spent = 0
    inputs = []
    for video in videos:
        table = video.table
        assert table is not None  # stored_videos gives every video its table
        spent += int((table.status == Status.CORRECTED).sum())
        inputs.append(
            BudgetInput(
                video.video_id,
                table.object_ids,
                table.scores[..., table.score_names.index(budget.priority)],
                table.status != Status.NOT_STARTED,
                table.status == Status.QUEUED_HUMAN,
            )
        )
    # This round's share of what the run has left, the round being the latest of its videos'.
    in_round = max((_plan_round(v) for v in videos), default=1)
    left = round_share(max(0, budget.max_per_run - spent - reserved), budget.rounds - in_round + 1)
    if sum(int(i.queued.sum()) for i in inputs) <= left:
        return list(videos), 0
    # The planner ranks runs across every video of the run: the run budget goes to the
    # corrections with the largest expected gain wherever they are.
    plan = plan_budget(inputs, budget, left)
    picked = {p.video_id for p in plan.picks}
    out = []
    for video in videos:
        dropped = plan.dropped[video.video_id]
        if not dropped and video.video_id not in picked:
            out.append(video)
            continue
        table = video.table
        assert table is not None
        ids = table.object_ids
        store.set_decisions(video.video_id, [(t, ids[o]) for t, o in dropped], Status.ACCEPTED, OVER_BUDGET)
        entries = plan.entries(video.video_id, _plan_round(video))
        store.set_review_plan(video.video_id, entries)
        out.append(replace(video, table=_turned_away(table, dropped), plan=tuple(entries)))
    return out, sum(len(d) for d in plan.dropped.values())


def _plan_round(video: LabelledVideo) -> int:
    """The review round the label loop planned ``video`` in (every entry of a plan has it)."""
    return max((int(e["round"]) for e in video.plan), default=1)


def _turned_away(table: FrameTable, dropped: Sequence[tuple[int, int]]) -> FrameTable:
    """``table`` with the ``(frame, object index)`` frame-objects ``dropped`` accepted over the
    human budget, as :meth:`PseudoLabelStore.set_decisions` records it (the reason is added to
    the table's reasons when new)."""
    reasons = table.reasons if OVER_BUDGET in table.reasons else (*table.reasons, OVER_BUDGET)
    status, reason = table.status.copy(), table.reason.copy()
    if dropped:
        frames, objects = (np.array(column) for column in zip(*dropped, strict=True))
        status[frames, objects] = Status.ACCEPTED
        reason[frames, objects] = reasons.index(OVER_BUDGET) + 1
    return replace(table, reasons=reasons, status=status, reason=reason)


def label_dataset(run: RunConfig) -> list[VideoResult]:
    """Label every video of a run in this process (no Prefect); a failing video is reported
    as ``failed`` and the others still run."""
    context = load_context(run)
    store = PseudoLabelStore.open(run.store_path, storage_options=run.storage_options)
    results = []
    for video_id in context.reader.list_videos():
        try:
            results.append(label_video(context, video_id, store))
        except UsamVideoError as exc:
            log.error("video %s failed: %s", video_id, exc)
            results.append(VideoResult(video_id, "failed", error=str(exc)))
    apply_run_budget(run, store, stored_videos(store, results))
    store.consolidate_index()  # inspect and queue read it instead of every video's arrays
    return results
