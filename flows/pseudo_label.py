"""The pseudo-labelling flow: one task per video, retries, a GPU slot per task on CUDA,
a progress artifact while it runs and, at the end, a table artifact (a row per video), score
histograms, a review overview and one review page per uncertain video (see
:mod:`usam_video.pipeline.report`).

The video tasks run on the flow's task runner: Prefect's thread pool in the flow's process by
default, or a Dask cluster (``usam-video run --task-runner dask``, :mod:`flows.runners`). A task
gets references only (the run config's path, the token of the context the flow opened, a video
id); a Dask worker process does not hold that context, so its first task builds it from the
config's path (:func:`usam_video.pipeline.context_of`) and its later tasks reuse it.

How a run is cut into tasks, and what that costs the flow's process: one task per video, all
submitted at once. For each video the flow keeps its Prefect task run (future, state, result
record: about 60 KB, from issue #36's measurement of 590 MB resident for 10,000 trivial tasks)
and the video's result, which carries its frame table for the run budget, the score plots and
the report (on Dask it is pickled back from the worker): ``T x O x (4 S + 3)`` bytes
(``status``, ``reason``, ``source`` and ``S`` float32 scores per frame-object). Computed for a
50,000-video SA-V run (about 340 frames and 13 masklets a video, ``S`` = 12 with heads): 225 KB
of table a video, 11 GB in all, plus about 3 GB of task runs, far above a 1 GB goal. Until the
flow maps shards of videos per task and keeps scores out of the results (issue #36 item 5),
cut a run that size into runs of at most a few thousand videos (each a slice of the video
list, all into one store: claims keep concurrent runs apart).
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
from usam_video.types import VideoResult

__all__ = [
    "REPORT_VIDEOS",
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


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


def summary_table(
    results: list[VideoResult], report: RunReport | None = None, pages: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Rows of the run's table artifact (one per video). With a review ``report``, each row also
    has the video's uncertainty, its rank, the key of its page artifact (``pages``; "" when it
    has none) and, with ground truth, its J&F beside the copy-first-mask baseline's."""
    digests = {d.video_id: d for d in report.videos} if report is not None else {}
    rows = []
    for r in results:
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
) -> list[VideoResult]:
    """Pseudo-label every video of a run config. A failing video is reported as failed in the
    summary; the others complete. ``use_gpu_limit`` defaults to "the model runs on CUDA".
    ``report_videos``: how many of the most uncertain videos get a review page artifact;
    ``report_jf``: show J&F against the dataset's ground truth (when it has some);
    ``context_token``: the token of a context the caller opened in this process
    (:func:`usam_video.pipeline.open_run`), so that the config is not parsed again."""
    logger = get_run_logger()
    # The run's config is parsed, its dataset opened and its model built once in this process
    # (by the caller that passed ``context_token``, or here), then found by every task.
    context = context_of(run_config, context_token)
    run = context.run
    logger.info("flow run of run %s in process %d", run.name, os.getpid())
    for warning in untrained_warnings(context):
        logger.warning(warning)
    if use_gpu_limit is None:
        use_gpu_limit = context.model.device.type == "cuda"
    if use_gpu_limit:
        ensure_gpu_limit(run.gpu_concurrency)
    store = context.store  # a foreign folder, a file or a read-only place: refused once, here
    videos = context.reader.list_videos()
    for warning in unprompted_warnings(context, videos):
        logger.warning(warning)
    key = artifact_key_of(run.name)
    progress = create_progress_artifact(
        0.0, key=f"{key}-progress", description=f"videos labelled of {len(videos)}"
    )
    futures = [
        label_video_task.submit(run_config, video_id, use_gpu_limit, context.token) for video_id in videos
    ]
    # Collected as they complete, so that one slow first video does not stall the progress
    # artifact; reported in the order of the videos.
    by_position: dict[int, VideoResult] = {}
    for done, (i, result, exc) in enumerate(as_they_complete(futures), start=1):
        if exc is not None:  # the task already retried; report and go on
            logger.error("video %s failed: %s", videos[i], exc)
            result = VideoResult(videos[i], "failed", error=f"{type(exc).__name__}: {exc}")
        assert result is not None
        by_position[i] = result
        update_progress_artifact(progress, 100.0 * done / max(len(videos), 1))
    results = [by_position[i] for i in range(len(videos))]
    # What the tasks wrote comes back with their results: the run budget, the score plots and
    # the report use it and never read those frame tables back from the store.
    labelled, turned_away = apply_run_budget(run, store, stored_videos(store, results))
    if turned_away:
        logger.warning("human budget of the run: %d queued frame-objects accepted instead", turned_away)
    stored = [r.video_id for r in results if r.outcome != "failed"]
    _score_plot_artifact(run, labelled, key)
    report = _review_artifacts(context, stored, labelled, key, report_videos, report_jf) if stored else None
    pages = {v: video_artifact_key(key, v) for v in report.paged} if report is not None else {}
    jf = ""
    if report is not None and report.jf is not None:
        jf = f"; J&F {report.jf:.3f}"
        if report.jf_baseline is not None:
            jf += f" (copy-first-mask {report.jf_baseline:.3f})"
    create_table_artifact(
        summary_table(results, report, pages),
        key=f"{key}-summary",
        description=f"Pseudo-labels of run {run.name!r} into {run.store}{jf}; review pages: column "
        "review_page" + ("" if not untrained_warnings(context) else " (UNTRAINED weights: see the flow log)"),
    )
    # The summary rows only: the frame tables stay in this process's memory, never in a result.
    return [r.summary() if isinstance(r, LabelledVideo) else r for r in results]
