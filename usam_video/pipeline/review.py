"""Human review: the functions ``usam-video export``/``import`` and the review flows call.

``export_queue`` writes the queued frames for annotators (frames decoded with the dataset
reader of the run config kept in the store). ``import_corrections`` validates an annotator's
files completely, writes the edited and the confirmed (queued, unchanged) masks as corrections in
one batch named by the import's id (``replace_masks``: the replaced masks go to the history; a
rerun after a kill resumes that batch), then propagates every touched video again with the
corrections as SAM 2 conditioning frames (``relabel_videos``), which keeps them exactly and
rescores the rest. That relabel is the video's next review round: it plans only what the human
budget has left after every correction so far (a budget is a total over all rounds), and the
run's ``max_per_run`` is shared by the relabelled videos once all are done
(``share_run_budget``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from usam_video.datasets import FrameSource, open_dataset
from usam_video.errors import UsamVideoError
from usam_video.pipeline.label import relabel_videos, run_config_of, share_run_budget
from usam_video.review import ExportResult, ImportResult, export_review, plan_import
from usam_video.store import FrameTable, PseudoLabelStore
from usam_video.types import MaskSource, Status, VideoResult

__all__ = ["ExportResult", "ImportResult", "export_queue", "import_corrections", "write_review_plan"]

log = logging.getLogger(__name__)


def export_queue(
    store_path: str | Path,
    fmt: str,
    out: str | Path,
    video_id: str | None = None,
    include_refine: bool = False,
    force: bool = False,
) -> ExportResult:
    """Export the frames queued for human review (and for refinement with ``include_refine``)
    of a store as ``fmt`` (cvat, coco or png) into the new folder ``out`` (written under a
    temporary name and renamed at the end).

    Args:
        force: replace a non-empty ``out`` that is not an unedited earlier export.

    Raises:
        StoreNotFoundError: no store at ``store_path``.
        InputError: unknown format, an ``out`` that is not new, empty or an unedited earlier
            export, no run config in a video's provenance.
    """
    store = PseudoLabelStore.open(store_path, mode="r")

    def frame_sources(vid: str) -> FrameSource:
        return open_dataset(run_config_of(store, vid).dataset).frames(vid)

    return export_review(
        store, fmt, out, frame_sources, video_id=video_id, include_refine=include_refine, force=force
    )


def import_corrections(store_path: str | Path, path: str | Path, relabel: bool = True) -> ImportResult:
    """Import corrected masks (an export folder, a CVAT .xml, a COCO .json or a masks/ folder).

    Every entry is validated before anything is written; a bad one rejects the whole import and
    leaves the store byte-identical. Edited masks and the unchanged masks of queued frame-objects
    (confirmed by the reviewer) become corrections; unchanged ones that were not queued are left
    as they were. Entries already imported are skipped, so importing the same files twice is a
    no-op the second time, and a rerun after an interrupted import finishes it as if it had not
    been interrupted (same generation, no history row twice).

    Args:
        relabel: propagate the touched videos again from their corrections (forward and
            backward), rescore and rewrite them. Without it the corrections are stored and the
            next ``relabel``/``run`` of the video uses them.

    Returns:
        counts per video, skipped entries, and one ``VideoResult`` per relabelled video (outcome
        ``failed`` with the error if relabelling it failed: its corrections are stored all the same).

    Raises:
        InputError: listing every bad entry.
        StoreNotFoundError: no store at ``store_path``.
    """
    # Read-only first: opening a missing store for writing would create one.
    plan = plan_import(PseudoLabelStore.open(store_path, mode="r"), path)

    def result(
        corrected: dict[str, int], relabelled: tuple[VideoResult, ...] = (), generation: int | None = None
    ) -> ImportResult:
        return ImportResult(
            Path(path),
            plan.source.format,
            corrected,
            len(plan.skipped),
            relabelled,
            generation,
            edited=len(plan.edited),
            confirmed=len(plan.confirmed),
            not_queued=len(plan.not_queued),
            import_id=plan.import_id,
            resumed=plan.resumed,
        )

    if not plan.updates and not plan.resumed:
        return result({})
    # A resumed import with nothing left to write still closes its record in the store.
    writable = PseudoLabelStore.open(store_path)
    generation = writable.replace_masks(plan.updates, batch_id=plan.batch_id, key=plan.export_key)
    # Every video of the batch, the part written before an interruption included: the first run
    # died before relabelling any of them.
    batch = writable.batch(plan.batch_id)
    videos = sorted(batch.history) if batch is not None else list(plan.videos)
    relabelled: list[VideoResult] = []
    for video_id in videos if relabel else ():
        # The corrections are stored already: a video that fails to relabel (its dataset moved,
        # say) is reported as failed and the others still run, as in label_dataset.
        try:
            relabelled.extend(relabel_videos(store_path, [video_id], run_budget=False))
        except UsamVideoError as exc:
            log.error("relabelling video %s after the import failed: %s", video_id, exc)
            relabelled.append(VideoResult(video_id, "failed", error=f"{type(exc).__name__}: {exc}"))
    # The run budget once every video is relabelled: the planner shares it across all of them,
    # not first come first served.
    relabelled = share_run_budget(store_path, relabelled)
    return result(plan.counts(), tuple(relabelled), generation)


def write_review_plan(
    store_path: str | Path | PseudoLabelStore,
    video_id: str,
    path: str | Path,
    score: str | None = None,
    *,
    dpi: int = 110,
    figsize: tuple[float, float] = (8.0, 3.2),
    table: FrameTable | None = None,
) -> Path:
    """Draw one stored video's review plan (its score per object and frame, the planner's
    picks with their rank, the conditioning, queued and corrected frame-objects) as a PNG at
    ``path``.

    Args:
        score: the score to draw; default the run's human-budget priority, else ``sam_iou``.
        dpi, figsize: output size (``plot_review_plan``'s).
        table: the video's frame table when the caller has it (a run's report); default: read.
    """
    from usam_video.evaluation.plots import plot_review_plan

    store = PseudoLabelStore.opened(store_path)
    table = table if table is not None else store.frame_table(video_id)
    if score is None:
        budget = run_config_of(store, video_id).policy.human_budget
        score = budget.priority if budget is not None else "sam_iou"
    column = table.scores[..., table.score_names.index(score)]
    tracked = table.status != Status.NOT_STARTED

    def frames_where(mask: np.ndarray) -> dict[int, list[int]]:
        """``{object_id: frames}`` where ``mask`` (bool ``(T, O)``) holds."""
        return {int(obj): np.nonzero(mask[:, o])[0].tolist() for o, obj in enumerate(table.object_ids)}

    timelines = {
        int(obj): (np.nonzero(tracked[:, o])[0].tolist(), column[tracked[:, o], o].tolist())
        for o, obj in enumerate(table.object_ids)
    }
    conditioning = {}
    if table.source is not None:
        conditioning = frames_where(np.isin(table.source, [MaskSource.PROMPT, MaskSource.HUMAN]))
    queued = frames_where(np.isin(table.status, [Status.QUEUED_HUMAN, Status.QUEUED_REFINE]))
    corrected = frames_where(table.status == Status.CORRECTED)
    picks = [(t, obj, int(e["rank"])) for (t, obj), e in store.review_plan(video_id).items()]
    return plot_review_plan(
        video_id,
        timelines,
        picks,
        path,
        score=score,
        conditioning=conditioning,
        queued=queued,
        corrected=corrected,
        dpi=dpi,
        figsize=figsize,
    )
