"""Evaluation of video masks and of uncertainty scores.

* :mod:`.jf` — DAVIS 2017 semi-supervised J&F (region and boundary similarity).
* :mod:`.sav` — SA-V benchmark J&F on sparse per-object annotations.
* :mod:`.readers` — mask folders published by other methods.
* :mod:`.ranking` — UncertainSAM refinement-ranking curves, relative AUC, correlations.
* :mod:`.plots` — figures (needs matplotlib, imported lazily).
* :mod:`.overlay` — draws frames with their masks coloured by a score (matplotlib, imported
  lazily); :mod:`usam_video.pipeline.overlay` reads a store and a dataset for it.
* :mod:`.protocols` — the protocols applied to one video's predicted masks (J&F, ranking items).
* :mod:`.report` — the evaluation result, its JSON, plot and markdown report.

numpy and Pillow only; no torch.
"""

from __future__ import annotations

from usam_video.evaluation.jf import (
    DEFAULT_BOUND_TH,
    VOID_LABEL,
    DavisObjectResult,
    DavisReport,
    DavisSequenceResult,
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    dilate_disk,
    disk,
    evaluate_davis,
    evaluate_davis_sequence,
    f_measure,
    seg2bmap,
    summarize_davis,
)
from usam_video.evaluation.overlay import OverlayPanel, draw_overlay
from usam_video.evaluation.plots import plot_ranking_curves
from usam_video.evaluation.ranking import (
    DEFAULT_RATIOS,
    Correlation,
    RankingCurve,
    RankingReport,
    correlation,
    curve_area,
    evaluate_ranking,
    pearson,
    rankdata,
    ranking_curve,
    replaced_counts,
    spearman,
    uncertainty_from_confidence,
)
from usam_video.evaluation.readers import (
    FRAME_NAME,
    LAYOUTS,
    detect_prediction_layout,
    read_davis_prediction_folder,
    read_sav_prediction_folder,
    stack_sav_frames,
)
from usam_video.evaluation.sav import (
    SavObjectResult,
    SavReport,
    SavVideoResult,
    evaluate_sav,
    evaluate_sav_object,
    evaluate_sav_video,
    summarize_sav,
)

__all__ = [
    # jf
    "DEFAULT_BOUND_TH",
    "VOID_LABEL",
    "DavisObjectResult",
    "DavisReport",
    "DavisSequenceResult",
    "boundary_radius",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "dilate_disk",
    "disk",
    "evaluate_davis",
    "evaluate_davis_sequence",
    "f_measure",
    "seg2bmap",
    "summarize_davis",
    # sav
    "SavObjectResult",
    "SavReport",
    "SavVideoResult",
    "evaluate_sav",
    "evaluate_sav_object",
    "evaluate_sav_video",
    "summarize_sav",
    # readers
    "FRAME_NAME",
    "LAYOUTS",
    "detect_prediction_layout",
    "read_davis_prediction_folder",
    "read_sav_prediction_folder",
    "stack_sav_frames",
    # ranking
    "DEFAULT_RATIOS",
    "Correlation",
    "RankingCurve",
    "RankingReport",
    "correlation",
    "curve_area",
    "evaluate_ranking",
    "pearson",
    "rankdata",
    "ranking_curve",
    "replaced_counts",
    "spearman",
    "uncertainty_from_confidence",
    # plots
    "plot_ranking_curves",
    # overlay
    "OverlayPanel",
    "draw_overlay",
]
