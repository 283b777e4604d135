"""The refine flow: automatic refinement of a store's queue, one task per video."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.collect import as_they_complete
from flows.common import retry_unless_bad_input
from usam_video.pipeline import RefineResult, refine_store
from usam_video.pipeline.refine import refinable_videos

__all__ = ["refine_video_task", "refine_flow"]


@task(retries=1, retry_condition_fn=retry_unless_bad_input, task_run_name="refine-{video_id}")
def refine_video_task(store: str, video_id: str) -> RefineResult:
    """Refine one video's model-routed frame-objects."""
    return refine_store(store, [video_id])[0]


@flow(name="refine")
def refine_flow(store: str, videos: list[str] | None = None) -> list[RefineResult]:
    """Run the automatic refinements over a store's queue."""
    logger = get_run_logger()
    complete = refinable_videos(store)  # also checks the store before any task starts
    ids = videos if videos is not None else complete
    futures = [refine_video_task.submit(store, video_id) for video_id in ids]
    done: dict[int, RefineResult] = {}
    for i, result, error in as_they_complete(futures):
        if error is not None:  # reported as it happens; the others go on
            logger.error("refining %s failed: %s", ids[i], error)
            result = RefineResult(ids[i], 0, 0, "", error=f"{type(error).__name__}: {error}")
        assert result is not None
        done[i] = result
    results = [done[i] for i in range(len(ids))]  # in the order the videos were given
    create_table_artifact(
        [asdict(r) for r in results], key="refine-summary", description=f"refinement of {store}"
    )
    return results
