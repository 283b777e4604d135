"""Region (J) and boundary (F) similarity as the DAVIS 2017 semi-supervised protocol computes them.

This is a reimplementation of ``davis2017-evaluation`` (``davis2017/metrics.py``,
``davis2017/utils.py``, ``davis2017/evaluation.py`` at its current head), written against
numpy only so the evaluation needs neither OpenCV nor scikit-image. The per-frame values
match the reference bit for bit on masks of the same resolution; where this module departs
from the reference it says so next to the code (see ``db_statistics`` and
``evaluate_davis_sequence``).

Protocol summary (semi-supervised, as ``DAVISEvaluation.evaluate`` runs it):

* Ground-truth void pixels (255) become background *before* objects are separated, and the
  semi-supervised branch passes no void mask to the metrics, so void counts as background.
* The objects of a sequence are ``1..N`` with ``N`` the largest id in the FIRST gt frame.
* The first and the last frame are not evaluated (``all_gt_masks[:, 1:-1]``).
* Per object and frame: J = |P∩G| / |P∪G| (1 when both are empty) and the boundary F.
* Per object: mean, recall (fraction of frames > 0.5) and decay over 4 overlapping bins.
* Global: J&F = (mean over all objects of J-Mean + mean over all objects of F-Mean) / 2,
  which equals the mean over objects of (J-Mean + F-Mean) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError

__all__ = [
    "DEFAULT_BOUND_TH",
    "VOID_LABEL",
    "boundary_radius",
    "disk",
    "dilate_disk",
    "seg2bmap",
    "f_measure",
    "db_eval_iou",
    "db_eval_boundary",
    "db_statistics",
    "DavisObjectResult",
    "DavisSequenceResult",
    "DavisReport",
    "evaluate_davis_sequence",
    "evaluate_davis",
    "summarize_davis",
]

#: Boundary tolerance as a fraction of the image diagonal (the reference default).
DEFAULT_BOUND_TH = 0.008
#: Ground-truth index of void pixels in DAVIS annotations.
VOID_LABEL = 255

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------
# Per-frame primitives
# --------------------------------------------------------------------------------------


def boundary_radius(shape: tuple[int, ...], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Return the boundary tolerance in pixels for a frame of ``shape`` ``(H, W)``.

    ``bound_th >= 1`` is a radius in pixels; below 1 it is a fraction of the image
    diagonal, rounded up: ``ceil(bound_th * sqrt(H**2 + W**2))`` (8 for 480x854 and for
    848x480 at the default 0.008).

    Raises:
        EvaluationError: ``bound_th`` is negative, or >= 1 but not a whole number (the
            reference would build an even-sized, off-centre disk from it).
    """
    if bound_th < 0:
        raise EvaluationError(f"bound_th: expected a value >= 0, got {bound_th}.")
    if bound_th >= 1:
        if float(bound_th) != int(bound_th):
            raise EvaluationError(f"bound_th: expected a whole number of pixels when >= 1, got {bound_th}.")
        return int(bound_th)
    height, width = shape[-2], shape[-1]
    # np.linalg.norm of the shape, as the reference computes the diagonal.
    return int(np.ceil(bound_th * np.linalg.norm([height, width])))


def disk(radius: int) -> BoolArray:
    """Return the ``(2r+1, 2r+1)`` bool disk ``x**2 + y**2 <= r**2``.

    Same footprint as ``skimage.morphology.disk(r)``, which the reference passes to
    ``cv2.dilate``.
    """
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius


def dilate_disk(mask: BoolArray, radius: int) -> BoolArray:
    """Binary dilation of a bool ``(H, W)`` mask by ``disk(radius)``; returns bool ``(H, W)``.

    Equivalent to ``cv2.dilate(mask, disk(radius))`` (whose default border never adds
    pixels) and to ``scipy.ndimage.binary_dilation(mask, disk(radius))``. The disk is
    split into its rows: row ``dy`` spans ``|dx| <= isqrt(r**2 - dy**2)``, so the dilation
    is an OR over ``2r+1`` vertically shifted horizontal window-maxima, each a cumulative-
    sum difference. That is exact and needs no SciPy.
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    height, width = mask.shape
    counts = np.zeros((height, width + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=counts[:, 1:])
    columns = np.arange(width)
    out = np.zeros_like(mask)
    rows_by_half_width: dict[int, BoolArray] = {}
    for dy in range(-radius, radius + 1):
        if abs(dy) >= height:
            continue
        half = math.isqrt(radius * radius - dy * dy)
        row = rows_by_half_width.get(half)
        if row is None:
            upper = np.minimum(columns + half + 1, width)
            lower = np.maximum(columns - half, 0)
            row = (counts[:, upper] - counts[:, lower]) > 0
            rows_by_half_width[half] = row
        # out[y] |= row[y + dy]: a pixel is reached from the source row dy below it.
        if dy >= 0:
            out[: height - dy] |= row[dy:]
        else:
            out[-dy:] |= row[: height + dy]
    return out


def seg2bmap(seg: npt.ArrayLike) -> BoolArray:
    """One-pixel-wide boundary map of a binary ``(H, W)`` mask; returns bool ``(H, W)``.

    Reference ``_seg2bmap`` at the mask's own resolution: a pixel is a boundary pixel when
    it differs from its right, lower or lower-right neighbour (pixels past the image count
    as background); the last row only compares with the right neighbour, the last column
    only with the lower one, and the bottom-right pixel is never a boundary.
    """
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise EvaluationError(f"seg2bmap: expected an (H, W) mask, got shape {seg.shape}.")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    # The reference overwrites the last row and column in this order; keep the order,
    # the corner pixel depends on it before being cleared.
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def f_measure(
    foreground_mask: npt.ArrayLike,
    gt_mask: npt.ArrayLike,
    void_pixels: npt.ArrayLike | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> float:
    """Boundary F-measure of one frame (reference ``f_measure``).

    Args:
        foreground_mask: predicted mask, ``(H, W)``, any dtype (non-zero = object).
        gt_mask: ground-truth mask, ``(H, W)``.
        void_pixels: optional bool ``(H, W)``; void pixels are removed from both MASKS
            before their boundaries are taken (so a mask edge against void is no boundary).
        bound_th: see :func:`boundary_radius`.

    Returns:
        F in [0, 1]: 1 when both boundaries are empty, 0 when exactly one is.
    """
    fg = np.asarray(foreground_mask).astype(bool)
    gt = np.asarray(gt_mask).astype(bool)
    if fg.shape != gt.shape or fg.ndim != 2:
        raise EvaluationError(
            f"f_measure: expected two (H, W) masks of the same shape, got {fg.shape} and {gt.shape}."
        )
    if void_pixels is not None:
        keep = ~np.asarray(void_pixels, dtype=bool)
        fg = fg & keep
        gt = gt & keep
    radius = boundary_radius(fg.shape, bound_th)

    fg_boundary = seg2bmap(fg)
    gt_boundary = seg2bmap(gt)
    n_fg = int(fg_boundary.sum())
    n_gt = int(gt_boundary.sum())

    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        # Matches are only read at boundary pixels, and every boundary pixel lies inside
        # the bounding box of both maps, so dilating that crop is exact and much cheaper
        # than dilating the full frame.
        union = fg_boundary | gt_boundary
        rows = np.flatnonzero(union.any(axis=1))
        cols = np.flatnonzero(union.any(axis=0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        fg_crop = fg_boundary[window]
        gt_crop = gt_boundary[window]
        fg_dil = dilate_disk(fg_crop, radius)
        gt_dil = dilate_disk(gt_crop, radius)
        precision = float(np.count_nonzero(fg_crop & gt_dil)) / n_fg
        recall = float(np.count_nonzero(gt_crop & fg_dil)) / n_gt

    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _check_pair(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None, where: str) -> None:
    if gt.shape != pred.shape:
        raise EvaluationError(
            f"{where}: expected ground truth and prediction of the same shape, got "
            f"{gt.shape} and {pred.shape}."
        )
    if gt.ndim not in (2, 3):
        raise EvaluationError(f"{where}: expected (H, W) or (T, H, W) masks, got {gt.ndim} dimensions.")
    if void is not None and void.shape != gt.shape:
        raise EvaluationError(f"{where}: expected a void mask of shape {gt.shape}, got {void.shape}.")


def db_eval_iou(
    gt: npt.ArrayLike, pred: npt.ArrayLike, void: npt.ArrayLike | None = None
) -> FloatArray | float:
    """Region similarity J (Jaccard index) per frame.

    Args:
        gt: ground-truth masks, bool ``(T, H, W)`` or ``(H, W)`` (non-zero = object).
        pred: predicted masks, same shape.
        void: optional bool mask of the same shape; void pixels are left out of both the
            intersection and the union.

    Returns:
        float64 ``(T,)`` for ``(T, H, W)`` input, a float for ``(H, W)`` input.
        J = |pred ∩ gt| / |pred ∪ gt|, and 1 where the union is empty.
    """
    gt_arr = np.asarray(gt).astype(bool)
    pred_arr = np.asarray(pred).astype(bool)
    void_arr = None if void is None else np.asarray(void).astype(bool)
    _check_pair(gt_arr, pred_arr, void_arr, "db_eval_iou")
    keep = True if void_arr is None else ~void_arr
    inters = np.sum((pred_arr & gt_arr) & keep, axis=(-2, -1), dtype=np.int64)
    union = np.sum((pred_arr | gt_arr) & keep, axis=(-2, -1), dtype=np.int64)
    # Division only where the union is non-empty; an empty union means both masks are
    # empty (outside void), which the protocol scores as a perfect 1.
    j = np.ones(np.shape(union), dtype=np.float64)
    np.divide(inters, union, out=j, where=union > 0)
    if j.ndim == 0:
        return float(j)
    return j


def db_eval_boundary(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    void: npt.ArrayLike | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> FloatArray | float:
    """Boundary similarity F per frame.

    Args:
        gt: ground-truth masks, bool ``(T, H, W)`` or ``(H, W)``.
        pred: predicted masks, same shape.
        void: optional bool mask of the same shape (see :func:`f_measure`).
        bound_th: boundary tolerance, see :func:`boundary_radius`.

    Returns:
        float64 ``(T,)`` for ``(T, H, W)`` input, a float for ``(H, W)`` input.
    """
    gt_arr = np.asarray(gt)
    pred_arr = np.asarray(pred)
    void_arr = None if void is None else np.asarray(void).astype(bool)
    _check_pair(gt_arr, pred_arr, void_arr, "db_eval_boundary")
    if gt_arr.ndim == 2:
        return f_measure(pred_arr, gt_arr, void_arr, bound_th)
    values = np.zeros(gt_arr.shape[0], dtype=np.float64)
    for t in range(gt_arr.shape[0]):
        values[t] = f_measure(pred_arr[t], gt_arr[t], None if void_arr is None else void_arr[t], bound_th)
    return values


def db_statistics(per_frame_values: npt.ArrayLike) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame values (reference ``db_statistics``).

    Args:
        per_frame_values: float ``(T,)``, J or F of the evaluated frames, T >= 1.

    Returns:
        ``(mean, recall, decay)``: ``nanmean(v)``, ``nanmean(v > 0.5)`` and
        ``nanmean(bin_0) - nanmean(bin_3)``. The 4 bins are NOT ``np.array_split``: their
        edges are ``ids = round(linspace(1, T, 5) + 1e-10) - 1`` and bin ``i`` is
        ``v[ids[i] : ids[i + 1] + 1]``, so neighbouring bins share their edge frame.
        (The reference casts ``ids`` to uint8, which wraps from 256 frames on; this keeps
        them as int64 and so agrees with it for every T <= 255.)
    """
    values = np.asarray(per_frame_values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise EvaluationError(f"db_statistics: expected a non-empty (T,) array, got shape {values.shape}.")
    finite = values[~np.isnan(values)]
    mean = float(finite.mean()) if finite.size else math.nan
    # As in the reference, a NaN frame compares False and so counts as a miss.
    recall = float(np.mean(values > 0.5))
    n_bins = 4
    ids = (np.round(np.linspace(1, len(values), n_bins + 1) + 1e-10) - 1).astype(np.int64)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(n_bins)]

    def _nanmean(chunk: FloatArray) -> float:
        finite = chunk[~np.isnan(chunk)]
        return float(finite.mean()) if finite.size else math.nan

    decay = _nanmean(bins[0]) - _nanmean(bins[-1])
    return mean, recall, decay


# --------------------------------------------------------------------------------------
# Sequence and dataset protocol
# --------------------------------------------------------------------------------------


def _json_float(value: float) -> float | None:
    """NaN and infinities have no JSON spelling; report them as null."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class DavisObjectResult:
    """J and F of one object over the evaluated frames of one sequence.

    ``j`` and ``f`` hold the per-frame values (float, evaluated frames only, in order).
    """

    sequence: str
    object_id: int
    j: tuple[float, ...]
    f: tuple[float, ...]
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def name(self) -> str:
        """Row name of the reference per-sequence table: ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"

    @property
    def jf_mean(self) -> float:
        """(J-Mean + F-Mean) / 2 of this object."""
        return (self.j_mean + self.f_mean) / 2.0

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict; per-frame values only when ``per_frame``."""
        out: dict[str, Any] = {
            "sequence": self.sequence,
            "object_id": self.object_id,
            "J&F-Mean": _json_float(self.jf_mean),
            "J-Mean": _json_float(self.j_mean),
            "J-Recall": _json_float(self.j_recall),
            "J-Decay": _json_float(self.j_decay),
            "F-Mean": _json_float(self.f_mean),
            "F-Recall": _json_float(self.f_recall),
            "F-Decay": _json_float(self.f_decay),
        }
        if per_frame:
            out["J"] = [_json_float(v) for v in self.j]
            out["F"] = [_json_float(v) for v in self.f]
        return out


@dataclass(frozen=True)
class DavisSequenceResult:
    """Per-object results of one sequence; ``frames`` are the evaluated frame indices."""

    sequence: str
    frames: tuple[int, ...]
    objects: tuple[DavisObjectResult, ...]

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict of the sequence and its objects."""
        return {
            "sequence": self.sequence,
            "frames": list(self.frames),
            "objects": [obj.as_dict(per_frame) for obj in self.objects],
        }


@dataclass(frozen=True)
class DavisReport:
    """Global DAVIS scores: every mean is taken over all objects of all sequences."""

    jf_mean: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    sequences: tuple[DavisSequenceResult, ...]

    @property
    def objects(self) -> tuple[DavisObjectResult, ...]:
        """All object results, sequence by sequence."""
        return tuple(obj for seq in self.sequences for obj in seq.objects)

    def per_object_rows(self) -> list[tuple[str, float, float]]:
        """``(<sequence>_<id>, J-Mean, F-Mean)`` rows, as the reference per-sequence CSV."""
        return [(obj.name, obj.j_mean, obj.f_mean) for obj in self.objects]

    def as_dict(self, per_frame: bool = False) -> dict[str, Any]:
        """JSON-ready dict (NaN as null) with the reference's global column names."""
        return {
            "J&F-Mean": _json_float(self.jf_mean),
            "J-Mean": _json_float(self.j_mean),
            "J-Recall": _json_float(self.j_recall),
            "J-Decay": _json_float(self.j_decay),
            "F-Mean": _json_float(self.f_mean),
            "F-Recall": _json_float(self.f_recall),
            "F-Decay": _json_float(self.f_decay),
            "sequences": [seq.as_dict(per_frame) for seq in self.sequences],
        }


def _as_index_maps(array: npt.ArrayLike, what: str, sequence: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise EvaluationError(
            f"{sequence or 'sequence'}: expected {what} as (T, H, W) index maps, got shape {arr.shape}."
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise EvaluationError(
            f"{sequence or 'sequence'}: expected {what} with an integer dtype (uint8 index "
            f"maps), got {arr.dtype}."
        )
    return arr


def evaluate_davis_sequence(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    sequence: str = "",
    skip_first_and_last: bool = True,
    exclude_void: bool = False,
    bound_th: float = DEFAULT_BOUND_TH,
) -> DavisSequenceResult:
    """Evaluate one sequence with the DAVIS 2017 semi-supervised protocol.

    Args:
        gt: uint8 ``(T, H, W)`` index maps: 0 background, 1..N objects, 255 void.
        pred: uint8 ``(T, H, W)`` index maps of the prediction, same shape.
        sequence: name used in results and error messages.
        skip_first_and_last: leave frames 0 and T-1 out, as the protocol does.
        exclude_void: NOT the protocol (which scores void as background); when True, gt
            void pixels are left out of J and F like the reference's unsupervised branch.
        bound_th: boundary tolerance, see :func:`boundary_radius`.

    Returns:
        One :class:`DavisObjectResult` per object id 1..N (N = max id of the first gt
        frame, void excluded); ids that only appear later are ignored, as in the reference.

    Raises:
        EvaluationError: shapes differ, too few frames, no object in the first frame, or the
            prediction holds an id above N on an evaluated frame (the reference aborts
            there too). Ids of 1..N missing from the prediction count as empty masks (the
            reference zero-pads them).
    """
    gt_arr = _as_index_maps(gt, "ground truth", sequence)
    pred_arr = _as_index_maps(pred, "prediction", sequence)
    name = sequence or "sequence"
    if gt_arr.shape != pred_arr.shape:
        raise EvaluationError(
            f"{name}: expected a prediction of shape {gt_arr.shape} (T, H, W) like the "
            f"ground truth, got {pred_arr.shape}."
        )
    frames = _evaluated_frames(gt_arr.shape[0], skip_first_and_last, name)

    void = gt_arr == VOID_LABEL
    # Void becomes background before the objects are counted and separated.
    gt_clean = np.where(void, 0, gt_arr)
    n_objects = int(gt_clean[0].max())
    if n_objects == 0:
        raise EvaluationError(
            f"{name}: expected at least one object id in the first ground-truth frame, "
            "found only background/void."
        )
    gt_eval = gt_clean[list(frames)]
    pred_eval = pred_arr[list(frames)]
    void_eval = void[list(frames)] if exclude_void else None
    _check_prediction_ids(int(pred_eval.max()), n_objects, name)

    objects = tuple(
        _object_result(sequence, obj_id, gt_eval == obj_id, pred_eval == obj_id, void_eval, bound_th)
        for obj_id in range(1, n_objects + 1)
    )
    return DavisSequenceResult(sequence=sequence, frames=frames, objects=objects)


def _evaluated_frames(n_frames: int, skip_first_and_last: bool, name: str) -> tuple[int, ...]:
    """The frame indices the protocol scores: all but the first and last, or all of them."""
    if skip_first_and_last:
        if n_frames < 3:
            raise EvaluationError(
                f"{name}: expected at least 3 frames (the first and last are not evaluated), got {n_frames}."
            )
        return tuple(range(1, n_frames - 1))
    if n_frames < 1:
        raise EvaluationError(f"{name}: expected at least 1 frame, got 0.")
    return tuple(range(n_frames))


def _check_prediction_ids(pred_max: int, n_objects: int, name: str) -> None:
    """Refuse a prediction id above the first ground-truth frame's objects (as the reference)."""
    if pred_max > n_objects:
        hint = (
            " 255 marks void in ground truth only: write background (0) there in predictions."
            if pred_max == VOID_LABEL
            else ""
        )
        raise EvaluationError(
            f"{name}: expected prediction ids 0..{n_objects} (the objects of the first "
            f"ground-truth frame), found id {pred_max}.{hint}"
        )


def _object_result(
    sequence: str,
    obj_id: int,
    gt_obj: np.ndarray,
    pred_obj: np.ndarray,
    void_eval: np.ndarray | None,
    bound_th: float,
) -> DavisObjectResult:
    """J and F of one object over the evaluated frames, from bool ``(T', H, W)`` masks
    (``void_eval``: bool ``(T', H, W)`` pixels to leave out, or None), with their statistics."""
    j = np.asarray(db_eval_iou(gt_obj, pred_obj, void_eval))
    f = np.asarray(db_eval_boundary(gt_obj, pred_obj, void_eval, bound_th))
    j_stats = db_statistics(j)
    f_stats = db_statistics(f)
    return DavisObjectResult(
        sequence=sequence,
        object_id=obj_id,
        j=tuple(float(v) for v in j),
        f=tuple(float(v) for v in f),
        j_mean=j_stats[0],
        j_recall=j_stats[1],
        j_decay=j_stats[2],
        f_mean=f_stats[0],
        f_recall=f_stats[1],
        f_decay=f_stats[2],
    )


def evaluate_davis(
    sequences: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]]
    | Iterable[tuple[str, npt.ArrayLike, npt.ArrayLike]],
    *,
    skip_first_and_last: bool = True,
    exclude_void: bool = False,
    bound_th: float = DEFAULT_BOUND_TH,
) -> DavisReport:
    """Evaluate a dataset with the DAVIS 2017 semi-supervised protocol.

    Args:
        sequences: ``{name: (gt, pred)}`` or an iterable of ``(name, gt, pred)`` (a generator
            keeps one sequence in memory at a time); ``gt`` and ``pred`` are uint8
            ``(T, H, W)`` index maps as for :func:`evaluate_davis_sequence`.
        skip_first_and_last, exclude_void, bound_th: see :func:`evaluate_davis_sequence`.

    Returns:
        A :class:`DavisReport`; every global number is the mean over all objects of all
        sequences of the per-object statistic, and J&F-Mean = (J-Mean + F-Mean) / 2.

    Raises:
        EvaluationError: no sequence given, or any sequence fails its checks.
    """
    items: Iterable[tuple[str, npt.ArrayLike, npt.ArrayLike]]
    if isinstance(sequences, Mapping):
        items = ((name, pair[0], pair[1]) for name, pair in sequences.items())
    else:
        items = sequences
    return summarize_davis(
        evaluate_davis_sequence(
            gt,
            pred,
            sequence=name,
            skip_first_and_last=skip_first_and_last,
            exclude_void=exclude_void,
            bound_th=bound_th,
        )
        for name, gt, pred in items
    )


def summarize_davis(results: Iterable[DavisSequenceResult]) -> DavisReport:
    """Global DAVIS scores from per-sequence results (means over all objects of all sequences).

    Lets a caller evaluate sequences one at a time (e.g. while reading them from a store) and
    still get the report :func:`evaluate_davis` would give.

    Raises:
        EvaluationError: no object in any sequence.
    """
    sequences = tuple(results)
    objects = [obj for seq in sequences for obj in seq.objects]
    if not objects:
        raise EvaluationError("evaluate_davis: expected at least one sequence, got none.")

    def _mean(attr: str) -> float:
        return float(np.mean([getattr(obj, attr) for obj in objects]))

    j_mean = _mean("j_mean")
    f_mean = _mean("f_mean")
    return DavisReport(
        jf_mean=(j_mean + f_mean) / 2.0,
        j_mean=j_mean,
        j_recall=_mean("j_recall"),
        j_decay=_mean("j_decay"),
        f_mean=f_mean,
        f_recall=_mean("f_recall"),
        f_decay=_mean("f_decay"),
        sequences=sequences,
    )
