"""Figures of evaluation results. matplotlib is imported inside the functions so the rest
of the evaluation package works without it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from usam_video.errors import EvaluationError
from usam_video.evaluation.ranking import RankingCurve, RankingReport

if TYPE_CHECKING:  # matplotlib is imported where it is used
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_gain_curves",
    "plot_ranking_curves",
    "plot_review_plan",
    "plot_score_histograms",
    "review_plan_figure",
]

#: Horizontal distance (points) between the markers of picks on one frame, so that none hides
#: another: a red triangle is about 9 points wide.
_PICK_SPACING = 10.0


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


def plot_score_histograms(
    scores: dict[str, Sequence[float]],
    path: Path | str,
    *,
    title: str | None = None,
    bins: int = 20,
    dpi: int = 100,
) -> Path:
    """Write a PNG with one histogram per score (the run's distribution of each score).

    Args:
        scores: score name -> values (NaN values are left out).
        path: output ``.png`` file; parent folders are created.

    Returns:
        The written path.
    """
    import math

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not scores:
        raise EvaluationError("plot_score_histograms: expected at least one score, got none.")
    n = len(scores)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    figure = Figure(figsize=(3.2 * cols, 2.4 * rows))
    FigureCanvasAgg(figure)
    for i, (name, values) in enumerate(scores.items()):
        axis = figure.add_subplot(rows, cols, i + 1)
        finite = [float(v) for v in values if math.isfinite(float(v))]
        # One filled step patch per score draws the same pixels as ``axis.hist``'s bar per bin
        # (its bars touch and have no edges), at less cost: a run's figure has one axes per score.
        counts, edges = np.histogram(finite, bins=bins)
        axis.stairs(counts, edges, fill=True, color="tab:blue")
        axis.set_title(f"{name} (n={len(finite)})", fontsize=9)
        axis.tick_params(labelsize=7)
    # Fixed margins in inches, not tight_layout: each cell's title and tick labels are of one
    # size, and tight_layout measured every axes' text again (a third of the plot's time).
    width, height = 3.2 * cols, 2.4 * rows
    if title:
        figure.suptitle(title, y=1 - 0.08 / height)
    figure.subplots_adjust(
        left=0.4 / width,
        right=1 - 0.15 / width,
        bottom=0.3 / height,
        top=1 - (0.7 if title else 0.3) / height,
        wspace=0.5 / 2.7,
        hspace=0.65 / 1.75,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi)
    return out


def plot_gain_curves(
    gains: Mapping[str, Mapping[float, float]],
    path: Path | str,
    *,
    highlight: str | None = None,
    title: str = "J&F gain of a simulated review, by budget",
    dpi: int = 120,
) -> Path:
    """Write a PNG of J&F gain against the review budget, one line per strategy.

    Args:
        gains: ``{strategy: {budget fraction: J&F gain}}``; strategies named ``score/planner``.
            The oracle is drawn black, random grey, ``highlight`` (the default strategy) thick;
            the runs planner solid, the per-frame planner dashed.
        path: output ``.png`` file; parent folders are created.

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not gains:
        raise EvaluationError("plot_gain_curves: expected at least one strategy, got none.")
    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in sorted(gains.items()):
        xs = sorted(curve)
        ys = [curve[x] for x in xs]
        style = "--" if "/per_frame" in name else "-"  # also "score/per_frame (K rounds)"
        kwargs: dict = {"linestyle": style, "marker": "o", "markersize": 3, "linewidth": 1.0, "alpha": 0.8}
        if name.startswith("oracle/"):
            kwargs.update(color="black", linewidth=1.6, alpha=1.0)
        elif name.startswith("random/"):
            kwargs.update(color="grey", linewidth=1.6, alpha=1.0)
        if name == highlight:
            kwargs.update(linewidth=3.0, alpha=1.0, color="tab:red")
        ax.plot([100 * x for x in xs], ys, label=name + (" (default)" if name == highlight else ""), **kwargs)
    ax.set_xlabel("budget (% of candidate frame-objects corrected)")
    ax.set_ylabel("J&F gain")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def plot_review_plan(
    video_id: str,
    timelines: Mapping[int, tuple[Sequence[int], Sequence[float]]],
    picks: Sequence[tuple[int, int, int]],
    path: Path | str,
    *,
    score: str,
    conditioning: Mapping[int, Sequence[int]] | None = None,
    queued: Mapping[int, Sequence[int]] | None = None,
    corrected: Mapping[int, Sequence[int]] | None = None,
    dpi: int = 110,
    figsize: tuple[float, float] = (8.0, 3.2),
) -> Path:
    """Write a PNG timeline of one video's review plan: each object's score per frame, the
    planner's picks marked with their rank, conditioning frames as dotted lines, and (when
    given) the queued and the corrected frame-objects marked on their object's line.

    Args:
        timelines: ``{object_id: (frames, values)}``.
        picks: ``(frame, object_id, rank)`` of every pick in this video.
        score: the plotted score's name (the y label).
        conditioning: ``{object_id: frames}`` of prompts and corrections.
        queued: ``{object_id: frames}`` queued for a human or for refinement (hollow rings).
        corrected: ``{object_id: frames}`` a human corrected (green diamonds).
        dpi, figsize: output size (a dashboard artifact uses a low dpi to stay small).

    Returns:
        The written path.
    """
    fig = review_plan_figure(
        video_id,
        timelines,
        picks,
        score=score,
        conditioning=conditioning,
        queued=queued,
        corrected=corrected,
        figsize=figsize,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def review_plan_figure(
    video_id: str,
    timelines: Mapping[int, tuple[Sequence[int], Sequence[float]]],
    picks: Sequence[tuple[int, int, int]],
    *,
    score: str,
    conditioning: Mapping[int, Sequence[int]] | None = None,
    queued: Mapping[int, Sequence[int]] | None = None,
    corrected: Mapping[int, Sequence[int]] | None = None,
    figsize: tuple[float, float] = (8.0, 3.2),
) -> Figure:
    """The figure :func:`plot_review_plan` writes (arguments as there), laid out but not saved.

    Picks on one frame stand side by side, :data:`_PICK_SPACING` points apart and centred on
    the frame, each with its own rank label, so that none draws over another even when their
    values coincide. The legend sits beside the axes, outside the data area, so it never covers
    a pick or a line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lookup = _plot_timelines(ax, timelines, conditioning)
    _plot_review_marks(ax, lookup, queued, corrected)
    _plot_picks(fig, ax, picks, lookup)
    ax.set_xlabel("frame")
    ax.set_ylabel(score)
    ax.set_title(
        f"{video_id}: review plan (red: corrections to ask for, dotted: conditioning frames)", fontsize=9
    )
    _place_legend_beside(ax)
    fig.tight_layout()
    return fig


def _plot_timelines(
    ax: Axes,
    timelines: Mapping[int, tuple[Sequence[int], Sequence[float]]],
    conditioning: Mapping[int, Sequence[int]] | None,
) -> dict[int, dict[int, float]]:
    """One line per object (in object order, so colours follow it), with its conditioning
    frames as dotted verticals in the line's colour. Returns ``{object: {frame: value}}``."""
    lookup: dict[int, dict[int, float]] = {}
    for obj, (frames, values) in sorted(timelines.items()):
        (line,) = ax.plot(list(frames), list(values), linewidth=1.2, label=f"object {obj}")
        colour = line.get_color()
        lookup[obj] = dict(zip((int(f) for f in frames), (float(v) for v in values), strict=True))
        for t in (conditioning or {}).get(obj, ()):
            ax.axvline(t, color=colour, linestyle=":", linewidth=0.8)
    return lookup


def _plot_review_marks(
    ax: Axes,
    lookup: Mapping[int, Mapping[int, float]],
    queued: Mapping[int, Sequence[int]] | None,
    corrected: Mapping[int, Sequence[int]] | None,
) -> None:
    """Queued and corrected frame-objects on their object's line; one legend entry per kind."""
    # Hollow black rings: an object line may itself be orange or green.
    queued_style = {"marker": "o", "markersize": 6, "markerfacecolor": "none", "markeredgecolor": "black"}
    corrected_style = {"marker": "D", "markersize": 6, "color": "tab:green", "markeredgecolor": "black"}
    marks = ((queued, queued_style, "queued"), (corrected, corrected_style, "corrected"))
    for frames_of, style, label in marks:
        points = [
            (t, lookup[obj][t])
            for obj, ts in sorted((frames_of or {}).items())
            for t in ts
            if t in lookup.get(obj, {})
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, linestyle="none", label=label, zorder=3, **style)


def _plot_picks(
    fig: Figure,
    ax: Axes,
    picks: Sequence[tuple[int, int, int]],
    lookup: Mapping[int, Mapping[int, float]],
) -> None:
    """Red triangles for ``(frame, object, rank)`` picks, side by side in rank order on a shared
    frame, each labelled ``#rank``; a pick whose object has no value there sits at 0."""
    from matplotlib.transforms import offset_copy

    by_frame: dict[int, list[tuple[int, int]]] = {}
    for frame, obj, rank in picks:
        by_frame.setdefault(int(frame), []).append((int(rank), int(obj)))
    for frame, group in sorted(by_frame.items()):
        group.sort()  # rank order, left to right
        for i, (rank, obj) in enumerate(group):
            y = lookup.get(obj, {}).get(frame, 0.0)
            # Shifted in points, not in frames: the spacing stays readable at any zoom, and
            # the middle of the group stays on the frame itself.
            dx = (i - (len(group) - 1) / 2) * _PICK_SPACING
            shifted = offset_copy(ax.transData, fig=fig, x=dx, y=0.0, units="points")
            ax.plot(
                [frame],
                [y],
                marker="v",
                markersize=9,
                color="red",
                markeredgecolor="black",
                zorder=4,
                transform=shifted,
            )
            # Neighbours' labels alternate in height, so that "#12" and "#13" do not overlap.
            ax.annotate(
                f"#{rank}",
                (frame, y),
                textcoords="offset points",
                xytext=(dx, 8 + 8 * (i % 2)),
                ha="center",
                fontsize=7,
            )


def _place_legend_beside(ax: Axes) -> None:
    """The legend to the right of the axes; beyond 8 entries the object lines leave it."""
    # Many objects would bury the plot under their legend: beyond 8 entries only the marks stay.
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 8:
        kept = [(h, lab) for h, lab in zip(handles, labels, strict=True) if not lab.startswith("object ")]
        handles, labels = [h for h, _ in kept], [lab for _, lab in kept]
    if handles:
        # Beside the axes, not on them: inside, "best" or any corner can sit on a pick.
        # tight_layout counts the legend in and narrows the axes to make room for it.
        ax.legend(
            handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0
        )
