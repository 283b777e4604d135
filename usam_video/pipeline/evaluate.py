"""Evaluation: J&F of predicted masks, and how well a store's scores rank its errors.

``evaluate_predictions`` compares predictions with a dataset's ground truth. The predictions
are either

* a usam-video store: masks bool ``(T, O, H, W)`` per object of ``summary.object_ids``, plus
  a score column per frame-object; or
* a folder of masks other methods published, in DAVIS layout (``<seq>/%05d.png`` palette
  PNGs) or SA-V layout (``<video>/<obj:03d>/%05d.png`` binary PNGs), detected or given.

Rules, the same for every source:

* **Frames.** Only frames with ground truth (``reader.annotated_frames``) are evaluated, and
  both protocols leave the first and the last annotated frame of a video out, as their
  reference code does. A video with fewer than 3 annotated frames therefore has nothing to
  evaluate: it is listed in :attr:`EvaluationResult.skipped` with the reason, and its
  predictions are not read (a predictions folder need not hold it).
* **Overlaps.** The DAVIS protocol compares index maps (one id per pixel). Where a store's
  (or an SA-V folder's) object masks overlap, objects are painted in ascending id order, so
  **the higher object id wins** the pixel. Ground truth given as overlapping masks (SA-V
  readers) is composed the same way; ground-truth void stays 255.
* **Ranking** (stores only; the UncertainSAM protocol of
  :mod:`usam_video.evaluation.ranking`). One item per frame-object on every annotated frame,
  except the frame-objects whose mask is their own prompt. Base IoU = IoU(store mask, ground
  truth) with ground-truth void pixels left out (1 when both are empty); the refinement is
  the ground truth itself ("segmentation uncertainty"), refined IoU = 1. Every score column
  whose direction the score registry knows is ranked (confidences are negated), plus a
  seeded uniform draw :data:`RANDOM_SAMPLE`; the report also holds the oracle and the exact
  expected random ordering ``random``. Correlations are those of the UNCERTAINTY (a negated
  confidence) with the base IoU, so a useful score is negatively correlated.

This module only orchestrates: the prediction sources and the ground truth are read by
:mod:`usam_video.pipeline.eval_sources`, the protocols run in
:mod:`usam_video.evaluation.protocols`, and :mod:`usam_video.evaluation.report` formats the
result. No Prefect here; ``flows/evaluate.py`` wraps :func:`evaluate_predictions` in one task.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.errors import EvaluationError, UsamVideoError
from usam_video.evaluation.jf import VOID_LABEL, DavisReport, DavisSequenceResult, summarize_davis
from usam_video.evaluation.protocols import (
    RANDOM_SAMPLE,
    RankingItems,
    coverage_of_items,
    davis_sequence,
    masks_to_index_map,
    rank_items,
    sav_video,
    score_direction,
)
from usam_video.evaluation.ranking import DEFAULT_RATIOS, RankingReport
from usam_video.evaluation.report import (
    EVALUATION_JSON,
    RANKING_PNG,
    EvaluationResult,
    evaluation_markdown,
    write_evaluation,
)
from usam_video.evaluation.sav import SavReport, SavVideoResult, summarize_sav
from usam_video.palette import annotation_from_index_map
from usam_video.pipeline.eval_sources import StorePredictions, ground_truth, gt_index_map, open_predictions
from usam_video.release import with_release_score

# The result, its formatting and the protocols' helpers are re-exported: callers import the
# evaluation job from here.
__all__ = [
    "jf_with_baseline",
    "left_out_notes",
    "EVALUATION_JSON",
    "RANKING_PNG",
    "PROTOCOLS",
    "RANDOM_SAMPLE",
    "EvaluationResult",
    "score_direction",
    "masks_to_index_map",
    "evaluate_predictions",
    "write_evaluation",
    "evaluation_markdown",
]

#: Evaluation protocols: DAVIS 2017 semi-supervised J&F, or the SA-V benchmark's J&F.
PROTOCOLS: tuple[str, ...] = ("davis", "sav")


def evaluate_predictions(
    source: Path | str,
    dataset: DatasetConfig,
    protocol: str = "davis",
    videos: Sequence[str] | None = None,
    *,
    layout: str | None = None,
    random_seed: int | None = 0,
    ratios: npt.ArrayLike = DEFAULT_RATIOS,
) -> EvaluationResult:
    """Evaluate a store or a predictions folder against a dataset's ground truth.

    Args:
        source: a usam-video store, or a folder of masks in DAVIS or SA-V layout.
        dataset: the dataset config with the ground truth.
        protocol: ``"davis"`` (DAVIS 2017 semi-supervised) or ``"sav"`` (SA-V benchmark).
        videos: the videos to evaluate; default the dataset config's selection.
        layout: ``"davis"`` or ``"sav"`` for a predictions folder; detected when None.
        random_seed: seed of the random score ranked beside a store's scores; None: none.
        ratios: refinement ratios of the ranking curves (default 0..0.5 in 51 steps).

    Returns:
        An :class:`EvaluationResult` (see the module docstring for the frame, overlap and
        ranking rules).

    Raises:
        EvaluationError: an unknown protocol or layout; a source that is neither a store nor
            a predictions folder; a video missing from the predictions; a mask of the wrong
            size or format (the file is named); or nothing at all to evaluate.
        StoreError: the store is unreadable.
    """
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol: expected one of {list(PROTOCOLS)}, got {protocol!r}.")
    reader = open_dataset(dataset)
    selected = list(videos) if videos is not None else reader.list_videos()
    if not selected:
        raise EvaluationError(
            f"dataset {dataset.name!r}: expected at least one video, the selection is empty."
        )
    predictions = open_predictions(source, layout, selected)
    store = predictions.store if isinstance(predictions, StorePredictions) else None

    davis_results: list[DavisSequenceResult] = []
    sav_results: list[SavVideoResult] = []
    skipped: dict[str, str] = {}
    notes: list[str] = []
    items = RankingItems()
    for video_id in selected:
        ref = reader.video(video_id)
        annotated = reader.annotated_frames(video_id)
        notes += left_out_notes(reader, video_id, annotated, protocol)
        eval_frames = annotated[1:-1]
        jf_reason = None
        if len(annotated) < 3:
            jf_reason = f"{len(annotated)} annotated frame(s): the protocol leaves the first and last out"
        # Read once: the ranking leaves prompt frames out, the DAVIS protocol scores late objects alone.
        prompts = reader.prompts(video_id) if store is not None else None
        prompt_frames: dict[int, set[int]] = {}
        rank_frames: list[int] = []
        if store is not None:
            for prompt in prompts or ():
                prompt_frames.setdefault(prompt.object_id, set()).add(prompt.frame_index)
            rank_frames = [t for t in annotated if any(t not in f for f in prompt_frames.values())]
        if jf_reason is not None and not rank_frames:
            skipped[video_id] = jf_reason  # nothing to read: the predictions need not hold it
            continue
        source_reason = predictions.prepare(ref)
        if source_reason is not None:
            skipped[video_id] = source_reason
            continue

        if protocol == "davis":
            gt_maps = {t: gt_index_map(reader, ref, t) for t in annotated}
            truth = {t: annotation_from_index_map(t, gt_maps[t]) for t in rank_frames}
            if jf_reason is None and not (np.isin(gt_maps[annotated[0]], (0, VOID_LABEL), invert=True)).any():
                jf_reason = f"no object on its first annotated frame {annotated[0]}"
        else:
            truth = {t: ground_truth(reader, ref, t) for t in annotated}
        gt_objects = sorted({i for ann in truth.values() for i in ann.object_ids})
        wanted = None if protocol == "davis" else gt_objects
        read_frames = sorted(set(rank_frames) | (set(eval_frames) if jf_reason is None else set()))
        predicted = predictions.read(ref, read_frames, wanted)

        if jf_reason is not None:
            skipped[video_id] = jf_reason
        elif protocol == "davis":
            gt = np.stack([gt_maps[t] for t in annotated])
            started = prompts if prompts is not None else reader.prompts(video_id)
            late = {p.object_id: p.frame_index for p in started if p.frame_index > annotated[0]}
            davis_results.append(
                davis_sequence(
                    video_id, gt, eval_frames, predicted, predictions.location, late, annotated,
                    ignore=list(reader.unprompted_objects(video_id)),
                )  # fmt: skip
            )
        else:
            sav_results.append(sav_video(video_id, truth, eval_frames, predicted, gt_objects))
        if store is not None and rank_frames:
            table = store.frame_table(video_id)
            where = f"{store.location}: video {video_id!r}"
            names, scores = with_release_score(table, store.summary(video_id).provenance, where)
            items.add_video(
                video_id,
                names,
                table.object_ids,
                scores,
                {t: truth[t] for t in rank_frames},
                predicted,
                prompt_frames,
            )

    jf: DavisReport | SavReport | None = None
    if davis_results and any(seq.objects for seq in davis_results):
        jf = summarize_davis(davis_results)
    elif sav_results and any(video.objects for video in sav_results):
        jf = summarize_sav(sav_results)
    ranking: RankingReport | None = None
    directions: dict[str, str] = {}
    note, dropped = "predictions folders carry no scores", 0
    if store is not None:
        ranking, note, directions, dropped = rank_items(items, random_seed, ratios)
    if jf is None and ranking is None:
        reasons = "; ".join(f"{v}: {r}" for v, r in skipped.items()) or "no object was scored"
        raise EvaluationError(
            f"dataset {dataset.name!r}: expected at least one video with frames to evaluate, found "
            f"none ({reasons})."
        )
    return EvaluationResult(
        source=str(source),
        source_kind=predictions.kind,
        dataset=dataset.name,
        protocol=protocol,
        jf=jf,
        skipped=skipped,
        ranking=ranking,
        ranking_note=note,
        ranking_videos=tuple(items.videos),
        score_directions=directions,
        unranked_scores=dict(items.unranked),
        dropped_items=dropped,
        random_seed=random_seed if ranking is not None else None,
        coverage=coverage_of_items(items) if store is not None else None,
        notes=tuple(notes),
    )


def left_out_notes(
    reader: DatasetReader, video_id: str, annotated: Sequence[int], protocol: str
) -> list[str]:
    """What the evaluation of one video leaves out, in plain words: objects of the ground truth
    that no prompt starts (DAVIS semantics: they enter after the first frame), and, for the
    DAVIS protocol, frames without ground truth between the first and last annotated one."""
    notes = []
    unprompted = reader.unprompted_objects(video_id)
    if unprompted:
        entered = ", ".join(f"{obj} (frame {frame})" for obj, frame in sorted(unprompted.items()))
        notes.append(
            f"video {video_id!r}: objects {entered} enter after the first frame: not prompted, not tracked "
            "and not evaluated (DAVIS semantics); set 'late_objects: true' in the dataset config to "
            "track and evaluate them from where they enter"
        )
    if protocol == "davis" and len(annotated) > 2:
        missing = sorted(set(range(annotated[0], annotated[-1] + 1)) - set(annotated))
        # A sparse annotation (every k-th frame) is a design, not a gap: note only holes in an
        # otherwise dense annotation.
        if missing and len(missing) < len(annotated):
            shown = ", ".join(str(t) for t in missing[:10]) + (" ..." if len(missing) > 10 else "")
            notes.append(
                f"video {video_id!r}: no ground truth on frames {shown} between its first and last "
                "annotated frame: left out of J&F and of the ranking"
            )
    return notes


def jf_with_baseline(
    store_path: str | Path, dataset: DatasetConfig, video_ids: Sequence[str]
) -> tuple[dict[str, float], dict[str, float], float | None, float | None, str, str]:
    """Per-video and overall J&F of the store and of the copy-first-mask baseline.

    Returns ``(per video, baseline per video, overall, baseline overall, protocol, note)``; the
    note says why there is no J&F (no ground truth, nothing evaluable).
    """
    if dataset.format == "video":
        return {}, {}, None, None, "davis", f"dataset {dataset.name!r} (plain videos) has no ground truth"
    # train_model imports the engine (sam2): only when a baseline is asked for.
    from usam_video.pipeline.train_model import write_copy_first_mask

    protocol = "sav" if dataset.format == "sav" else "davis"
    try:
        known = set(open_dataset(dataset).list_videos())
        videos = [v for v in video_ids if v in known]
        if not videos:
            return {}, {}, None, None, protocol, f"none of the videos is in dataset {dataset.name!r}"
        result = evaluate_predictions(store_path, dataset, protocol, videos, random_seed=None)
        if result.jf is None:
            return (
                {},
                {},
                None,
                None,
                protocol,
                f"no video of dataset {dataset.name!r} has frames to evaluate",
            )
        evaluated = list(result.videos)
        with tempfile.TemporaryDirectory(prefix="usam-report-baseline-") as folder:
            write_copy_first_mask(dataset, Path(folder), evaluated)
            baseline = evaluate_predictions(
                Path(folder), dataset, protocol, evaluated, layout="davis", random_seed=None
            )
    except UsamVideoError as exc:
        return {}, {}, None, None, protocol, f"no J&F: {exc}"
    per_video = {row["sequence"]: row["J&F"] for row in result.sequence_rows() if row["J&F"] is not None}
    base = {row["sequence"]: row["J&F"] for row in baseline.sequence_rows() if row["J&F"] is not None}
    return per_video, base, result.global_scores()["J&F"], baseline.global_scores()["J&F"], protocol, ""
