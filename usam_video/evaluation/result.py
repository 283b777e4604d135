"""What an evaluation found, as a record, a JSON file, a ranking plot and a markdown report.

:class:`EvaluationResult` is what :func:`usam_video.pipeline.evaluate.evaluate_predictions`
returns; everything here formats it (no store, no dataset, no sam2). Values are DAVIS J&F in
[0, 1] or SA-V J&F x100 (``protocol``); NaN becomes ``null`` in JSON and ``-`` in tables.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.evaluation.coverage import CoverageReport
from usam_video.evaluation.jf import DavisReport
from usam_video.evaluation.plots import plot_ranking_curves
from usam_video.evaluation.ranking import RankingReport
from usam_video.evaluation.sav import SavReport

__all__ = [
    "EVALUATION_JSON",
    "RANKING_PNG",
    "EvaluationResult",
    "evaluation_markdown",
    "write_evaluation",
]

#: File names :func:`write_evaluation` writes.
EVALUATION_JSON = "evaluation.json"
RANKING_PNG = "ranking.png"


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Outcome of :func:`usam_video.pipeline.evaluate.evaluate_predictions`.

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
        random_seed: seed of :data:`~usam_video.evaluation.protocols.RANDOM_SAMPLE`, None when not drawn.
        coverage: coverage at 2/5/10 % risk of every directed score and the oracle, on the
            ranking's frame-objects (:mod:`usam_video.evaluation.coverage`); None without ranking.
        notes: what the evaluation left out and why (objects no prompt starts, frames without
            ground truth), one line each.
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
    coverage: CoverageReport | None = None
    notes: tuple[str, ...] = ()

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

        Scores first (store order, then the seeded random draw
        :data:`~usam_video.evaluation.protocols.RANDOM_SAMPLE`), then the expected ``random``
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
            "coverage": None if self.coverage is None else self.coverage.as_dict(),
            "notes": list(self.notes),
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
        result: what :func:`usam_video.pipeline.evaluate.evaluate_predictions` returned.
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
    if result.notes:
        lines += [f"Note: {n}." for n in result.notes] + [""]
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
    if result.coverage is not None:
        cov = result.coverage
        risks = " | ".join(f"coverage at {r:.0%} risk" for r in cov.risks)
        lines += [
            "",
            "## Coverage at a fixed risk",
            "",
            f"Share of the {cov.items} frame-objects released most confident first while the share of bad "
            f"ones (IoU < {cov.bad_iou:g}; {cov.bad_share:.1%} of all) stays at or under the risk; "
            "threshold chosen on the truth (best case).",
            "",
            f"| score | {risks} | mean IoU of the most confident half |",
            "|---|" + "---:|" * (len(cov.risks) + 1),
        ]
        lines += [
            f"| {r.score} | " + " | ".join(f"{c:.3f}" for c in r.coverage) + f" | {_fmt(r.top_half_iou, 3)} |"
            for r in cov.rows
        ]
    if ranking_png is not None:
        data = ranking_png if isinstance(ranking_png, bytes) else Path(ranking_png).read_bytes()
        encoded = base64.b64encode(data).decode("ascii")
        lines += ["", f"![mIoU against refined ratio](data:image/png;base64,{encoded})"]
    return "\n".join(lines) + "\n"
