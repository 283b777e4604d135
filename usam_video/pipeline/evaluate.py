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

No Prefect here; ``flows/evaluate.py`` wraps :func:`evaluate_predictions` in one task.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, DavisReader, open_dataset
from usam_video.errors import EvaluationError, StoreError, VideoNotFoundError
from usam_video.evaluation import (
    DEFAULT_RATIOS,
    LAYOUTS,
    VOID_LABEL,
    DavisReport,
    DavisSequenceResult,
    RankingReport,
    SavReport,
    SavVideoResult,
    db_eval_iou,
    detect_prediction_layout,
    evaluate_davis_sequence,
    evaluate_ranking,
    evaluate_sav_video,
    plot_ranking_curves,
    read_davis_prediction_folder,
    read_sav_prediction_folder,
    summarize_davis,
    summarize_sav,
    uncertainty_from_confidence,
)
from usam_video.score_registry import direction_of, is_known
from usam_video.store import PseudoLabelStore
from usam_video.types import FrameAnnotation, VideoRef

__all__ = [
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
#: Name of the seeded uniform random score ranked beside the store's scores ("random" is the
#: exact expected random ordering, computed without sampling).
RANDOM_SAMPLE = "random_sample"

#: File names :func:`write_evaluation` writes.
EVALUATION_JSON = "evaluation.json"
RANKING_PNG = "ranking.png"


def score_direction(name: str) -> str | None:
    """``"confidence"`` or ``"uncertainty"`` as :mod:`usam_video.score_registry` says; None for
    a video feature (no direction of its own) or a name the registry does not know (a column of
    an older store), which ranking then leaves out with the reason."""
    if not is_known(name):
        return None
    direction = direction_of(name)
    return None if direction == "feature" else direction


def masks_to_index_map(
    object_ids: Sequence[int], masks: npt.ArrayLike, *, where: str = "masks"
) -> npt.NDArray[np.uint8]:
    """Compose per-object masks into one DAVIS index map.

    Args:
        object_ids: the ``O`` ids, each in 1..254.
        masks: bool ``(O, H, W)``; masks may overlap.
        where: names the masks in error messages.

    Returns:
        uint8 ``(H, W)``: 0 background, else the id of the covering object; objects are
        painted in ascending id order, so on overlap the higher id wins.

    Raises:
        EvaluationError: an id outside 1..254 (0 is background, 255 void in DAVIS maps), or
            a mask count that differs from the id count.
    """
    arr = np.asarray(masks, dtype=bool)
    if arr.ndim != 3 or arr.shape[0] != len(object_ids):
        raise EvaluationError(
            f"{where}: expected bool (O, H, W) masks for {len(object_ids)} objects, got shape {arr.shape}."
        )
    bad = [int(i) for i in object_ids if not 1 <= int(i) <= 254]
    if bad:
        raise EvaluationError(
            f"{where}: expected object ids 1..254 for the DAVIS protocol (one id per pixel), got "
            f"{bad}. Use --protocol sav for datasets with other ids."
        )
    out = np.zeros(arr.shape[1:], dtype=np.uint8)
    for index in np.argsort(np.asarray(object_ids, dtype=np.int64), kind="stable"):
        out[arr[index]] = int(object_ids[index])
    return out


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Outcome of :func:`evaluate_predictions`.

    Attributes:
        source: the store or folder evaluated.
        source_kind: ``"store"``, ``"davis-folder"`` or ``"sav-folder"``.
        dataset: dataset name (from its config).
        protocol: ``"davis"`` (values in [0, 1]) or ``"sav"`` (values x100).
        jf: the J&F report, or None when no video had a frame to evaluate.
        skipped: ``{video: reason}`` of the videos left out of ``jf``.
        ranking: the ranking report of a store's scores; None for folders or when no item
            could be ranked (``ranking_note`` says why).
        ranking_videos: videos that contributed ranking items.
        score_directions: ``{score: "confidence" | "uncertainty" | "random"}`` of the
            ranked scores.
        unranked_scores: ``{score: reason}`` of store scores left out of the ranking.
        dropped_items: ranking items left out for a non-finite score.
        random_seed: seed of :data:`RANDOM_SAMPLE`, None when not drawn.
    """

    source: str
    source_kind: str
    dataset: str
    protocol: str
    jf: DavisReport | SavReport | None
    skipped: Mapping[str, str]
    ranking: RankingReport | None = None
    ranking_note: str = ""
    ranking_videos: tuple[str, ...] = ()
    score_directions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    unranked_scores: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dropped_items: int = 0
    random_seed: int | None = None

    @property
    def videos(self) -> tuple[str, ...]:
        """Videos in the J&F report, in evaluation order."""
        if isinstance(self.jf, DavisReport):
            return tuple(seq.sequence for seq in self.jf.sequences)
        if isinstance(self.jf, SavReport):
            return tuple(video.video for video in self.jf.videos)
        return ()

    def global_scores(self) -> dict[str, float | None]:
        """``{"J&F", "J", "F"}`` over all objects (DAVIS: J-Mean/F-Mean in [0, 1]; SA-V: x100)."""
        if isinstance(self.jf, DavisReport):
            values = (self.jf.jf_mean, self.jf.j_mean, self.jf.f_mean)
        elif isinstance(self.jf, SavReport):
            values = (self.jf.jf, self.jf.j, self.jf.f)
        else:
            values = (math.nan, math.nan, math.nan)
        return {name: _json_float(v) for name, v in zip(("J&F", "J", "F"), values, strict=True)}

    def sequence_rows(self) -> list[dict[str, Any]]:
        """One row per evaluated video: objects, frames and the means over its objects."""
        rows: list[dict[str, Any]] = []
        if isinstance(self.jf, DavisReport):
            for seq in self.jf.sequences:
                rows.append(
                    _sequence_row(
                        seq.sequence,
                        len(seq.frames),
                        [o.j_mean for o in seq.objects],
                        [o.f_mean for o in seq.objects],
                    )
                )
        elif isinstance(self.jf, SavReport):
            for video in self.jf.videos:
                rows.append(
                    _sequence_row(
                        video.video,
                        len(video.frames),
                        [o.j for o in video.objects],
                        [o.f for o in video.objects],
                    )
                )
        return rows

    def ranking_rows(self) -> list[dict[str, Any]]:
        """Table 5 of the paper: per score its relative AUC, Pearson and Spearman with IoU.

        Scores first (store order, then :data:`RANDOM_SAMPLE`), then the expected ``random``
        ordering and the ``oracle`` (relative AUC 1 by definition).
        """
        if self.ranking is None:
            return []
        rows = []
        for curve in (*self.ranking.curves, self.ranking.random, self.ranking.oracle):
            corr = curve.correlation
            rows.append(
                {
                    "score": curve.name,
                    "direction": self.score_directions.get(curve.name, "reference"),
                    "relative_auc": _json_float(curve.relative_auc),
                    "relative_auc_vs_random": _json_float(curve.relative_auc_vs_random),
                    "pearson": None if corr is None else _json_float(corr.pearson),
                    "spearman": None if corr is None else _json_float(corr.spearman),
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null) with per-frame J and F."""
        ranking: dict[str, Any] | None = None
        if self.ranking is not None:
            ranking = {
                "refinement": "ground_truth",
                "table": self.ranking_rows(),
                "videos": list(self.ranking_videos),
                "score_directions": dict(self.score_directions),
                "random_seed": self.random_seed,
                "dropped_items": self.dropped_items,
                **self.ranking.as_dict(),
            }
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "global": self.global_scores(),
            "sequences": self.sequence_rows(),
            "skipped": dict(self.skipped),
            "jf": None if self.jf is None else self.jf.as_dict(per_frame=True),
            "ranking": ranking,
            "ranking_note": self.ranking_note,
            "unranked_scores": dict(self.unranked_scores),
        }


def _sequence_row(name: str, frames: int, j: list[float], f: list[float]) -> dict[str, Any]:
    j_mean = float(np.mean(j)) if j else math.nan
    f_mean = float(np.mean(f)) if f else math.nan
    return {
        "sequence": name,
        "objects": len(j),
        "frames": frames,
        "J&F": _json_float((j_mean + f_mean) / 2.0),
        "J": _json_float(j_mean),
        "F": _json_float(f_mean),
    }


# --------------------------------------------------------------------------------------
# Prediction sources
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _FrameMasks:
    """Predicted masks of one frame: ``masks`` bool ``(O, H, W)`` for ``object_ids``; a DAVIS
    folder also keeps the uint8 ``(H, W)`` ``index_map`` it read, used as is by the DAVIS
    protocol (so its checks see the file's own ids, 255 included)."""

    object_ids: tuple[int, ...]
    masks: np.ndarray
    index_map: np.ndarray | None = None

    def mask_of(self, object_id: int) -> np.ndarray:
        if object_id in self.object_ids:
            return self.masks[self.object_ids.index(object_id)]
        return np.zeros(self.masks.shape[1:], dtype=bool)


class _Predictions(abc.ABC):
    """Where predicted masks come from."""

    kind: str
    location: str

    def prepare(self, video: VideoRef) -> str | None:
        """Check the source has ``video`` with its geometry; return a reason to skip it or None."""
        return None

    @abc.abstractmethod
    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, _FrameMasks]:
        """``{frame: masks}`` on ``frames``; ``object_ids`` the objects needed (None: all)."""


class _StorePredictions(_Predictions):
    kind = "store"

    def __init__(self, store: PseudoLabelStore):
        self.store = store
        self.location = store.location

    def prepare(self, video: VideoRef) -> str | None:
        try:
            summary = self.store.summary(video.video_id)
        except VideoNotFoundError as exc:
            raise EvaluationError(
                f"{self.location}: expected video {video.video_id!r} of the dataset in the store, "
                f"found only {self.store.videos()}. Label it first, or select videos with --video."
            ) from exc
        geometry = (summary.num_frames, summary.height, summary.width)
        if geometry != (video.num_frames, video.height, video.width):
            raise EvaluationError(
                f"{self.location}: expected video {video.video_id!r} with {video.num_frames} frames "
                f"of {video.height}x{video.width} (HxW) like the dataset, the store holds "
                f"{geometry[0]} frames of {geometry[1]}x{geometry[2]}."
            )
        if not summary.complete:
            return "incomplete in the store (labelling was interrupted); run the labelling again"
        return None

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, _FrameMasks]:
        stored = tuple(int(i) for i in self.store.summary(video.video_id).object_ids)
        if object_ids is not None:
            missing = sorted(set(object_ids) - set(stored))
            if missing:
                raise EvaluationError(
                    f"{self.location}: expected objects {sorted(object_ids)} of video "
                    f"{video.video_id!r} (its ground truth), the store has {list(stored)}."
                )
        return {t: _FrameMasks(stored, self.store.read_masks(video.video_id, t)) for t in frames}


class _DavisFolderPredictions(_Predictions):
    kind = "davis-folder"

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, _FrameMasks]:
        maps = read_davis_prediction_folder(
            self.root, video.video_id, frame_indices=frames, size=(video.height, video.width)
        )
        out = {}
        for t, index_map in zip(frames, maps, strict=True):
            ids = (
                tuple(int(v) for v in np.unique(index_map) if v != 0)
                if object_ids is None
                else tuple(object_ids)
            )
            masks = np.stack([index_map == i for i in ids]) if ids else np.zeros((0, *index_map.shape), bool)
            out[t] = _FrameMasks(ids, masks, index_map)
        return out


class _SavFolderPredictions(_Predictions):
    kind = "sav-folder"

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def read(
        self, video: VideoRef, frames: Sequence[int], object_ids: Sequence[int] | None
    ) -> dict[int, _FrameMasks]:
        masks = read_sav_prediction_folder(
            self.root,
            video.video_id,
            frame_indices=frames,
            object_ids=object_ids,
            size=(video.height, video.width),
        )
        ids = tuple(sorted(masks))
        empty = np.zeros((0, video.height, video.width), dtype=bool)
        return {t: _FrameMasks(ids, np.stack([masks[i][t] for i in ids]) if ids else empty) for t in frames}


def _open_source(source: Path | str, layout: str | None, videos: Sequence[str]) -> _Predictions:
    path = Path(str(source).removeprefix("file://"))
    if not path.exists():
        raise EvaluationError(
            f"{path}: expected a usam-video store or a folder of predicted masks, found nothing."
        )
    if layout is not None and layout not in LAYOUTS:
        raise EvaluationError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}.")
    try:
        store = PseudoLabelStore.open(path, "r")
    except StoreError as store_error:
        if not path.is_dir():
            raise EvaluationError(
                f"{path}: expected a usam-video store or a folder of predicted masks, found a file."
            ) from store_error
        try:
            found = layout or detect_prediction_layout(path, videos)
        except EvaluationError as folder_error:
            prefix = f"{path}: "
            raise EvaluationError(
                f"{path}: expected a usam-video store or a folder of predicted masks, found neither. "
                f"As a folder: {str(folder_error).removeprefix(prefix)} "
                f"As a store: {str(store_error).removeprefix(prefix)}"
            ) from folder_error
        return _DavisFolderPredictions(path) if found == "davis" else _SavFolderPredictions(path)
    if layout is not None:
        raise EvaluationError(
            f"{path}: is a usam-video store; --layout {layout} applies to predictions folders only."
        )
    return _StorePredictions(store)


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


def _annotation(reader: DatasetReader, video: VideoRef, frame: int) -> FrameAnnotation:
    annotation = reader.ground_truth(video.video_id, frame)
    if annotation is None:
        raise EvaluationError(
            f"dataset {reader.name!r} video {video.video_id!r}: expected ground truth on frame "
            f"{frame}, which the reader lists as annotated, found none."
        )
    if annotation.masks.shape[1:] != (video.height, video.width):
        raise EvaluationError(
            f"dataset {reader.name!r} video {video.video_id!r} frame {frame}: expected ground truth "
            f"of {video.height}x{video.width} (HxW), got {annotation.masks.shape[1:]}."
        )
    return annotation


def _gt_index_map(reader: DatasetReader, video: VideoRef, frame: int) -> npt.NDArray[np.uint8]:
    """uint8 ``(H, W)`` DAVIS index map of one annotated frame (255 void)."""
    if isinstance(reader, DavisReader):
        index_map = reader.index_map(video.video_id, frame)
        if index_map is not None:
            return index_map
    annotation = _annotation(reader, video, frame)
    index_map = masks_to_index_map(
        annotation.object_ids,
        annotation.masks,
        where=f"dataset {reader.name!r} video {video.video_id!r} frame {frame} ground truth",
    )
    if annotation.void is not None:
        index_map[annotation.void] = VOID_LABEL
    return index_map


def _annotation_from_index_map(frame: int, index_map: np.ndarray) -> FrameAnnotation:
    ids = tuple(int(v) for v in np.unique(index_map) if v not in (0, VOID_LABEL))
    masks = np.stack([index_map == i for i in ids]) if ids else np.zeros((0, *index_map.shape), bool)
    void = index_map == VOID_LABEL
    return FrameAnnotation(frame, ids, masks, void if void.any() else None)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


@dataclass
class _RankingItems:
    """Accumulated ranking items: base IoU and the store's score rows, video by video."""

    base_iou: list[float] = dataclasses.field(default_factory=list)
    scores: list[np.ndarray] = dataclasses.field(default_factory=list)  # float32 (S,) each
    score_names: tuple[str, ...] | None = None
    videos: list[str] = dataclasses.field(default_factory=list)
    unranked: dict[str, str] = dataclasses.field(default_factory=dict)

    def add_video(
        self,
        store: PseudoLabelStore,
        video_id: str,
        truth: Mapping[int, FrameAnnotation],
        predicted: Mapping[int, _FrameMasks],
        prompt_frames: Mapping[int, set[int]],
    ) -> None:
        table = store.frame_table(video_id)
        names = tuple(table.score_names)
        # Different videos of one store may come from runs with other heads: rank the scores
        # every contributing video has, and say which were left out.
        if self.score_names is None:
            keep = list(range(len(names)))
            self.score_names = names
        else:
            common = [n for n in self.score_names if n in names]
            for name in set(self.score_names) - set(common):
                self.unranked[name] = f"missing in video {video_id!r}"
            for name in set(names) - set(self.score_names):
                self.unranked.setdefault(name, "missing in an earlier video")
            if len(common) != len(self.score_names):
                positions = [self.score_names.index(n) for n in common]
                self.scores = [row[positions] for row in self.scores]
                self.score_names = tuple(common)
            keep = [names.index(n) for n in self.score_names]
        added = 0
        for t in sorted(truth):
            gt = truth[t]
            pred = predicted[t]
            for o, obj in enumerate(table.object_ids):
                if t in prompt_frames.get(int(obj), set()):
                    continue  # the mask is the prompt itself: nothing to rank
                iou = db_eval_iou(gt.mask_of(int(obj)), pred.mask_of(int(obj)), gt.void)
                self.base_iou.append(float(iou))
                self.scores.append(np.asarray(table.scores[t, o], dtype=np.float32)[keep])
                added += 1
        if added:
            self.videos.append(video_id)


def _rank(
    items: _RankingItems, random_seed: int | None, ratios: npt.ArrayLike
) -> tuple[RankingReport | None, str, dict[str, str], int]:
    """Run the ranking protocol on the accumulated items.

    Returns ``(report or None, note, score directions, dropped item count)``.
    """
    if not items.base_iou:
        return None, "no frame-object with ground truth beside the prompts", {}, 0
    names = items.score_names or ()
    base = np.asarray(items.base_iou, dtype=np.float64)
    scores = np.stack(items.scores).astype(np.float64) if names else np.zeros((len(base), 0))
    directions: dict[str, str] = {}
    columns: list[int] = []
    for j, name in enumerate(names):
        direction = score_direction(name)
        if direction is None:
            items.unranked[name] = (
                "a video feature: no direction of its own"
                if is_known(name)
                else "unknown direction (neither a confidence nor an uncertainty)"
            )
            continue
        directions[name] = direction
        columns.append(j)
    # A score not written (NaN) for some frame-object cannot be ranked; drop such items
    # rather than the whole score, and report how many.
    finite = np.all(np.isfinite(scores[:, columns]), axis=1) if columns else np.ones(len(base), bool)
    dropped = int(np.count_nonzero(~finite))
    if not finite.any():
        return None, f"every one of {len(base)} frame-objects has a non-finite score", directions, dropped
    base = base[finite]
    uncertainties: dict[str, np.ndarray] = {}
    for j in columns:
        column = scores[finite, j]
        name = names[j]
        uncertainties[name] = (
            uncertainty_from_confidence(column) if directions[name] == "confidence" else column
        )
    if random_seed is not None:
        draw = np.random.default_rng(random_seed).random(size=(base.shape[0],))
        uncertainties[RANDOM_SAMPLE] = draw
        directions[RANDOM_SAMPLE] = "random"
    report = evaluate_ranking(base, np.ones_like(base), uncertainties, ratios=ratios)
    note = ""
    if report.degenerate:
        note = "every ranked mask already equals its ground truth: relative AUC is undefined"
    return report, note, directions, dropped


def _davis_sequence(
    video_id: str,
    gt: np.ndarray,
    eval_frames: Sequence[int],
    predicted: Mapping[int, _FrameMasks],
    location: str,
) -> DavisSequenceResult:
    """DAVIS protocol on one video: ``gt`` uint8 ``(T, H, W)`` index maps of its T annotated
    frames; ``eval_frames`` are frames 1..T-2 of them, the only ones predictions are read on."""
    pred = np.zeros_like(gt)  # the first and last frame are not evaluated: left empty
    for pos, t in enumerate(eval_frames, start=1):
        frame = predicted[t]
        if frame.index_map is not None:
            pred[pos] = frame.index_map
        else:
            where = f"{location} video {video_id!r} frame {t}"
            pred[pos] = masks_to_index_map(frame.object_ids, frame.masks, where=where)
    result = evaluate_davis_sequence(gt, pred, sequence=video_id)
    # Positions in the stack of annotated frames -> the video's frame indices.
    return dataclasses.replace(result, frames=tuple(eval_frames))


def _sav_video(
    video_id: str,
    truth: Mapping[int, FrameAnnotation],
    eval_frames: Sequence[int],
    predicted: Mapping[int, _FrameMasks],
    gt_objects: Sequence[int],
) -> SavVideoResult:
    """SA-V protocol on one video: bool ``(T_eval, H, W)`` stacks per ground-truth object."""
    gt = {i: np.stack([truth[t].mask_of(i) for t in eval_frames]) for i in gt_objects}
    pred = {i: np.stack([predicted[t].mask_of(i) for t in eval_frames]) for i in gt_objects}
    # eval_frames already leaves the first and last annotated frame out.
    return evaluate_sav_video(gt, pred, video=video_id, frame_indices=eval_frames, skip_first_and_last=False)


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
    predictions = _open_source(source, layout, selected)
    store = predictions.store if isinstance(predictions, _StorePredictions) else None

    davis_results: list[DavisSequenceResult] = []
    sav_results: list[SavVideoResult] = []
    skipped: dict[str, str] = {}
    items = _RankingItems()
    for video_id in selected:
        ref = reader.video(video_id)
        annotated = reader.annotated_frames(video_id)
        eval_frames = annotated[1:-1]
        jf_reason = None
        if len(annotated) < 3:
            jf_reason = f"{len(annotated)} annotated frame(s): the protocol leaves the first and last out"
        prompt_frames: dict[int, set[int]] = {}
        rank_frames: list[int] = []
        if store is not None:
            for prompt in reader.prompts(video_id):
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
            gt_maps = {t: _gt_index_map(reader, ref, t) for t in annotated}
            truth = {t: _annotation_from_index_map(t, gt_maps[t]) for t in rank_frames}
            if jf_reason is None and not (np.isin(gt_maps[annotated[0]], (0, VOID_LABEL), invert=True)).any():
                jf_reason = f"no object on its first annotated frame {annotated[0]}"
        else:
            truth = {t: _annotation(reader, ref, t) for t in annotated}
        gt_objects = sorted({i for ann in truth.values() for i in ann.object_ids})
        wanted = None if protocol == "davis" else gt_objects
        read_frames = sorted(set(rank_frames) | (set(eval_frames) if jf_reason is None else set()))
        predicted = predictions.read(ref, read_frames, wanted)

        if jf_reason is not None:
            skipped[video_id] = jf_reason
        elif protocol == "davis":
            gt = np.stack([gt_maps[t] for t in annotated])
            davis_results.append(_davis_sequence(video_id, gt, eval_frames, predicted, predictions.location))
        else:
            sav_results.append(_sav_video(video_id, truth, eval_frames, predicted, gt_objects))
        if store is not None and rank_frames:
            items.add_video(
                store,
                video_id,
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
        ranking, note, directions, dropped = _rank(items, random_seed, ratios)
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
    )


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def write_evaluation(result: EvaluationResult, out_dir: Path | str) -> list[Path]:
    """Write ``evaluation.json`` and, for a ranked store, ``ranking.png`` into ``out_dir``.

    Returns the written paths (JSON first).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / EVALUATION_JSON
    json_path.write_text(json.dumps(result.as_dict(), indent=1))
    paths = [json_path]
    if result.ranking is not None:
        paths.append(
            plot_ranking_curves(
                result.ranking,
                out / RANKING_PNG,
                title=f"{result.dataset}: refining the most uncertain of "
                f"{result.ranking.n_items} frame-objects",
            )
        )
    return paths


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def evaluation_markdown(result: EvaluationResult, ranking_png: Path | bytes | None = None) -> str:
    """A markdown report: global J&F, per-sequence table, ranking table and plot.

    Args:
        result: what :func:`evaluate_predictions` returned.
        ranking_png: the ranking plot (a PNG file or its bytes), embedded as a base64 data
            URI so the report stands alone; None leaves the plot out.
    """
    scale = "x100" if result.protocol == "sav" else "[0, 1]"
    g = result.global_scores()
    lines = [
        f"# Evaluation of `{result.source}` on {result.dataset}",
        "",
        f"Protocol **{result.protocol}** ({scale}), source: {result.source_kind}.",
        "",
        f"**J&F {_fmt(g['J&F'])}**, J {_fmt(g['J'])}, F {_fmt(g['F'])}",
        "",
    ]
    rows = result.sequence_rows()
    if rows:
        lines += ["| sequence | objects | frames | J&F | J | F |", "|---|---:|---:|---:|---:|---:|"]
        lines += [
            f"| {r['sequence']} | {r['objects']} | {r['frames']} | {_fmt(r['J&F'])} | {_fmt(r['J'])} "
            f"| {_fmt(r['F'])} |"
            for r in rows
        ]
        lines.append("")
    if result.skipped:
        lines.append("Not evaluated: " + "; ".join(f"`{v}`: {r}" for v, r in result.skipped.items()))
        lines.append("")
    if result.ranking is None:
        lines.append(f"No ranking: {result.ranking_note}.")
        return "\n".join(lines) + "\n"
    lines += [
        "## Ranking of uncertainty scores",
        "",
        f"{result.ranking.n_items} frame-objects, base mIoU {result.ranking.base_miou:.4f}; refined = "
        "ground truth. Pearson and Spearman of the uncertainty with the true IoU (lower is better).",
        "",
        "| score | direction | relative AUC | vs random | Pearson | Spearman |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['score']} | {r['direction']} | {_fmt(r['relative_auc'])} | "
        f"{_fmt(r['relative_auc_vs_random'])} | {_fmt(r['pearson'])} | {_fmt(r['spearman'])} |"
        for r in result.ranking_rows()
    ]
    if result.ranking_note:
        lines += ["", f"Note: {result.ranking_note}."]
    if ranking_png is not None:
        data = ranking_png if isinstance(ranking_png, bytes) else Path(ranking_png).read_bytes()
        encoded = base64.b64encode(data).decode("ascii")
        lines += ["", f"![mIoU against refined ratio](data:image/png;base64,{encoded})"]
    return "\n".join(lines) + "\n"
