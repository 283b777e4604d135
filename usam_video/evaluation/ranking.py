"""Uncertainty ranking protocol of UncertainSAM (Kaiser et al., ICML 2025).

An uncertainty score is useful when it tells which masks to spend a refinement on. The
protocol sorts the N items (masks) from most to least uncertain, replaces the top
``k = round(r * N)`` of them by their refined version, and records the mean IoU:

    mIoU(r) = mean(base_iou) + sum(gain of the k most uncertain items) / N,
    gain = refined_iou - base_iou,

for ``r`` in ``[0, 0.5]`` (51 steps by default). The oracle orders items by their true gain,
largest first; no ordering beats it at any ``k``. The area between a curve and the
``r = 0`` level, ``∫ (mIoU(r) - mIoU(0)) dr`` (trapezoid rule), divided by the same area of
the oracle is the *relative AUC*: 1 for the oracle.

Conventions:

* Scores are UNCERTAINTIES: higher means more uncertain, refined first. Confidence-like
  scores (predicted IoU, stability) must be flipped with :func:`uncertainty_from_confidence`.
* Tied scores are broken by expectation: when ``k`` cuts through a group of equal scores,
  the group contributes its mean gain per replaced item, i.e. the average over all orders
  of the tie. The result does not depend on the input order.
* A random score has expected area ``mean(gain) * ∫ r dr``, which is 0 only when the
  refinement does not change mIoU on average. ``relative_auc_vs_random`` subtracts that
  expected random curve from both the score and the oracle, so a random score scores 0
  and the oracle 1 whatever the mean gain.
* When the oracle area is not positive (refinement never helps), the relative AUC is
  undefined: it is NaN and :attr:`RankingReport.degenerate` is True.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError

__all__ = [
    "DEFAULT_RATIOS",
    "Correlation",
    "RankingCurve",
    "RankingReport",
    "uncertainty_from_confidence",
    "replaced_counts",
    "ranking_curve",
    "curve_area",
    "rankdata",
    "pearson",
    "spearman",
    "correlation",
    "evaluate_ranking",
]

#: Refinement ratios r = 0, 0.01, ..., 0.5 (51 steps).
DEFAULT_RATIOS: tuple[float, ...] = tuple(float(r) for r in np.linspace(0.0, 0.5, 51))

FloatArray = npt.NDArray[np.float64]


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _vector(values: npt.ArrayLike, name: str, n: int | None = None) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise EvaluationError(f"{name}: expected a 1-D array (N,), got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise EvaluationError(f"{name}: expected {n} values (one per item), got {arr.shape[0]}.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise EvaluationError(f"{name}: expected finite values, found {bad} NaN/inf.")
    return arr


def uncertainty_from_confidence(confidence: npt.ArrayLike) -> FloatArray:
    """Flip a confidence score (higher = more certain) into an uncertainty score.

    Returns float64 ``(N,)`` equal to ``-confidence``: only the order matters to the
    protocol, and negation reverses it for any scale (unlike ``1 - c``, which assumes
    ``c`` in [0, 1]).
    """
    return -np.asarray(confidence, dtype=np.float64)


def replaced_counts(n_items: int, ratios: npt.ArrayLike = DEFAULT_RATIOS) -> npt.NDArray[np.int64]:
    """Number of refined items per ratio: ``k = floor(r * N + 0.5)`` clipped to ``[0, N]``.

    Rounding half up (not numpy's half-to-even) keeps ``k`` monotone in ``r``.
    """
    r = np.asarray(ratios, dtype=np.float64)
    return np.clip(np.floor(r * n_items + 0.5), 0, n_items).astype(np.int64)


def _cumulative_gain(gain: FloatArray, priority: FloatArray, counts: npt.NDArray[np.int64]) -> FloatArray:
    """Sum of the gains of the ``k`` highest-priority items for every ``k`` in ``counts``.

    Ties in ``priority`` are broken by expectation (see module docstring).
    """
    order = np.argsort(-priority, kind="stable")
    key = -priority[order]  # ascending: most uncertain first
    cum = np.concatenate([[0.0], np.cumsum(gain[order])])
    out = np.zeros(len(counts), dtype=np.float64)
    for i, k in enumerate(counts):
        if k == 0:
            continue
        start = int(np.searchsorted(key, key[k - 1], side="left"))
        end = int(np.searchsorted(key, key[k - 1], side="right"))
        # Linear interpolation inside the tie group = expected gain over its orders.
        out[i] = cum[start] + (k - start) * (cum[end] - cum[start]) / (end - start)
    return out


def ranking_curve(
    base_iou: npt.ArrayLike,
    refined_iou: npt.ArrayLike,
    uncertainty: npt.ArrayLike,
    ratios: npt.ArrayLike = DEFAULT_RATIOS,
) -> FloatArray:
    """mIoU after refining the ``round(r * N)`` most uncertain items, for every ratio.

    Args:
        base_iou: float ``(N,)``, IoU of each current mask against ground truth.
        refined_iou: float ``(N,)``, IoU of each refined mask.
        uncertainty: float ``(N,)``, higher = more uncertain = refined first.
        ratios: float ``(R,)`` in [0, 1].

    Returns:
        float64 ``(R,)`` mIoU values.
    """
    base = _vector(base_iou, "base_iou")
    n = base.shape[0]
    if n == 0:
        raise EvaluationError("base_iou: expected at least one item, got none.")
    refined = _vector(refined_iou, "refined_iou", n)
    score = _vector(uncertainty, "uncertainty", n)
    counts = replaced_counts(n, ratios)
    return base.mean() + _cumulative_gain(refined - base, score, counts) / n


def curve_area(ratios: npt.ArrayLike, miou: npt.ArrayLike) -> float:
    """Trapezoid area between the curve and its ``r = 0`` value: ``∫ (mIoU(r) - mIoU(0)) dr``.

    Args:
        ratios: float ``(R,)``, increasing.
        miou: float ``(R,)``.
    """
    x = np.asarray(ratios, dtype=np.float64)
    y = np.asarray(miou, dtype=np.float64) - float(np.asarray(miou)[0])
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def rankdata(values: npt.ArrayLike) -> FloatArray:
    """Ranks 1..N with ties given their average rank (``scipy.stats.rankdata`` 'average').

    Returns float64 ``(N,)``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.concatenate([[True], xs[1:] != xs[:-1]])
    group_of_sorted = np.cumsum(new_group) - 1
    bounds = np.flatnonzero(np.concatenate([new_group, [True]]))
    # Group g spans sorted positions bounds[g] .. bounds[g+1]-1, i.e. ranks +1.
    average = (bounds[:-1] + bounds[1:] - 1) / 2.0 + 1.0
    ranks = np.empty_like(x)
    ranks[order] = average[group_of_sorted]
    return ranks


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation of two ``(N,)`` arrays; NaN when N < 2 or either is constant."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise EvaluationError(f"pearson: expected equal lengths, got {a.size} and {b.size}.")
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if denom == 0.0:
        return math.nan
    return float(np.clip(np.dot(a, b) / denom, -1.0, 1.0))


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman correlation: Pearson of the average-tie ranks; NaN when undefined."""
    return pearson(rankdata(x), rankdata(y))


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of a score with the true IoU over ``n`` items.

    An uncertainty score that works is NEGATIVELY correlated with IoU.
    """

    pearson: float
    spearman: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return {"pearson": _json_float(self.pearson), "spearman": _json_float(self.spearman), "n": self.n}


def correlation(score: npt.ArrayLike, iou: npt.ArrayLike) -> Correlation:
    """Pearson and Spearman correlation of ``score`` ``(N,)`` with ``iou`` ``(N,)``."""
    iou_arr = _vector(iou, "iou")
    score_arr = _vector(score, "score", iou_arr.shape[0])
    return Correlation(
        pearson=pearson(score_arr, iou_arr),
        spearman=spearman(score_arr, iou_arr),
        n=int(iou_arr.shape[0]),
    )


@dataclass(frozen=True)
class RankingCurve:
    """One ordering's mIoU curve and its areas.

    ``area`` is ``∫ (mIoU(r) - mIoU(0)) dr``; ``relative_auc = area / oracle area``;
    ``relative_auc_vs_random`` measures both areas above the expected random curve instead.
    ``correlation`` (score vs base IoU) is None for the oracle and random curves.
    """

    name: str
    ratios: tuple[float, ...]
    miou: tuple[float, ...]
    area: float
    relative_auc: float
    relative_auc_vs_random: float
    correlation: Correlation | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return {
            "name": self.name,
            "ratios": list(self.ratios),
            "miou": list(self.miou),
            "area": _json_float(self.area),
            "relative_auc": _json_float(self.relative_auc),
            "relative_auc_vs_random": _json_float(self.relative_auc_vs_random),
            "correlation": None if self.correlation is None else self.correlation.as_dict(),
        }


@dataclass(frozen=True)
class RankingReport:
    """Curves of every score plus the oracle and the expected random ordering.

    ``degenerate`` is True when the oracle area is not positive; every relative AUC is
    then NaN because no ordering can improve mIoU and the ratio has no meaning.
    """

    ratios: tuple[float, ...]
    n_items: int
    base_miou: float
    oracle: RankingCurve
    random: RankingCurve
    curves: tuple[RankingCurve, ...]
    degenerate: bool

    def curve(self, name: str) -> RankingCurve:
        """The curve of score ``name`` (also ``"oracle"`` and ``"random"``)."""
        for candidate in (*self.curves, self.oracle, self.random):
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return {
            "ratios": list(self.ratios),
            "n_items": self.n_items,
            "base_miou": self.base_miou,
            "degenerate": self.degenerate,
            "oracle": self.oracle.as_dict(),
            "random": self.random.as_dict(),
            "curves": [c.as_dict() for c in self.curves],
        }


def evaluate_ranking(
    base_iou: npt.ArrayLike,
    refined_iou: npt.ArrayLike,
    uncertainties: Mapping[str, npt.ArrayLike],
    *,
    ratios: npt.ArrayLike = DEFAULT_RATIOS,
) -> RankingReport:
    """Run the ranking protocol for several uncertainty scores.

    Args:
        base_iou: float ``(N,)``, IoU of each current mask against ground truth.
        refined_iou: float ``(N,)``, IoU of each mask after refinement.
        uncertainties: ``{name: float (N,)}``, higher = more uncertain (flip confidences
            with :func:`uncertainty_from_confidence`). Names "oracle" and "random" are
            reserved.
        ratios: float ``(R,)`` increasing, starting at 0 (default 0..0.5 in 51 steps).

    Returns:
        A :class:`RankingReport`; each score's curve carries its correlation with
        ``base_iou``.
    """
    base = _vector(base_iou, "base_iou")
    n = base.shape[0]
    if n == 0:
        raise EvaluationError("base_iou: expected at least one item, got none.")
    refined = _vector(refined_iou, "refined_iou", n)
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or r[0] != 0.0 or np.any(np.diff(r) <= 0) or r[-1] > 1.0:
        raise EvaluationError(
            f"ratios: expected an increasing (R,) array from 0 to at most 1 with R >= 2, got "
            f"{r.tolist()[:5]}{'...' if r.size > 5 else ''}."
        )
    reserved = {"oracle", "random"} & set(uncertainties)
    if reserved:
        raise EvaluationError(
            f"uncertainties: expected score names other than 'oracle' and 'random', got {sorted(reserved)}."
        )
    gain = refined - base
    counts = replaced_counts(n, r)
    base_miou = float(base.mean())

    oracle_miou = base_miou + _cumulative_gain(gain, gain, counts) / n
    random_miou = base_miou + counts * float(gain.mean()) / n
    oracle_area = curve_area(r, oracle_miou)
    random_area = curve_area(r, random_miou)
    degenerate = not oracle_area > 0.0
    # Oracle >= random at every k, so this is > 0 unless all gains are equal.
    above_random = oracle_area - random_area

    def _make(name: str, miou: FloatArray, corr: Correlation | None) -> RankingCurve:
        area = curve_area(r, miou)
        rel = math.nan if degenerate else area / oracle_area
        rel_random = (
            (area - random_area) / above_random if above_random > 0.0 and not degenerate else math.nan
        )
        return RankingCurve(
            name=name,
            ratios=tuple(float(v) for v in r),
            miou=tuple(float(v) for v in miou),
            area=area,
            relative_auc=rel,
            relative_auc_vs_random=rel_random,
            correlation=corr,
        )

    curves = []
    for name, values in uncertainties.items():
        score = _vector(values, f"uncertainty {name!r}", n)
        miou = base_miou + _cumulative_gain(gain, score, counts) / n
        curves.append(_make(name, miou, correlation(score, base)))
    return RankingReport(
        ratios=tuple(float(v) for v in r),
        n_items=n,
        base_miou=base_miou,
        oracle=_make("oracle", oracle_miou, None),
        random=_make("random", random_miou, None),
        curves=tuple(curves),
        degenerate=degenerate,
    )
