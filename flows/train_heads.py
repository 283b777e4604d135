"""The heads-training flow: record targets per video (one task each), train, report as artifacts."""

from __future__ import annotations

import math
from dataclasses import asdict

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.collect import as_they_complete
from flows.common import artifact_key_of, ensure_gpu_limit, gpu_slot, retry_unless_bad_input
from usam_video.config import load_train_heads_config
from usam_video.pipeline import TrainReport, record_video, train_from_container
from usam_video.pipeline.train_heads import records_on_cuda, videos_to_record

__all__ = ["record_video_task", "train_task", "train_heads_flow", "report_rows"]


@task(
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_unless_bad_input,
    task_run_name="record-{video_id}",
)
def record_video_task(config: str, video_id: str, use_gpu_limit: bool) -> int:
    """Propagate one video with the config's models and append its rows to the container."""
    cfg = load_train_heads_config(config)
    with gpu_slot(use_gpu_limit):
        return record_video(cfg, video_id)


@task(task_run_name="train-heads")
def train_task(config: str) -> TrainReport:
    """Fit every head on the container's rows and write them."""
    return train_from_container(load_train_heads_config(config))


def report_rows(report: TrainReport) -> list[dict[str, object]]:
    """One table row per head (NaN as None, 4 decimals)."""
    rows = []
    for head in report.heads:
        row = asdict(head)
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = None if not math.isfinite(value) else round(value, 4)
        rows.append(row)
    return rows


@flow(name="train-heads")
def train_heads_flow(config: str, use_gpu_limit: bool | None = None) -> TrainReport:
    """Record every usable video of a heads-training config (resuming its container), then train."""
    logger = get_run_logger()
    cfg = load_train_heads_config(config)
    videos = videos_to_record(cfg)
    if use_gpu_limit is None:
        use_gpu_limit = records_on_cuda(cfg)
    if use_gpu_limit:
        ensure_gpu_limit(1)
    futures = [record_video_task.submit(config, video_id, use_gpu_limit) for video_id in videos]
    failed_at = []
    for i, _, error in as_they_complete(futures):
        if error is not None:  # the task already retried; reported now, the other videos still count
            logger.error("video %s failed: %s", videos[i], error)
            failed_at.append(i)
    failed = [videos[i] for i in sorted(failed_at)]  # in the order of the config's videos
    report = train_task(config)
    key = artifact_key_of(cfg.name)
    create_table_artifact(
        report_rows(report), key=f"{key}-heads", description=f"USAM heads trained for {cfg.name!r}"
    )
    lines = [
        f"# Heads trained: {cfg.name}",
        f"Written to `{report.heads_dir}` (official format).",
        f"Train videos: {len(report.train_videos)}; validation videos: {', '.join(report.val_videos)}.",
        "",
        "| head | val rows | MAE | R2 | Pearson | Spearman | relative AUC |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report_rows(report):
        lines.append(
            f"| {row['name']} | {row['val_rows']} | {row['mae']} | {row['r2']} | {row['pearson']} | "
            f"{row['spearman']} | {row['relative_auc']} |"
        )
    if failed:
        lines.append(f"\nFailed videos (left out): {', '.join(failed)}")
    if any(m.model.random_init for m in cfg.models):
        lines.append(
            "\n**The SAM 2 weights are RANDOM (random_init): these heads describe an untrained model.**"
        )
    create_markdown_artifact("\n".join(lines), key=f"{key}-report", description="heads validation figures")
    return report
