"""The human-review flows: export the queue for annotators, import their corrections.

One task each (references in, a small frozen result out); the flow publishes a table artifact of
counts per video. Neither task retries: bad input fails the same way every time, and an import
is all-or-nothing (a rejected one leaves the store unchanged).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.common import store_artifact_key
from usam_video.pipeline.review import ExportResult, ImportResult, export_queue, import_corrections

__all__ = [
    "export_task",
    "import_task",
    "export_flow",
    "import_flow",
    "export_rows",
    "import_rows",
    "artifact_key",
]


def artifact_key(kind: str, store: str) -> str:
    """``review-<kind>-<store name>`` as a Prefect artifact key (lowercase, digits, dashes)."""
    return store_artifact_key(f"review-{kind}", store)


@task(task_run_name="export-{fmt}")
def export_task(
    store: str,
    fmt: str,
    out: str,
    video: str | None = None,
    include_refine: bool = False,
    force: bool = False,
) -> ExportResult:
    """Export the queued frames of ``store`` as ``fmt`` into ``out``."""
    return export_queue(store, fmt, out, video_id=video, include_refine=include_refine, force=force)


@task(task_run_name="import-corrections")
def import_task(store: str, path: str, relabel: bool = True) -> ImportResult:
    """Import the corrections at ``path`` into ``store`` and re-propagate the touched videos."""
    return import_corrections(store, path, relabel=relabel)


def export_rows(result: ExportResult) -> list[dict[str, Any]]:
    """Rows of the export's table artifact: one per video (skipped videos included)."""
    rows: list[dict[str, Any]] = [{"video": v, "frames": n, "note": ""} for v, n in result.frames.items()]
    rows += [{"video": v, "frames": 0, "note": why} for v, why in result.skipped_videos.items()]
    return rows


def import_rows(result: ImportResult) -> list[dict[str, Any]]:
    """Rows of the import's table artifact: one per corrected video with its relabelling."""
    outcomes = {r.video_id: r for r in result.relabelled}
    rows = []
    for video, n in result.corrected.items():
        r = outcomes.get(video)
        rows.append(
            {
                "video": video,
                "corrected": n,
                "relabel": r.outcome if r is not None else "not relabelled",
                "queued_human": r.queued_human if r is not None else None,
                "error": r.error if r is not None else "",
            }
        )
    return rows


@flow(name="review-export")
def export_flow(
    store: str,
    fmt: str,
    out: str,
    video: str | None = None,
    include_refine: bool = False,
    force: bool = False,
) -> ExportResult:
    """Export the frames queued for human review; publishes ``review-export-<store>``."""
    result = export_task.submit(store, fmt, out, video, include_refine, force).result()
    create_table_artifact(
        export_rows(result),
        key=artifact_key("export", store),
        description=f"{result.total_frames} frames ({result.queued} queued frame-objects, "
        f"{result.context} more for context) of {store} exported as {result.format} to {out}",
    )
    return result


@flow(name="review-import")
def import_flow(store: str, path: str, relabel: bool = True) -> ImportResult:
    """Import corrected masks and re-propagate; publishes ``review-import-<store>``."""
    result = import_task.submit(store, path, relabel).result()
    if not result.total_corrected:
        get_run_logger().info("nothing to import: %s", result.describe())
    create_table_artifact(
        import_rows(result),
        key=artifact_key("import", store),
        description=f"{result.total_corrected} corrections from {path} into {store} ({result.describe()})",
    )
    return result
