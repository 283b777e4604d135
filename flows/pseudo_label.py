"""The pseudo-labelling flow: one task per video, retries, a GPU slot per task on CUDA,
a progress artifact while it runs and, at the end, a table artifact (a row per video), score
histograms, a review overview and one review page per uncertain video (see
:mod:`usam_video.pipeline.report`).

The video tasks run on the flow's task runner: Prefect's thread pool in the flow's process by
default, or a Dask cluster (``usam-video run --task-runner dask``, :mod:`flows.runners`). A task
gets references only (the run config's path, the token of the context the flow opened, a video
id); a Dask worker process does not hold that context, so its first task builds it from the
config's path (:func:`usam_video.pipeline.context_of`) and its later tasks reuse it.

How a run is cut into tasks (:mod:`usam_video.pipeline.shards`): up to 1,000 videos, one task
per video, each with its retries and its row in the dashboard, and its result carrying the
video's frame table for the run budget, the score plots and the report. Above that, shards of
videos, at most 1,000 tasks a run (50 videos a task at SA-V's 50,000), whose results carry per
video only its summary row, review plan and report digest, computed in the worker: the flow's
process then holds a few kilobytes a video, not its frame table (225 KB a video at SA-V's
size). A sharded run draws no score histograms and measures no J&F in the flow (both would read
every video back); ``usam-video evaluate-run`` measures J&F on a Dask cluster.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.collect import as_they_complete
from flows.common import artifact_key_of, ensure_gpu_limit, gpu_slot, retry_unless_bad_input
from usam_video.errors import UsamVideoError
from usam_video.pipeline import (
    LabelledVideo,
    RunContext,
    apply_run_budget,
    context_of,
    label_video,
    run_score_plot,
    stored_videos,
    unprompted_warnings,
    untrained_warnings,
)
from usam_video.pipeline.report import RunReport, build_report, run_markdown, video_markdown
from usam_video.pipeline.report.digest import VideoDigest, digest_video
from usam_video.pipeline.shards import (
    DigestedVideo,
    held_elsewhere,
    label_shard,
    shard_size_for,
    shards,
    wait_for_claims,
)
from usam_video.types import VideoResult

__all__ = [
    "REPORT_VIDEOS",
    "label_shard_task",
    "label_video_task",
    "pseudo_label_dataset",
    "summary_table",
    "video_artifact_key",
]

#: Default number of the most uncertain videos that get a review page artifact (images inside):
#: a run of thousands of videos writes this many pages, and a table row for every video.
REPORT_VIDEOS = 20
#: The run tokens whose tasks have said, in this process, which process they run in.
_LOGGED_TOKENS: set[str] = set()


@task(
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_unless_bad_input,
    task_run_name="label-{video_id}",
)
def label_video_task(
    run_config: str, video_id: str, use_gpu_limit: bool, context_token: str | None = None
) -> VideoResult:
    """Label one video (references in: the run config's path and the token of the context the
    flow built, which a task in the flow's process reuses; a small summary out, arrays stay in
    the store)."""
    context = context_of(run_config, context_token)
    if context.token not in _LOGGED_TOKENS:  # once per process and run: where tasks ran
        _LOGGED_TOKENS.add(context.token)
        get_run_logger().info("video tasks of run %s in process %d", context.run.name, os.getpid())
    with gpu_slot(use_gpu_limit):
        return label_video(context, video_id)


@task(task_run_name="label-shard-{first_video}")
def label_shard_task(
    run_config: str,
    video_ids: list[str],
    use_gpu_limit: bool,
    context_token: str | None = None,
    first_video: str = "",
) -> list[VideoResult]:
    """Label a shard of videos (:func:`usam_video.pipeline.shards.label_shard`: each video
    retried as the per-video task is, a failing video reported in its row, not raised)."""
    context = context_of(run_config, context_token)
    with gpu_slot(use_gpu_limit):
        return label_shard(context, video_ids)


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


#: Rows of a run's summary table artifact at most: one per video would be 15-25 MB of JSON in
#: the Prefect database at SA-V's 50,000 videos.
SUMMARY_ROWS = 1000


def _shown(results: list[VideoResult], report: RunReport | None, limit: int) -> list[VideoResult]:
    """``results`` when at most ``limit``; else the failed videos, then the most uncertain (the
    report's ranking), then the rest in order, ``limit`` in all, in the run's order."""
    if len(results) <= limit:
        return results
    ranked = {d.video_id: report.rank(d.video_id) for d in report.videos} if report is not None else {}
    order = sorted(
        range(len(results)),
        key=lambda i: (results[i].outcome != "failed", ranked.get(results[i].video_id, math.inf), i),
    )
    return [results[i] for i in sorted(order[:limit])]


def summary_table(
    results: list[VideoResult],
    report: RunReport | None = None,
    pages: dict[str, str] | None = None,
    limit: int = SUMMARY_ROWS,
) -> list[dict[str, Any]]:
    """Rows of the run's table artifact (one per video, at most ``limit``: above that the failed
    and the most uncertain videos). With a review ``report``, each row also has the video's
    uncertainty, its rank, the key of its page artifact (``pages``; "" when it has none) and,
    with ground truth, its J&F beside the copy-first-mask baseline's."""
    digests = {d.video_id: d for d in report.videos} if report is not None else {}
    rows = []
    for r in _shown(results, report, limit):
        row = {f.name: getattr(r, f.name) for f in fields(VideoResult)}
        row["mean_predicted_iou"] = _rounded(r.mean_predicted_iou)
        row["seconds"] = round(r.seconds, 2)
        if report is not None:
            digest = digests.get(r.video_id)
            row["uncertainty"] = _rounded(digest.uncertainty) if digest is not None else None
            row["uncertainty_rank"] = report.rank(r.video_id) if digest is not None else None
            row["review_page"] = (pages or {}).get(r.video_id, "")
            if report.jf is not None:
                row["jf"] = _rounded(digest.jf) if digest is not None else None
                row["jf_copy_first_mask"] = _rounded(digest.jf_baseline) if digest is not None else None
        rows.append(row)
    return rows


def _score_plot_artifact(run: Any, videos: list[LabelledVideo], key: str) -> None:
    """A markdown artifact with the run's score histograms embedded as a PNG data URI."""
    with tempfile.TemporaryDirectory() as tmp:
        png = run_score_plot(run.name, videos, Path(tmp) / "scores.png")
        if png is None:
            return
        encoded = base64.b64encode(png.read_bytes()).decode()
    create_markdown_artifact(
        f"# Scores of run {run.name}\n\n{len(videos)} videos, store `{run.store}`.\n\n"
        f"![score histograms](data:image/png;base64,{encoded})\n",
        key=f"{key}-scores",
        description="distribution of every stored score over tracked frame-objects",
    )


def video_artifact_key(run_key: str, video_id: str) -> str:
    """The key of a video's review page artifact: ``<run>-video-<video>``. Prefect keys allow
    lowercase letters, digits and dashes only; a video id that needed changing gets a short hash
    of itself, so that two ids never share a key."""
    key = artifact_key_of(video_id)
    if key != video_id:
        key += "-" + hashlib.sha1(video_id.encode()).hexdigest()[:6]
    return f"{run_key}-video-{key}"


def _review_artifacts(
    context: RunContext,
    video_ids: list[str],
    videos: list[LabelledVideo],
    key: str,
    pages: int,
    with_jf: bool,
    digested: dict[str, VideoDigest] | None = None,
) -> RunReport | None:
    """The review overview and a page per uncertain video; None (logged) if the store cannot be
    read back: the labels are stored, a missing report must not fail the run. The frame tables
    and plans of ``videos`` (what the tasks wrote), the run's store and its dataset are used as
    they are, not read or opened again."""
    logger = get_run_logger()
    run = context.run
    try:
        report = build_report(
            context.store,
            video_ids,
            dataset=run.dataset,
            max_pages=pages,
            ground_truth=with_jf,
            tables={v.video_id: v.table for v in videos if v.table is not None},
            plans={v.video_id: v.plan for v in videos},
            reader=context.reader,
            digested=digested,
        )
        keys = {video_id: video_artifact_key(key, video_id) for video_id in report.paged}
        for video_id, page_key in keys.items():
            digest = report.digest(video_id)
            create_markdown_artifact(
                video_markdown(report, video_id),
                key=page_key,
                description=f"{video_id}: uncertainty rank {report.rank(video_id)}, "
                f"{len(digest.plan)} planned corrections; timeline, worst frames, review plan",
            )
        create_markdown_artifact(
            run_markdown(report, keys, every_video=f"{key}-summary"),
            key=f"{key}-review",
            description=f"the {len(keys)} most uncertain videos of run {run.name!r}: where, and why",
        )
    except UsamVideoError as exc:
        logger.error("review report of run %s not written: %s", run.name, exc)
        return None
    return report


@flow(name="pseudo-label-dataset")
def pseudo_label_dataset(
    run_config: str,
    use_gpu_limit: bool | None = None,
    report_videos: int = REPORT_VIDEOS,
    report_jf: bool = True,
    context_token: str | None = None,
    shard_size: int | None = None,
) -> list[VideoResult]:
    """Pseudo-label every video of a run config. A failing video is reported as failed in the
    summary; the others complete. ``use_gpu_limit`` defaults to "the model runs on CUDA".
    ``report_videos``: how many of the most uncertain videos get a review page artifact;
    ``report_jf``: show J&F against the dataset's ground truth (when it has some; never in a
    sharded run); ``context_token``: the token of a context the caller opened in this process
    (:func:`usam_video.pipeline.open_run`), so that the config is not parsed again;
    ``shard_size``: videos per task (default :func:`usam_video.pipeline.shards.shard_size_for`:
    one up to 1,000 videos)."""
    logger = get_run_logger()
    # The run's config is parsed, its dataset opened and its model built once in this process
    # (by the caller that passed ``context_token``, or here), then found by every task.
    context = context_of(run_config, context_token)
    run = context.run
    logger.info("flow run of run %s in process %d", run.name, os.getpid())
    for warning in untrained_warnings(context):
        logger.warning(warning)
    if use_gpu_limit is None:
        use_gpu_limit = context.device.type == "cuda"
    if use_gpu_limit:
        ensure_gpu_limit(run.gpu_concurrency)
    store = context.store  # a foreign folder, a file or a read-only place: refused once, here
    videos = context.reader.list_videos()
    for warning in unprompted_warnings(context, videos):
        logger.warning(warning)
    key = artifact_key_of(run.name)
    size = shard_size if shard_size is not None else shard_size_for(len(videos))
    results = _label_videos(run_config, videos, size, use_gpu_limit, context.token, key)
    held = held_elsewhere(results)
    if held:  # another run writing them, or a worker that died on another host: see wait_for_claims
        logger.info(
            "%d video(s) held by other writers: waiting for their claims, then labelling them", len(held)
        )
        still = set(wait_for_claims(store, held))
        redo = [v for v in held if v not in still]
        again = dict(
            zip(redo, _label_videos(run_config, redo, size, use_gpu_limit, context.token, key), strict=True)
        )
        results = [again.get(r.video_id, r) for r in results]
    if size == 1:
        # What the tasks wrote comes back with their results: the run budget, the score plots
        # and the report use it and never read those frame tables back from the store.
        labelled, turned_away = apply_run_budget(run, store, stored_videos(store, results))
        digested = None
        _score_plot_artifact(run, labelled, key)
    else:
        logger.info("%d videos in shards of %d: %d tasks", len(videos), size, math.ceil(len(videos) / size))
        labelled, turned_away, digested = _sharded_budget(run, store, results)
        report_jf = False  # it would read every video's masks back in this process
        logger.info("a sharded run draws no score histograms: `usam-video report` does, from the store")
    if turned_away:
        logger.warning("human budget of the run: %d queued frame-objects accepted instead", turned_away)
    # After the budget's decisions: inspect and queue read this instead of every video's arrays.
    logger.info("summary index: %d video(s) read into index.json", store.consolidate_index())
    stored = [r.video_id for r in results if r.outcome != "failed"]
    report = (
        _review_artifacts(context, stored, labelled, key, report_videos, report_jf, digested)
        if stored
        else None
    )
    pages = {v: video_artifact_key(key, v) for v in report.paged} if report is not None else {}
    create_table_artifact(
        summary_table(results, report, pages),
        key=f"{key}-summary",
        description=_summary_description(context, report, len(results)),
    )
    # The summary rows only: the frame tables stay in this process's memory, never in a result.
    return [r.summary() for r in results]


def _summary_description(context: RunContext, report: RunReport | None, videos: int) -> str:
    """The summary table artifact's description: the run, its store, its J&F when measured, and
    whether the table holds every video."""
    run = context.run
    jf = ""
    if report is not None and report.jf is not None:
        jf = f"; J&F {report.jf:.3f}"
        if report.jf_baseline is not None:
            jf += f" (copy-first-mask {report.jf_baseline:.3f})"
    capped = (
        f" ({SUMMARY_ROWS} of {videos} videos: the failed and the most uncertain first; "
        "`usam-video inspect` lists every video)"
        if videos > SUMMARY_ROWS
        else ""
    )
    untrained = " (UNTRAINED weights: see the flow log)" if untrained_warnings(context) else ""
    return (
        f"Pseudo-labels of run {run.name!r} into {run.store}{jf}{capped}; review pages: "
        f"column review_page{untrained}"
    )


def _label_videos(
    run_config: str, videos: list[str], size: int, use_gpu_limit: bool, token: str, key: str
) -> list[VideoResult]:
    """``videos`` labelled one task per video (``size`` 1) or in shards of ``size``; results in
    the order of ``videos``, a task that failed (after its retries) as failed rows of its videos.

    Collected as they complete, so that one slow first task does not stall the progress
    artifact."""
    if not videos:
        return []
    logger = get_run_logger()
    parts = shards(videos, size)
    progress = create_progress_artifact(
        0.0, key=f"{key}-progress", description=f"videos labelled of {len(videos)}"
    )
    futures: list[Any] = [
        label_video_task.submit(run_config, part[0], use_gpu_limit, token)
        if size == 1
        else label_shard_task.submit(run_config, part, use_gpu_limit, token, first_video=part[0])
        for part in parts
    ]
    by_position: dict[int, list[VideoResult]] = {}
    videos_done = 0
    for i, result, exc in as_they_complete(futures):
        if exc is not None:
            rows = [VideoResult(v, "failed", error=f"{type(exc).__name__}: {exc}") for v in parts[i]]
        else:  # a video task returns its row, a shard task its videos' rows (failures included)
            rows = [result] if size == 1 else result
        for row in rows:
            if row.outcome == "failed":
                logger.error("video %s failed: %s", row.video_id, row.error)
        by_position[i] = rows
        videos_done += len(parts[i])
        update_progress_artifact(progress, 100.0 * videos_done / len(videos))
    return [row for i in range(len(parts)) for row in by_position[i]]


def _sharded_budget(
    run: Any, store: Any, results: list[VideoResult]
) -> tuple[list[LabelledVideo], int, dict[str, VideoDigest]]:
    """The run budget of a sharded run, and every stored video's digest. Only videos that
    queued frame-objects for humans can lose some to the budget, so only their frame tables are
    read back (none without a run budget); a video the budget changed is digested again."""
    digested = {
        r.video_id: r.digest for r in results if isinstance(r, DigestedVideo) and r.digest is not None
    }
    budget = run.policy.human_budget
    if budget is None or budget.max_per_run is None:
        return [], 0, digested
    with_queue = [r for r in results if isinstance(r, DigestedVideo) and r.queued_human]
    queued = stored_videos(store, [r.summary() for r in with_queue])
    # The other videos' corrections were spent from the same run budget (review rounds).
    in_queue = {r.video_id for r in with_queue}
    reserved = sum(r.corrected for r in results if r.video_id not in in_queue)
    labelled, turned_away = apply_run_budget(run, store, queued, reserved=reserved)
    before = {v.video_id: v.plan for v in queued}
    for video in labelled:
        if video.plan != before[video.video_id]:
            digested[video.video_id] = digest_video(store, video.video_id, table=video.table, plan=video.plan)
    return labelled, turned_away, digested
