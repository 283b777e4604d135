"""Coverage at a fixed risk: how many frame-objects a score can release, most confident first,
while the share of bad ones among those released (IoU below ``bad_iou`` with the truth) stays at
or under the risk.

This is the best case for a score: the threshold is chosen on the truth (the "oracle
threshold"), so it measures the ordering alone. A release whose threshold is certified from an
audit (:mod:`usam_video.release.risk`) can only release less. The oracle *ordering* (by true IoU)
is the ceiling of every score. Thresholds fall between distinct score values only: frame-objects
with the same score are released together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError

__all__ = ["RISKS", "CoverageReport", "CoverageRow", "coverage_at_risk", "coverage_report", "top_share_iou"]

#: The risks every coverage figure reports.
RISKS: tuple[float, ...] = (0.02, 0.05, 0.10)


def coverage_at_risk(
    confidence: npt.ArrayLike, bad: npt.ArrayLike, risks: Sequence[float] = RISKS
) -> list[float]:
    """Largest share of items releasable at each risk, most confident first.

    Args:
        confidence: float ``(N,)``, higher = more confident (negate an uncertainty).
        bad: bool ``(N,)``: the item's label is bad.

    Returns:
        One coverage in [0, 1] per risk (0 when even the most confident group is too risky).
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    wrong = np.asarray(bad, dtype=bool).ravel()
    if conf.shape != wrong.shape or conf.size == 0:
        raise EvaluationError(
            f"coverage: expected one truth per score and at least one item, got {wrong.size} and {conf.size}."
        )
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    share = np.cumsum(wrong[order]) / np.arange(1, conf.size + 1)
    # Only the last item of a group of equal scores ends a releasable prefix.
    ends = np.r_[np.flatnonzero(np.diff(sorted_conf) != 0), conf.size - 1]
    out = []
    for risk in risks:
        ok = ends[share[ends] <= risk + 1e-12]
        out.append(float((ok.max() + 1) / conf.size) if ok.size else 0.0)
    return out


def top_share_iou(confidence: npt.ArrayLike, iou: npt.ArrayLike, share: float = 0.5) -> float:
    """Mean true IoU of the most confident ``share`` of the items."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    values = np.asarray(iou, dtype=np.float64).ravel()
    k = max(1, int(round(share * conf.size)))
    return float(values[np.argsort(-conf, kind="stable")[:k]].mean())


@dataclass(frozen=True)
class CoverageRow:
    """One score's coverage at each of ``RISKS`` and its top half's mean IoU."""

    score: str
    direction: str
    coverage: tuple[float, ...]
    top_half_iou: float


@dataclass(frozen=True)
class CoverageReport:
    """Coverage of every directed score and of the oracle ordering (first row)."""

    items: int
    bad_share: float
    bad_iou: float
    risks: tuple[float, ...]
    rows: tuple[CoverageRow, ...]

    def row(self, score: str) -> CoverageRow:
        return next(r for r in self.rows if r.score == score)

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "bad_share": self.bad_share,
            "bad_iou": self.bad_iou,
            "risks": list(self.risks),
            "table": [
                {
                    "score": r.score,
                    "direction": r.direction,
                    **{f"coverage@{risk:g}": c for risk, c in zip(self.risks, r.coverage, strict=True)},
                    "top_half_iou": None if math.isnan(r.top_half_iou) else r.top_half_iou,
                }
                for r in self.rows
            ],
        }


def coverage_report(
    iou: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    directions: Mapping[str, str],
    risks: Sequence[float] = RISKS,
    bad_iou: float = 0.5,
) -> CoverageReport:
    """Coverage at ``risks`` of every score with a direction, and of the true IoU (``oracle``).

    Args:
        iou: float ``(N,)``: true IoU of each frame-object's label.
        scores: ``{name: float (N,)}`` as stored.
        directions: ``{name: "confidence" | "uncertainty"}``; other names are skipped.
    """
    values = np.asarray(iou, dtype=np.float64).ravel()
    bad = values < bad_iou
    rows = [
        CoverageRow(
            "oracle", "confidence", tuple(coverage_at_risk(values, bad, risks)), top_share_iou(values, values)
        )
    ]
    for name, column in scores.items():
        direction = directions.get(name)
        if direction not in ("confidence", "uncertainty"):
            continue
        conf = np.asarray(column, dtype=np.float64).ravel()
        conf = conf if direction == "confidence" else -conf
        rows.append(
            CoverageRow(
                name, direction, tuple(coverage_at_risk(conf, bad, risks)), top_share_iou(conf, values)
            )
        )
    return CoverageReport(
        int(values.size), float(bad.mean()) if values.size else math.nan, bad_iou, tuple(risks), tuple(rows)
    )
