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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from usam_video.background import BackgroundConsumer
from usam_video.config import HeadsConfig, HumanBudget, ModelConfig, RunConfig, config_fingerprint
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.engine import BuiltModel, PropagationSession, build_model
from usam_video.errors import UsamVideoError
from usam_video.heads import HeadSet, heads_from_config
from usam_video.pipeline.provenance import run_config_of
from usam_video.review.planner import plan_reviews
from usam_video.review.planning import (
    budget_uncertainty,
    plan_entries,
    planner_settings,
    tracks_of,
    video_limit,
)
from usam_video.scoring import Scorer, ThresholdPolicy, score_frame
from usam_video.scoring.policy import OVER_BUDGET, FrameDecision, decide_frame
from usam_video.store import PseudoLabelStore, VideoWriter, WriteCounts
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
    "LabelContext",
    "SKIPPED_COMPLETE",
    "code_version",
    "list_videos",
    "load_context",
    "prepare_store",
    "label_video",
    "label_dataset",
    "untrained_warnings",
    "unprompted_warnings",
    "run_fingerprint",
    "run_config_of",
    "relabel_videos",
    "apply_run_budget",
    "video_result",
    "run_score_values",
    "run_score_plot",
]

log = logging.getLogger(__name__)

#: Why a video was skipped, in its result row (the run's table and the flow's summary artifact).
SKIPPED_COMPLETE = "already complete under this config"


def code_version() -> str:
    """The installed usam-video version (recorded in provenance)."""
    try:
        return version("usam-video")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, eq=False)
class LabelContext:
    """Everything a run needs that is expensive to build, built once per process."""

    run: RunConfig
    reader: DatasetReader
    model: BuiltModel
    heads: HeadSet | None
    policy: ThresholdPolicy
    scorer: Scorer

    @property
    def score_names(self) -> tuple[str, ...]:
        return self.scorer.names


@lru_cache(maxsize=2)
def cached_model(model_json: str) -> BuiltModel:
    return build_model(ModelConfig.model_validate_json(model_json))


@lru_cache(maxsize=2)
def cached_heads(heads_json: str) -> HeadSet | None:
    return heads_from_config(HeadsConfig.model_validate_json(heads_json))


def load_context(run: RunConfig) -> LabelContext:
    """Open the dataset, build (or reuse) the model and heads, check the policy against them."""
    reader = open_dataset(run.dataset)
    model = cached_model(run.model.model_dump_json())
    heads = cached_heads(run.heads.model_dump_json())
    if heads is not None and heads.token_dim != model.token_dim:
        raise UsamVideoError(
            f"heads from {heads.source}: expected {model.token_dim}-d tokens of model "
            f"{run.model.name!r}, got heads for {heads.token_dim}-d tokens."
        )
    scorer = _cached_scorer(run.heads.model_dump_json(), run.model.model_dump_json())
    policy = ThresholdPolicy(run.policy)
    policy.check(scorer.names, scorer.candidate_names)
    return LabelContext(run, reader, model, heads, policy, scorer)


@lru_cache(maxsize=2)
def _cached_scorer(heads_json: str, model_json: str) -> Scorer:
    # The fused heads live on the engine's device.
    return Scorer(cached_heads(heads_json), cached_model(model_json).device)


def prepare_store(run: RunConfig) -> None:
    """Open the run's store once, creating it if absent, before any video starts: a regular
    file, a folder of other files, another Zarr group or a read-only place is refused here with
    one :class:`~usam_video.errors.StoreError` instead of failing every video alike."""
    PseudoLabelStore.open(run.store_path)


def list_videos(run: RunConfig) -> list[str]:
    """The video ids a run labels (cheap: opens the dataset only)."""
    return open_dataset(run.dataset).list_videos()


def run_fingerprint(run: RunConfig) -> str:
    """Identifies the output of a run: dataset, model, heads, policy and code version.

    The store path and the selection of videos are left out: the same labels written
    elsewhere, or a run over more videos, leave a labelled video current.
    """
    dataset = run.dataset.model_copy(update={"videos": None, "split": None, "name": ""})
    payload = run.model_copy(update={"store": "", "name": "", "gpu_concurrency": 1, "dataset": dataset})
    return f"{config_fingerprint(payload)}-{code_version()}"


def untrained_warnings(context: LabelContext) -> list[str]:
    """Plain-language warnings when masks or scores come from random weights."""
    out = []
    if context.model.untrained:
        out.append(
            f"model {context.run.model.name!r} has RANDOM weights (random_init: true): its masks are "
            "not real segmentations. Point 'checkpoint' at a SAM 2 checkpoint for real pseudo-labels."
        )
    if context.heads is not None and context.heads.untrained:
        out.append("USAM heads are RANDOMLY initialised (random_init: true): their scores carry no meaning.")
    if context.heads is not None and context.heads.missing:
        out.append(f"USAM heads missing from {context.heads.source}: {list(context.heads.missing)}.")
    return out


def unprompted_warnings(context: LabelContext, video_ids: Sequence[str]) -> list[str]:
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


def _provenance(context: LabelContext) -> dict[str, Any]:
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
    context: LabelContext, video_id: str, store: PseudoLabelStore | None = None, force: bool = False
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
    store = store or PseudoLabelStore.open(context.run.store_path)
    fingerprint = run_fingerprint(context.run)
    if store.is_complete(video_id):
        # A damaged chunk is reported, never skipped as complete nor relabelled over (its
        # corrections are read from it); an incomplete video holds nothing kept and is redone.
        store.require_intact(video_id)
    if not force and store.is_complete(video_id, fingerprint):
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
        return VideoResult(video_id, "skipped", error=f"being labelled by {holder}")
    try:
        if not force and store.is_complete(video_id, fingerprint):  # finished while we waited
            return VideoResult(
                video_id, "skipped", seconds=time.perf_counter() - started, error=SKIPPED_COMPLETE
            )
        return _label_claimed(context, store, video_id, ref, prompts, corrected, fingerprint, started)
    except Exception as exc:  # e.g. an mp4 broken mid-way: inspect and queue say why it is incomplete
        store.record_failure(video_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.release(video_id)


def _label_claimed(
    context: LabelContext,
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
    reviews = _ReviewInputs.for_video(context.run.policy.human_budget, ref.num_frames, session.object_ids)
    tally = _Tally.for_video(ref.num_frames, len(session.object_ids))
    finish_frame = _frame_finisher(
        context,
        session,
        pending_writer,
        prompt_masks,
        corrected,
        reviews,
        tally,
        batch=FINISH_BATCH,
        last_frame=ref.num_frames - 1,
    )
    try:
        with BackgroundConsumer(finish_frame, maxsize=2, name=f"usam-finish-{video_id}") as consumer:
            for frame in session.propagate_device():
                consumer.put(frame)
            consumer.put(None)  # the last, partial batch
        writer = pending_writer.result()
        _plan_human_reviews(context, video_id, reviews, writer)
        counts = writer.finish()
    except BaseException:
        # The store's set-up may still run: wait for it, then stop its writer without completing.
        if pending_writer.exception() is None:
            pending_writer.result().abort()
        raise
    finally:
        session.close()
    seconds = time.perf_counter() - started
    return _result_row(video_id, counts, tally.sam_iou, context.policy.reasons, seconds, "labelled")


def _begin_in_background(store: PseudoLabelStore, *args: Any, **kwargs: Any) -> Future[VideoWriter]:
    """``store.begin_video(*args, **kwargs)`` on a short-lived thread; its errors surface from
    the returned future's ``result()``."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usam-begin")
    try:
        return pool.submit(store.begin_video, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)  # the thread ends once begin_video has returned


#: Frames whose video features and USAM heads run as one batch on the finishing thread. The nine
#: heads read ~19 MB of weights per call whatever the number of rows, so on a CPU scoring one
#: frame at a time is memory-bound (and its traffic slows SAM 2 on the other core); four frames
#: per call read them a quarter as often. The video features of four frames take ~30 device
#: operations a frame instead of ~110: each is a kernel launch on a GPU, and on the CPU a
#: hand-over of the interpreter lock that SAM 2's own thread then waits for. A frame's record
#: lands at most three frames later, and the finishing thread holds four frames' masks.
FINISH_BATCH = 4


def _frame_finisher(
    context: LabelContext,
    session: PropagationSession,
    pending_writer: Future[VideoWriter],
    prompt_masks: dict[tuple[int, int], np.ndarray],
    corrected: set[tuple[int, int]],
    reviews: _ReviewInputs,
    tally: _Tally,
    *,
    batch: int,
    last_frame: int,
) -> Callable[[DeviceFrame | None], None]:
    """The host work of the frames, in frame order on the background thread: take each frame on
    the device (its masks thresholded, its numbers packed), compute the video features of
    ``batch`` frames and score them at once on the device, two copies to the host per frame,
    decide, hand to the writer. ``None`` finishes the frames still held (the last batch).

    The frames held are also finished once frame ``last_frame - 1`` arrives, batch full or not:
    they are then finished while SAM 2 still works on the last frame, and what is left once
    propagation has ended (time no one else overlaps) is that one frame."""
    import torch

    assembler = session.assembler(batch=batch)
    scorer = context.scorer

    def rescore(prediction: FramePrediction) -> FrameScores:
        return score_frame(prediction, context.heads)

    def finish_held() -> None:
        o = assembler.num_objects
        with torch.inference_mode():
            frames = assembler.flush()  # the batch's video features in one pass
            # split's blocks are score_tensors' keyword arguments (the IoU and mask tokens, the
            # candidates' IoUs, the chosen candidate, the object logit, entropy, stability); the
            # frames' rows are stacked, so every row is scored as it would be alone.
            parts = [assembler.split(t.numbers) for t in frames]
            stacked = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
            features = torch.cat([t.video_features for t in frames])
            columns, candidates = scorer.score_tensors(**stacked, video_features=features)
            rows = [slice(i * o, (i + 1) * o) for i in range(len(frames))]
            records = [
                assembler.prediction(t, extras=(columns[r], candidates[r]))
                for t, r in zip(frames, rows, strict=True)
            ]
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
            reviews.record(prediction, decision)
            tally.record(prediction, decision)

    def finish_frame(frame: DeviceFrame | None) -> None:
        if frame is not None:
            with torch.inference_mode():
                assembler.add(frame)  # in order: the video features' state
        if assembler.pending and (
            frame is None or assembler.pending >= batch or frame.frame_index == last_frame - 1
        ):
            finish_held()

    return finish_frame


@dataclass
class _Tally:
    """SAM's predicted IoU of every stored mask, kept while the frames are written, for the
    video's result row (the label loop never reads back what it has just written; the counts
    come from the writer's :class:`~usam_video.store.WriteCounts`).

    Attributes:
        sam_iou: ``float32`` ``(T, O)`` (NaN where untracked).
    """

    sam_iou: np.ndarray

    @classmethod
    def for_video(cls, num_frames: int, num_objects: int) -> _Tally:
        return cls(np.full((num_frames, num_objects), np.nan, np.float32))

    def record(self, prediction: FramePrediction, decision: FrameDecision) -> None:
        self.sam_iou[prediction.frame_index] = decision.scores.column("sam_iou")


@dataclass
class _ReviewInputs:
    """What the review planner needs once a video is done, gathered frame by frame.

    Attributes:
        budget: the policy's human budget (None: nothing is gathered, nothing planned).
        object_ids: the video's ``O`` objects.
        priority: ``float64`` ``(T, O)``: the budget's priority score of every frame-object.
        tracked: ``bool`` ``(T, O)``: the object was tracked on the frame.
        for_humans: ``bool`` ``(T, O)``: the rules queued the frame-object for a human.
    """

    budget: HumanBudget | None
    object_ids: tuple[int, ...]
    priority: np.ndarray
    tracked: np.ndarray
    for_humans: np.ndarray

    @classmethod
    def for_video(
        cls, budget: HumanBudget | None, num_frames: int, object_ids: Sequence[int]
    ) -> _ReviewInputs:
        shape = (num_frames, len(object_ids))
        empty = np.zeros(shape, bool)
        return cls(budget, tuple(object_ids), np.full(shape, np.nan), empty, empty.copy())

    def record(self, prediction: FramePrediction, decision: FrameDecision) -> None:
        """Keep one frame's priority, tracking and human queue (after any task swap)."""
        if self.budget is None:
            return
        t = prediction.frame_index
        self.priority[t] = decision.scores.column(self.budget.priority)
        self.tracked[t] = prediction.tracked
        self.for_humans[t] = decision.status == Status.QUEUED_HUMAN


def _plan_human_reviews(
    context: LabelContext, video_id: str, reviews: _ReviewInputs, writer: VideoWriter
) -> None:
    """Spend the video's human budget: the review planner picks which queued frame-objects go to
    people; the others are accepted with reason ``over_human_budget``; the plan is kept."""
    budget, object_ids, for_humans = reviews.budget, reviews.object_ids, reviews.for_humans
    if budget is None or not for_humans.any():
        return
    picks = plan_reviews(
        tracks_of(
            video_id, object_ids, budget_uncertainty(budget, reviews.priority), reviews.tracked, for_humans
        ),
        video_limit(budget, int(for_humans.sum()), for_humans.size),
        planner_settings(budget.plan),
    )
    kept = {(p.frame_index, object_ids.index(p.object_id)) for p in picks}
    dropped = [(int(t), int(o)) for t, o in zip(*np.nonzero(for_humans), strict=True) if (t, o) not in kept]
    if dropped:
        writer.update_decisions(
            np.array([d[0] for d in dropped]),
            np.array([d[1] for d in dropped]),
            Status.ACCEPTED,
            context.policy.reasons.index(OVER_BUDGET) + 1,
        )
    writer.set_review_plan(plan_entries(picks))


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


def run_score_values(run: RunConfig, video_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Every stored score of a run's complete videos, flattened over tracked frame-objects
    (``float32`` ``(N,)`` per score name), for the run's score plots."""
    store = PseudoLabelStore.open(run.store_path, "r")
    values: dict[str, list[np.ndarray]] = {}
    for video_id in video_ids:
        if not store.is_complete(video_id):
            continue
        table = store.frame_table(video_id)
        tracked = table.status != Status.NOT_STARTED
        for i, name in enumerate(table.score_names):
            values.setdefault(name, []).append(table.scores[..., i][tracked])
    return {name: np.concatenate(parts) for name, parts in values.items()}


def run_score_plot(run: RunConfig, video_ids: Sequence[str], path: Path) -> Path | None:
    """Histograms of every stored score of a run (PNG at ``path``); None when nothing is stored."""
    from usam_video.evaluation.plots import plot_score_histograms

    values = run_score_values(run, video_ids)
    if not values:
        return None
    return plot_score_histograms(
        {k: v.tolist() for k, v in values.items()}, path, title=f"scores of run {run.name}"
    )


def relabel_videos(store_path: str | Path, video_ids: Sequence[str]) -> list[VideoResult]:
    """Propagate videos again with the run config they were labelled with (after corrections):
    each correction becomes a conditioning frame and is kept as is."""
    store = PseudoLabelStore.open(store_path)
    results = []
    for video_id in video_ids:
        run = run_config_of(store, video_id).model_copy(update={"store": str(store_path)})
        results.append(label_video(load_context(run), video_id, store, force=True))
    return results


def apply_run_budget(run: RunConfig, video_ids: Sequence[str]) -> int:
    """Cap the frame-objects queued for humans across a run's videos (``max_per_run``): the
    review planner picks which, across videos; the rest are accepted with reason
    ``over_human_budget`` and each video's review plan is rewritten. Returns how many were
    turned away."""
    budget = run.policy.human_budget
    if budget is None or budget.max_per_run is None:
        return 0
    store = PseudoLabelStore.open(run.store_path)
    tracks = []
    queued: list[tuple[str, int, int]] = []
    for video_id in video_ids:
        if not store.is_complete(video_id):
            continue
        table = store.frame_table(video_id)
        human = table.status == Status.QUEUED_HUMAN
        queued += [
            (video_id, int(t), int(table.object_ids[o])) for t, o in zip(*np.nonzero(human), strict=True)
        ]
        values = table.scores[..., table.score_names.index(budget.priority)]
        tracks += tracks_of(
            video_id,
            table.object_ids,
            budget_uncertainty(budget, values),
            table.status != Status.NOT_STARTED,
            human,
        )
    if len(queued) <= budget.max_per_run:
        return 0
    # The planner ranks runs across every video of the run: the run budget goes to the
    # corrections with the largest expected gain wherever they are.
    picks = plan_reviews(tracks, budget.max_per_run, planner_settings(budget.plan))
    kept = {(p.video_id, p.frame_index, p.object_id) for p in picks}
    dropped = [q for q in queued if q not in kept]
    for video_id in sorted({d[0] for d in dropped} | {p.video_id for p in picks}):
        store.set_decisions(
            video_id, [(d[1], d[2]) for d in dropped if d[0] == video_id], Status.ACCEPTED, OVER_BUDGET
        )
        store.set_review_plan(video_id, plan_entries([p for p in picks if p.video_id == video_id]))
    return len(dropped)


def label_dataset(run: RunConfig) -> list[VideoResult]:
    """Label every video of a run in this process (no Prefect); a failing video is reported
    as ``failed`` and the others still run."""
    context = load_context(run)
    store = PseudoLabelStore.open(run.store_path)
    results = []
    for video_id in context.reader.list_videos():
        try:
            results.append(label_video(context, video_id, store))
        except UsamVideoError as exc:
            log.error("video %s failed: %s", video_id, exc)
            results.append(VideoResult(video_id, "failed", error=str(exc)))
    apply_run_budget(run, [r.video_id for r in results if r.outcome != "failed"])
    return results
