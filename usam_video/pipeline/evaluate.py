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

* **Baseline.** :func:`evaluate_copy_first_mask` evaluates the copy-first-mask baseline (each
  video's first annotation on every frame), built in memory under the rules of a DAVIS
  predictions folder; :func:`jf_with_baseline` gives a store's J&F beside it, per video and
  overall, which the review report and the demo print.

This module only orchestrates: the prediction sources and the ground truth are read by
:mod:`usam_video.pipeline.eval_sources`, the protocols run in
:mod:`usam_video.evaluation.protocols`, and :mod:`usam_video.evaluation.result` formats the
result. No Prefect here; ``flows/evaluate.py`` wraps :func:`evaluate_predictions` in one task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.errors import EvaluationError, UsamVideoError
from usam_video.evaluation.baseline import CopyFirstMask
from usam_video.evaluation.jf import VOID_LABEL, DavisReport, DavisSequenceResult, summarize_davis
from usam_video.evaluation.protocols import (
    RANDOM_SAMPLE,
    FrameMasks,
    RankingItems,
    coverage_of_items,
    davis_sequence,
    masks_to_index_map,
    rank_items,
    sav_video,
    score_direction,
)
from usam_video.evaluation.ranking import DEFAULT_RATIOS, RankingReport
from usam_video.evaluation.result import (
    EVALUATION_JSON,
    RANKING_PNG,
    EvaluationResult,
    evaluation_markdown,
    write_evaluation,
)
from usam_video.evaluation.sav import SavReport, SavVideoResult, summarize_sav
from usam_video.palette import annotation_from_index_map
from usam_video.pipeline.eval_sources import (
    Predictions,
    StorePredictions,
    ground_truth,
    gt_index_map,
    open_predictions,
)
from usam_video.release import with_release_score
from usam_video.store import FrameTable, PseudoLabelStore
from usam_video.types import FrameAnnotation, ObjectPrompt, VideoRef

# The result, its formatting and the protocols' helpers are re-exported: callers import the
# evaluation job from here.
__all__ = [
    "JfWithBaseline",
    "evaluate_copy_first_mask",
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
    source: Path | str | PseudoLabelStore,
    dataset: DatasetConfig,
    protocol: str = "davis",
    videos: Sequence[str] | None = None,
    *,
    layout: str | None = None,
    random_seed: int | None = 0,
    ratios: npt.ArrayLike = DEFAULT_RATIOS,
    reader: DatasetReader | None = None,
    tables: Mapping[str, FrameTable] | None = None,
) -> EvaluationResult:
    """Evaluate a store or a predictions folder against a dataset's ground truth.

    Args:
        source: a usam-video store (a path, or a store already open), or a folder of masks in
            DAVIS or SA-V layout.
        dataset: the dataset config with the ground truth.
        protocol: ``"davis"`` (DAVIS 2017 semi-supervised) or ``"sav"`` (SA-V benchmark).
        videos: the videos to evaluate; default the dataset config's selection.
        layout: ``"davis"`` or ``"sav"`` for a predictions folder; detected when None.
        random_seed: seed of the random score ranked beside a store's scores; None: none.
        ratios: refinement ratios of the ranking curves (default 0..0.5 in 51 steps).
        reader: the dataset already open (a run's), else it is opened here.
        tables: frame tables of the store's videos already in memory (what a run just wrote),
            read instead of the store's.

    Returns:
        An :class:`EvaluationResult` (see the module docstring for the frame, overlap and
        ranking rules).

    Raises:
        EvaluationError: an unknown protocol or layout; a source that is neither a store nor
            a predictions folder; a video missing from the predictions; a mask of the wrong
            size or format (the file is named); or nothing at all to evaluate.
        StoreError: the store is unreadable.
    """
    reader, selected = _selection(dataset, protocol, videos, reader)
    if isinstance(source, PseudoLabelStore):
        predictions: Predictions = StorePredictions(source, tables)
    else:
        predictions = open_predictions(source, layout, selected)
        if isinstance(predictions, StorePredictions):
            predictions.tables.update(tables or {})
    where = source.location if isinstance(source, PseudoLabelStore) else str(source)
    return _evaluate(where, predictions, reader, selected, dataset, protocol, random_seed, ratios)


def evaluate_copy_first_mask(
    dataset: DatasetConfig,
    protocol: str = "davis",
    videos: Sequence[str] | None = None,
    reader: DatasetReader | None = None,
) -> EvaluationResult:
    """J&F of the copy-first-mask baseline (each video's first annotation on every frame), the
    trivial tracker every model must beat; its predictions are built in memory
    (:class:`~usam_video.evaluation.baseline.CopyFirstMask`), under the rules of
    :func:`evaluate_predictions` for a predictions folder.

    Raises:
        EvaluationError: an unknown protocol, an empty selection, or nothing to evaluate.
    """
    reader, selected = _selection(dataset, protocol, videos, reader)
    predictions = _CopyFirstMaskPredictions(reader)
    return _evaluate(
        "copy-first-mask", predictions, reader, selected, dataset, protocol, None, DEFAULT_RATIOS
    )


class _CopyFirstMaskPredictions(Predictions):
    """The copy-first-mask baseline of a dataset's videos as a prediction source, computed from
    each video's first annotated frame when the video is read."""

    kind = "copy-first-mask"

    def __init__(self, reader: DatasetReader):
        self.reader = reader
        self.location = f"copy-first-mask baseline of dataset {reader.name!r}"

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, FrameMasks]:
        first_frame = self.reader.annotated_frames(video.video_id)[0]
        first = self.reader.ground_truth(video.video_id, first_frame)
        return CopyFirstMask.of(first, video.height, video.width).frames(frames, object_ids)


@dataclass
class _Collected:
    """What the evaluation of the selected videos gathers, video by video."""

    davis: list[DavisSequenceResult] = field(default_factory=list)
    sav: list[SavVideoResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # video -> why it has no J&F
    notes: list[str] = field(default_factory=list)
    items: RankingItems = field(default_factory=RankingItems)


def _selection(
    dataset: DatasetConfig, protocol: str, videos: Sequence[str] | None, reader: DatasetReader | None
) -> tuple[DatasetReader, list[str]]:
    """The dataset's reader (``reader``, or opened here) and the videos to evaluate, the protocol
    checked first."""
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol: expected one of {list(PROTOCOLS)}, got {protocol!r}.")
    reader = reader if reader is not None else open_dataset(dataset)
    selected = list(videos) if videos is not None else reader.list_videos()
    if not selected:
        raise EvaluationError(
            f"dataset {dataset.name!r}: expected at least one video, the selection is empty."
        )
    return reader, selected


def _evaluate(
    source: str,
    predictions: Predictions,
    reader: DatasetReader,
    selected: Sequence[str],
    dataset: DatasetConfig,
    protocol: str,
    random_seed: int | None,
    ratios: npt.ArrayLike,
) -> EvaluationResult:
    """Evaluate ``predictions`` on the ``selected`` videos and summarise them (the result of
    :func:`evaluate_predictions`)."""
    collected = _Collected()
    for video_id in selected:
        _evaluate_video(collected, reader, predictions, video_id, protocol)
    store = predictions.store if isinstance(predictions, StorePredictions) else None
    jf = _summarize_jf(collected)
    ranking: RankingReport | None = None
    directions: dict[str, str] = {}
    note, dropped = "predictions folders carry no scores", 0
    if store is not None:
        ranking, note, directions, dropped = rank_items(collected.items, random_seed, ratios)
    if jf is None and ranking is None:
        reasons = "; ".join(f"{v}: {r}" for v, r in collected.skipped.items()) or "no object was scored"
        raise EvaluationError(
            f"dataset {dataset.name!r}: expected at least one video with frames to evaluate, found "
            f"none ({reasons})."
        )
    return EvaluationResult(
        source=source,
        source_kind=predictions.kind,
        dataset=dataset.name,
        protocol=protocol,
        jf=jf,
        skipped=collected.skipped,
        ranking=ranking,
        ranking_note=note,
        ranking_videos=tuple(collected.items.videos),
        score_directions=directions,
        unranked_scores=dict(collected.items.unranked),
        dropped_items=dropped,
        random_seed=random_seed if ranking is not None else None,
        coverage=coverage_of_items(collected.items) if store is not None else None,
        notes=tuple(collected.notes),
    )


def _evaluate_video(
    collected: _Collected, reader: DatasetReader, predictions: Predictions, video_id: str, protocol: str
) -> None:
    """One video's J&F (or why it has none) and, for a store, its ranking items, into ``collected``."""
    store = predictions.store if isinstance(predictions, StorePredictions) else None
    ref = reader.video(video_id)
    annotated = reader.annotated_frames(video_id)
    collected.notes += left_out_notes(reader, video_id, annotated, protocol)
    eval_frames = annotated[1:-1]
    jf_reason = None
    if len(annotated) < 3:
        jf_reason = f"{len(annotated)} annotated frame(s): the protocol leaves the first and last out"
    # Read once: the ranking leaves prompt frames out, the DAVIS protocol scores late objects alone.
    prompts = reader.prompts(video_id) if store is not None else None
    prompt_frames, rank_frames = _ranked_frames(prompts, annotated)
    if jf_reason is not None and not rank_frames:
        collected.skipped[video_id] = jf_reason  # nothing to read: the predictions need not hold it
        return
    source_reason = predictions.prepare(ref)
    if source_reason is not None:
        collected.skipped[video_id] = source_reason
        return
    gt_maps, truth, jf_reason = _ground_truth(reader, ref, annotated, rank_frames, protocol, jf_reason)
    gt_objects = sorted({i for ann in truth.values() for i in ann.object_ids})
    wanted = None if protocol == "davis" else gt_objects
    read_frames = sorted(set(rank_frames) | (set(eval_frames) if jf_reason is None else set()))
    predicted = predictions.read(ref, read_frames, wanted)

    if jf_reason is not None:
        collected.skipped[video_id] = jf_reason
    elif protocol == "davis":
        started = prompts if prompts is not None else reader.prompts(video_id)
        collected.davis.append(
            _davis_video(reader, predictions, video_id, gt_maps, annotated, predicted, started)
        )
    else:
        collected.sav.append(sav_video(video_id, truth, eval_frames, predicted, gt_objects))
    if store is not None and rank_frames:
        assert isinstance(predictions, StorePredictions)
        table = predictions.frame_table(video_id)
        where = f"{store.location}: video {video_id!r}"
        names, scores = with_release_score(table, store.summary(video_id).provenance, where)
        ranked_truth = {t: truth[t] for t in rank_frames}
        collected.items.add_video(
            video_id, names, table.object_ids, scores, ranked_truth, predicted, prompt_frames
        )


def _ranked_frames(
    prompts: Sequence[ObjectPrompt] | None, annotated: Sequence[int]
) -> tuple[dict[int, set[int]], list[int]]:
    """``({object: its prompt frames}, the annotated frames ranked)``: a frame is ranked when some
    object is not prompted on it. ``prompts`` None (a predictions folder): nothing is ranked."""
    prompt_frames: dict[int, set[int]] = {}
    if prompts is None:
        return prompt_frames, []
    for prompt in prompts:
        prompt_frames.setdefault(prompt.object_id, set()).add(prompt.frame_index)
    return prompt_frames, [t for t in annotated if any(t not in f for f in prompt_frames.values())]


def _ground_truth(
    reader: DatasetReader,
    ref: VideoRef,
    annotated: Sequence[int],
    rank_frames: Sequence[int],
    protocol: str,
    jf_reason: str | None,
) -> tuple[dict[int, npt.NDArray[np.uint8]], dict[int, FrameAnnotation], str | None]:
    """``(index maps, annotations, jf_reason)`` of a video's ground truth: the DAVIS protocol
    reads uint8 ``(H, W)`` index maps of every annotated frame (255 void) and splits those of the
    ranked frames into annotations; SA-V reads the annotations of every annotated frame and no
    index map. ``jf_reason`` gains why the video has no J&F (no object on its first frame)."""
    if protocol != "davis":
        return {}, {t: ground_truth(reader, ref, t) for t in annotated}, jf_reason
    gt_maps = {t: gt_index_map(reader, ref, t) for t in annotated}
    truth = {t: annotation_from_index_map(t, gt_maps[t]) for t in rank_frames}
    if jf_reason is None and not (np.isin(gt_maps[annotated[0]], (0, VOID_LABEL), invert=True)).any():
        jf_reason = f"no object on its first annotated frame {annotated[0]}"
    return gt_maps, truth, jf_reason


def _davis_video(
    reader: DatasetReader,
    predictions: Predictions,
    video_id: str,
    gt_maps: dict[int, npt.NDArray[np.uint8]],
    annotated: Sequence[int],
    predicted: dict[int, FrameMasks],
    prompts: Sequence[ObjectPrompt],
) -> DavisSequenceResult:
    """The DAVIS protocol on one video; objects prompted after its first annotated frame are
    evaluated alone, from where they start."""
    gt = np.stack([gt_maps[t] for t in annotated])
    late = {p.object_id: p.frame_index for p in prompts if p.frame_index > annotated[0]}
    return davis_sequence(
        video_id, gt, annotated[1:-1], predicted, predictions.location, late, annotated,
        ignore=list(reader.unprompted_objects(video_id)),
    )  # fmt: skip


def _summarize_jf(collected: _Collected) -> DavisReport | SavReport | None:
    """The J&F report of the evaluated videos; None when no video had an object to score."""
    if collected.davis and any(seq.objects for seq in collected.davis):
        return summarize_davis(collected.davis)
    if collected.sav and any(video.objects for video in collected.sav):
        return summarize_sav(collected.sav)
    return None


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


@dataclass(frozen=True)
class JfWithBaseline:
    """J&F of a store's videos beside the copy-first-mask baseline's, on the same videos.

    Attributes:
        per_video, baseline_per_video: ``{video: J&F}`` of the evaluated videos.
        jf, baseline: overall J&F of the store and of the baseline; None without one.
        protocol: ``"davis"`` (values in [0, 1]) or ``"sav"`` (x100).
        note: why there is no J&F (no ground truth, nothing evaluable); "" when there is.
    """

    per_video: Mapping[str, float] = field(default_factory=dict)
    baseline_per_video: Mapping[str, float] = field(default_factory=dict)
    jf: float | None = None
    baseline: float | None = None
    protocol: str = "davis"
    note: str = ""


def jf_with_baseline(
    store_path: str | Path | PseudoLabelStore,
    dataset: DatasetConfig,
    video_ids: Sequence[str],
    *,
    reader: DatasetReader | None = None,
    tables: Mapping[str, FrameTable] | None = None,
) -> JfWithBaseline:
    """Per-video and overall J&F of the store and of the copy-first-mask baseline, on the
    ``video_ids`` that the dataset holds and that have frames to evaluate. Never raises for a
    dataset without ground truth or an evaluation that fails: the result's note says why.

    ``reader`` (the dataset already open) and ``tables`` (frame tables in memory) spare a run
    opening its dataset and reading its tables again."""
    if dataset.format == "video":
        return JfWithBaseline(note=f"dataset {dataset.name!r} (plain videos) has no ground truth")
    protocol = "sav" if dataset.format == "sav" else "davis"
    try:
        reader = reader if reader is not None else open_dataset(dataset)
        known = set(reader.list_videos())
        videos = [v for v in video_ids if v in known]
        if not videos:
            note = f"none of the videos is in dataset {dataset.name!r}"
            return JfWithBaseline(protocol=protocol, note=note)
        result = evaluate_predictions(
            store_path, dataset, protocol, videos, random_seed=None, reader=reader, tables=tables
        )
        if result.jf is None:
            note = f"no video of dataset {dataset.name!r} has frames to evaluate"
            return JfWithBaseline(protocol=protocol, note=note)
        baseline = evaluate_copy_first_mask(dataset, protocol, list(result.videos), reader)
    except UsamVideoError as exc:
        return JfWithBaseline(protocol=protocol, note=f"no J&F: {exc}")
    return JfWithBaseline(
        per_video=_per_video_jf(result),
        baseline_per_video=_per_video_jf(baseline),
        jf=result.global_scores()["J&F"],
        baseline=baseline.global_scores()["J&F"],
        protocol=protocol,
    )


def _per_video_jf(result: EvaluationResult) -> dict[str, float]:
    return {row["sequence"]: row["J&F"] for row in result.sequence_rows() if row["J&F"] is not None}
