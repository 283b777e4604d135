"""A picture of a pseudo-labelled video: frames side by side, every stored mask painted on top.

:func:`draw_overlay` draws panels (:class:`OverlayPanel`: a frame, its masks, their scores and
statuses) into one small PNG in which each object's mask is blended over the frame in the colour
of its score (red: low predicted IoU, green: high), outlined, and labelled
``"<object id>: <score>"``. Frame titles give the frame index and any frame-object queued for
refinement or for a human. An object whose mask is empty on a frame (the tracker lost it) is
never left blank: its last non-empty mask from an earlier frame is outlined dashed and labelled
"last seen at frame N", or a caption says it is missing (:class:`LostObject`).
:func:`blend_masks` is the numpy step that paints the masks.

Drawing only: :func:`usam_video.pipeline.overlay.write_overlay` reads the store and the dataset
and hands the panels over (the evaluation layer imports neither). matplotlib is imported inside
:func:`overlay_figure` (as in :mod:`.plots`).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from usam_video.errors import EvaluationError, InputError
from usam_video.score_registry import score_info
from usam_video.types import Status

if TYPE_CHECKING:  # matplotlib is imported where it is used
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LostObject",
    "OverlayPanel",
    "blend_masks",
    "colour_scale",
    "default_overlay_score",
    "draw_overlay",
    "drawn_objects",
    "overlay_figure",
    "overlay_frames",
]

#: Colormap of confidence scores over their range: red = low predicted IoU, green = high. Scores
#: the registry calls uncertainties get the reversed map, so red always means "doubtful".
CONFIDENCE_CMAP = "RdYlGn"
#: Colour of a mask whose score is NaN (RGB in [0, 1]).
_NAN_COLOR = (0.6, 0.6, 0.6)
#: Statuses whose frame-object has no mask on disk: nothing is drawn for them.
_NO_MASK = (Status.PENDING, Status.NOT_STARTED)
_QUEUED = (Status.QUEUED_REFINE, Status.QUEUED_HUMAN)
#: Longer side of one frame panel, in inches (at ``dpi`` = 100: 240 px).
_PANEL_INCHES = 2.4


def default_overlay_score(score_names: Sequence[str]) -> str:
    """The score an overlay colours masks by when none is named.

    The first ``iou_*`` USAM head other than ``iou_unsupervised``, else ``sam_iou``, else the
    first score. Raises :class:`EvaluationError` if there is no score at all.
    """
    for name in score_names:
        if name.startswith("iou_") and name != "iou_unsupervised":
            return name
    if "sam_iou" in score_names:
        return "sam_iou"
    if not score_names:
        raise EvaluationError("overlay: expected at least one score column in the store, found none.")
    return score_names[0]


def colour_scale(name: str) -> tuple[bool, float, float, str]:
    """``(reversed map, low, high, colour bar label)`` of a score, from the score registry:
    its direction picks the map's way and its range the map's ends (a gap spans [-0.5, 0.5]);
    an unbounded score (a video feature) falls back to [0, 1]."""
    info = score_info(name)
    low, high = (info.low, info.high) if math.isfinite(info.low) and math.isfinite(info.high) else (0.0, 1.0)
    label = {
        "confidence": "higher = more certain",
        "uncertainty": "higher = less certain",
        "feature": "video feature",
    }[info.direction]
    return info.direction == "uncertainty", low, high, label


def blend_masks(
    image: npt.ArrayLike, masks: npt.ArrayLike, colors: npt.ArrayLike, alpha: float = 0.5
) -> np.ndarray:
    """Blend coloured masks over an image.

    Args:
        image: ``uint8`` ``(H, W, 3)`` RGB frame.
        masks: ``bool`` ``(O, H, W)``; objects may overlap (later objects are blended over
            earlier ones).
        colors: ``float`` ``(O, 3)`` RGB in [0, 1], one colour per mask.
        alpha: opacity of the colour inside a mask, in [0, 1].

    Returns:
        ``uint8`` ``(H, W, 3)``: outside every mask equal to ``image``, inside a mask
        ``(1 - alpha) * pixel + alpha * 255 * colour`` (rounded).
    """
    frame = np.asarray(image)
    planes = np.asarray(masks, dtype=bool)
    rgb = np.asarray(colors, dtype=np.float64)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"blend_masks: expected a uint8 (H, W, 3) image, got {frame.dtype} {frame.shape}.")
    if planes.ndim != 3 or planes.shape[1:] != frame.shape[:2]:
        raise InputError(
            f"blend_masks: expected masks (O, {frame.shape[0]}, {frame.shape[1]}), got {planes.shape}."
        )
    if rgb.shape != (planes.shape[0], 3):
        raise InputError(f"blend_masks: expected colours ({planes.shape[0]}, 3), got {rgb.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"blend_masks: expected alpha in [0, 1], got {alpha}.")
    out = frame.astype(np.float64)
    for plane, color in zip(planes, rgb, strict=True):
        out[plane] = (1.0 - alpha) * out[plane] + alpha * 255.0 * np.clip(color, 0.0, 1.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay_frames(
    frames: Sequence[int] | None, num_frames: int, max_frames: int, video_id: str
) -> list[int]:
    """Validated frame indices to draw (default: evenly spaced, first and last included)."""
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise InputError(f"overlay: expected max_frames to be an integer >= 1, got {max_frames!r}.")
    if num_frames < 1:
        raise EvaluationError(f"overlay: video {video_id!r} has no frames in the store.")
    if frames is None:
        count = min(max_frames, num_frames)
        return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, count)})
    chosen = []
    for value in frames:
        try:
            if isinstance(value, bool):
                raise TypeError
            index = operator.index(value)
        except TypeError:
            raise InputError(
                f"overlay: expected integer frame indices of video {video_id!r}, got {value!r}."
            ) from None
        if not 0 <= index < num_frames:
            raise InputError(
                f"overlay: expected frames of video {video_id!r} in 0..{num_frames - 1}, got frame {index}."
            )
        chosen.append(index)
    if not chosen:
        raise InputError(f"overlay: expected at least one frame of video {video_id!r}, got none.")
    if len(chosen) > max_frames:
        raise InputError(
            f"overlay: expected at most max_frames={max_frames} frames, got {len(chosen)}; "
            "raise max_frames or pass fewer frames."
        )
    return chosen


def _label_point(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` of the mask pixel nearest its centroid (inside the mask even when concave)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    nearest = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return float(xs[nearest]), float(ys[nearest])


def drawn_objects(status: np.ndarray) -> list[int]:
    """Positions of the objects with a mask on disk in a frame's ``uint8`` ``(O,)`` statuses
    (status ``pending`` and ``not_started`` have none: nothing is drawn for them)."""
    return [o for o in range(len(status)) if Status(int(status[o])) not in _NO_MASK]


@dataclass(frozen=True, eq=False)
class LostObject:
    """A frame-object whose stored mask is empty (the tracker lost it), and where it was last seen.

    Attributes:
        frame_index: the frame on which its mask is empty.
        object_id: the object.
        last_seen: the latest earlier frame on which its stored mask is not empty; None when no
            earlier frame has one (it was never seen).
        mask: ``bool`` ``(H, W)`` its mask on ``last_seen``; None when never seen.
    """

    frame_index: int
    object_id: int
    last_seen: int | None = None
    mask: np.ndarray | None = None

    @property
    def text(self) -> str:
        """What a reader is told: ``"object K: last seen at frame N"``, or
        ``"object K: missing (no mask)"`` when it was never seen."""
        if self.last_seen is None:
            return f"object {self.object_id}: missing (no mask)"
        return f"object {self.object_id}: last seen at frame {self.last_seen}"


@dataclass(frozen=True, eq=False)
class OverlayPanel:
    """One frame of an overlay.

    Attributes:
        frame_index: the frame's index in its video (its title).
        image: ``uint8`` ``(H, W, 3)`` RGB frame.
        object_ids: the video's ``O`` object ids.
        status: ``uint8`` ``(O,)`` :class:`~usam_video.types.Status` of each frame-object.
        masks: ``bool`` ``(D, H, W)`` of the ``D`` objects :func:`drawn_objects` names, in its order.
        values: ``float64`` ``(D,)`` their scores (NaN: not scored).
        lost: where the objects with an empty mask here were last seen (their ghost outlines);
            an empty-mask object without an entry is captioned as missing.
    """

    frame_index: int
    image: np.ndarray
    object_ids: tuple[int, ...]
    status: np.ndarray
    masks: np.ndarray
    values: np.ndarray
    lost: tuple[LostObject, ...] = ()


def _draw_lost(axis: Axes, panel: OverlayPanel, empty: Sequence[int]) -> None:
    """Show the objects (ids ``empty``) whose mask on ``panel`` is empty: a dashed outline of
    the mask where each was last seen, labelled so, or a caption in the panel's lower left saying
    it is missing. Nothing at all would read as "no object here", which is not what the store
    says."""
    known = {lost.object_id: lost for lost in panel.lost if lost.mask is not None and lost.mask.any()}
    captions = []
    for obj in empty:
        lost = known.get(obj)
        if lost is None:
            captions.append(LostObject(panel.frame_index, obj).text)
            continue
        mask = np.asarray(lost.mask, bool)
        if not mask.all():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # A dark solid line under white dashes: visible on any frame, and unlike the
                # solid score-coloured outline of a mask that is really there.
                plane = mask.astype(np.float32)
                axis.contour(plane, levels=[0.5], colors=["black"], linewidths=1.6)
                axis.contour(plane, levels=[0.5], colors=["white"], linewidths=1.2, linestyles="--")
        x, y = _label_point(mask)
        axis.text(
            x,
            y,
            f"{obj}: last seen at frame {lost.last_seen}",
            fontsize=6,
            ha="center",
            va="center",
            color="black",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": (1.0, 1.0, 1.0, 0.8), "linestyle": "--"},
        )
    if captions:
        axis.text(
            0.02,
            0.02,
            "\n".join(captions),
            transform=axis.transAxes,
            fontsize=6,
            ha="left",
            va="bottom",
            color="white",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": (0.7, 0.0, 0.0, 0.85), "edgecolor": "none"},
        )


def draw_overlay(
    panels: Sequence[OverlayPanel],
    out_path: Path,
    *,
    video_id: str,
    score: str,
    flags: Sequence[str] = (),
    complete: bool = True,
) -> Path:
    """Write one PNG of ``panels`` side by side, every drawn mask painted on its frame.

    Each mask is blended over the frame in the colour of its score on a red-yellow-green map
    over the score's range (values outside are clipped; NaN is grey), its outline drawn and a
    label ``"<object id>: <score>"``. Confidence scores map red = low, green = high predicted
    IoU; uncertainty scores (``*_gap``, ``entropy``) use the reversed map, so red always marks
    the doubtful masks. Titles give the frame index, the objects queued
    (``queued_refine``/``queued_human``) on it and those whose mask is empty; an empty mask's
    object is outlined dashed where it was last seen (``panel.lost``) or captioned as missing.
    A colorbar is labelled with the score name.

    Args:
        panels: at least one frame, all of one ``(H, W)``.
        out_path: the ``.png`` to write; parent folders are created.
        video_id: the figure's title.
        score: the registry name of the score the values are (its direction and range).
        flags: warnings for the title (e.g. "RANDOM model weights"), joined by " + ".
        complete: False adds "incomplete video" to the title.

    Returns:
        ``out_path``.

    Raises:
        ConfigError: ``score`` is not in the score registry.
    """
    figure = overlay_figure(panels, video_id=video_id, score=score, flags=flags, complete=complete)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return out


def overlay_figure(
    panels: Sequence[OverlayPanel],
    *,
    video_id: str,
    score: str,
    flags: Sequence[str] = (),
    complete: bool = True,
) -> Figure:
    """The figure :func:`draw_overlay` writes (arguments as there), not yet saved.

    Raises:
        ConfigError: ``score`` is not in the score registry.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    flip, low, high, direction = colour_scale(score)
    cmap = colormaps[CONFIDENCE_CMAP + ("_r" if flip else "")]
    norm = Normalize(vmin=low, vmax=high, clip=True)
    height, width = panels[0].image.shape[:2]
    scale = _PANEL_INCHES / max(height, width)
    panel_w, panel_h = width * scale, height * scale
    n = len(panels)
    figure = Figure(figsize=(panel_w * n + 1.0, panel_h + 1.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, n, squeeze=False)[0]
    for axis, panel in zip(axes, panels, strict=True):
        status, masks, values = panel.status, panel.masks, panel.values
        drawn = drawn_objects(status)
        colors = np.array(
            [_NAN_COLOR if math.isnan(v) else cmap(norm(v))[:3] for v in values], np.float64
        ).reshape(-1, 3)
        axis.imshow(blend_masks(panel.image, masks, colors), interpolation="antialiased")
        for o, mask, value, color in zip(drawn, masks, values, colors, strict=True):
            if not mask.any():
                continue
            if not mask.all():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    axis.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=1.2)
            x, y = _label_point(mask)
            text = f"{panel.object_ids[o]}: " + ("n/a" if math.isnan(value) else f"{value:.2f}")
            axis.text(
                x,
                y,
                text,
                fontsize=7,
                ha="center",
                va="center",
                color="black",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": (*color, 0.85), "edgecolor": "none"},
            )
        title = [f"frame {panel.frame_index}"]
        for queued in _QUEUED:
            ids = [str(panel.object_ids[o]) for o in range(len(status)) if status[o] == queued]
            if ids:
                title.append(f"{queued.label}: {', '.join(ids)}")
        empty = [int(panel.object_ids[o]) for o, mask in zip(drawn, masks, strict=True) if not mask.any()]
        if not drawn:
            title.append("no masks")
        elif empty:
            title.append(f"empty: {', '.join(map(str, empty))}")
            _draw_lost(axis, panel, empty)
        axis.set_title("\n".join(title), fontsize=8)
        axis.set_axis_off()

    colorbar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.9, aspect=15)
    colorbar.set_label(f"{score} ({direction})", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    # One short line each, so that a one-frame figure (about 340 px wide) shows them whole.
    heading = [video_id]
    if flags:
        heading.append(f"{' + '.join(flags)}: not real labels")
    if not complete:
        heading.append("incomplete video")
    figure.suptitle("\n".join(heading), fontsize=8)
    return figure
