"""Figures of evaluation results. matplotlib is imported inside the functions so the rest
of the evaluation package works without it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from usam_video.errors import EvaluationError
from usam_video.evaluation.ranking import RankingCurve, RankingReport

__all__ = ["plot_ranking_curves"]


def plot_ranking_curves(
    curves: RankingReport | Sequence[RankingCurve],
    path: Path | str,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Write a PNG of mIoU versus refinement ratio r for every curve.

    Args:
        curves: a :class:`RankingReport` (its scores, the oracle and the expected random
            ordering are drawn) or any sequence of :class:`RankingCurve`.
        path: output ``.png`` file; parent folders are created.
        title: figure title.
        dpi: output resolution.

    Returns:
        The written path.
    """
    # The object-oriented Figure + Agg canvas writes a PNG without pyplot, so it neither
    # needs a display nor changes the process-wide backend of a caller using pyplot.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(curves, RankingReport):
        items = [*curves.curves, curves.oracle, curves.random]
    else:
        items = list(curves)
    if not items:
        raise EvaluationError("plot_ranking_curves: expected at least one curve, got none.")

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Many curves (every USAM head of a store) get their legend beside the axes, not on them.
    legend_outside = len(items) > 6
    figure = Figure(figsize=(9.6, 4.8) if legend_outside else (6.4, 4.4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(items) > 10:
        # The default cycle has 10 colours; a store with every USAM head has more curves.
        from matplotlib import colormaps

        axes.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(len(items))])
    for curve in items:
        # Reference orderings are drawn dashed so the scores stand out.
        style = "--" if curve.name in ("oracle", "random") else "-"
        # "random" is the exact expectation over all orderings, not one draw.
        label = "random (expected)" if curve.name == "random" else curve.name
        if curve.name not in ("oracle", "random") and curve.relative_auc == curve.relative_auc:
            label = f"{curve.name} (rel. AUC {curve.relative_auc:.3f})"
        axes.plot(curve.ratios, curve.miou, style, label=label)
    axes.set_xlabel("refined ratio r (most uncertain first)")
    axes.set_ylabel("mIoU")
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if legend_outside:
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0.0)
    else:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(out, format="png", dpi=dpi)
    return out
