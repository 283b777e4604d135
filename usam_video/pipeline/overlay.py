"""``write_overlay``: a stored video's frames with its masks coloured by a score, as one PNG.

The orchestration: the store (masks, scores, statuses, provenance) and the dataset (frames) are
read here; :func:`usam_video.evaluation.overlay.draw_overlay` draws what they hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, FrameSource, open_dataset
from usam_video.errors import EvaluationError, InputError, VideoNotFoundError
from usam_video.evaluation.overlay import (
    LostObject,
    OverlayPanel,
    colour_scale,
    default_overlay_score,
    draw_overlay,
    drawn_objects,
    overlay_frames,
)
from usam_video.store import FrameTable, PseudoLabelStore, VideoSummary

__all__ = ["find_lost", "write_overlay"]

#: Provenance flags of random weights and the words the figure's title gives them.
_UNTRAINED = (("model_untrained", "RANDOM model weights"), ("heads_untrained", "random heads"))


def write_overlay(
    store_path: str | Path | PseudoLabelStore,
    dataset: DatasetConfig,
    video_id: str,
    out_path: Path,
    frames: Sequence[int] | None = None,
    score: str | None = None,
    max_frames: int = 6,
    *,
    lost: Sequence[LostObject] | None = None,
    table: FrameTable | None = None,
    reader: DatasetReader | None = None,
) -> Path:
    """Write one PNG showing frames of a pseudo-labelled video with its stored masks on top.

    Each panel is a frame (``uint8`` ``(H, W, 3)`` RGB from the dataset's frame source) with
    every object's stored mask (``bool`` ``(H, W)``, a plane of the store's ``(T, O, H, W)``
    masks) blended over it in the colour of that frame-object's score (``float32``, a column
    of the store's ``(T, O, S)`` scores); see :func:`~usam_video.evaluation.overlay.draw_overlay`.
    Frame-objects with no mask (status ``pending`` or ``not_started``) are skipped. An object
    whose stored mask is empty on a drawn frame is outlined dashed where it was last seen, or
    captioned as missing (see :func:`find_lost`). Random model
    weights or heads (from the video's provenance) and an incomplete video are said in the
    figure's title.

    Args:
        store_path: the pseudo-label store (a path or an fsspec URL), read only.
        dataset: the dataset the video was labelled from (its frames are read lazily).
        video_id: a video of the store.
        out_path: the ``.png`` to write; parent folders are created.
        frames: frame indices to draw, in this order (at most ``max_frames``); default
            ``min(max_frames, T)`` frames evenly spaced from the first to the last.
        score: the score colouring masks, one of the store's ``score_names``; default
            :func:`~usam_video.evaluation.overlay.default_overlay_score`.
        max_frames: the most frames drawn (the PNG is about 240 px wide per frame at 100 dpi).
        lost: :func:`find_lost` of these frames when the caller already has it (the report
            also lists it on its page); default: found here.
        table, reader: the video's frame table and the dataset, when the caller has them
            already (a run's report); default: read and opened here.

    Returns:
        ``out_path``.

    Raises:
        VideoNotFoundError: the store has no such video (the message lists its videos).
        InputError: an unknown score, a frame index out of range, or a bad ``max_frames``.
        EvaluationError: the dataset's video does not match the store's (size, frame count).
    """
    store = PseudoLabelStore.opened(store_path)
    if not store.has_video(video_id):  # one check: listing every video costs one per video
        raise VideoNotFoundError(
            f"{store.location}: expected video {video_id!r} in the store, found {store.videos()}."
        )
    summary = store.summary(video_id)
    table = table if table is not None else store.frame_table(video_id)
    score = _overlay_score(table, video_id, score)
    column = table.score_names.index(score)
    indices = overlay_frames(frames, summary.num_frames, max_frames, video_id)
    colour_scale(score)  # a name the registry does not know raises ConfigError before any read
    panels = []
    reader = reader if reader is not None else open_dataset(dataset)
    with reader.frames(video_id) as source:
        _check_same_video(source, summary, video_id)
        # Each frame's masks are read once; what is lost on them is looked for in earlier frames.
        stored = {t: store.read_masks(video_id, t) for t in dict.fromkeys(indices)}
        if lost is None:
            lost = _last_seen(store, video_id, table, _empty_objects(table, stored))
        for t in indices:
            panels.append(_overlay_panel(t, np.asarray(source[t]), table, stored[t], column, lost))
    flags = [text for key, text in _UNTRAINED if summary.provenance.get(key)]
    return draw_overlay(
        panels, out_path, video_id=video_id, score=score, flags=flags, complete=summary.complete
    )


def _overlay_score(table: FrameTable, video_id: str, score: str | None) -> str:
    """``score``, checked against the video's stored scores, or the default one."""
    if score is None:
        return default_overlay_score(table.score_names)
    if score not in table.score_names:
        raise InputError(
            f"overlay: expected a score of video {video_id!r} in {list(table.score_names)}, got {score!r}."
        )
    return score


def _check_same_video(source: FrameSource, summary: VideoSummary, video_id: str) -> None:
    """Refuse a dataset video whose frame count or size differs from the store's."""
    height, width = summary.height, summary.width
    if len(source) != summary.num_frames or (source.height, source.width) != (height, width):
        raise EvaluationError(
            f"overlay: video {video_id!r}: expected the dataset's video to match the store's "
            f"{summary.num_frames} frames of {height}x{width}, got {len(source)} frames of "
            f"{source.height}x{source.width}. Pass the dataset the store was labelled from."
        )


def _overlay_panel(
    t: int,
    image: np.ndarray,
    table: FrameTable,
    masks: np.ndarray,
    column: int,
    lost: Sequence[LostObject],
) -> OverlayPanel:
    """Frame ``t``'s panel: its ``uint8`` ``(H, W, 3)`` image, the masks of its drawn objects
    (from the frame's ``bool`` ``(O, H, W)`` stored ``masks``), their values of score
    ``column``, and the objects lost on it."""
    status = table.status[t]
    drawn = drawn_objects(status)
    height, width = masks.shape[1:]
    return OverlayPanel(
        frame_index=t,
        image=image,
        object_ids=tuple(table.object_ids),
        status=status,
        masks=masks[drawn] if drawn else np.zeros((0, height, width), bool),
        values=table.scores[t, drawn, column].astype(np.float64),
        lost=tuple(item for item in lost if item.frame_index == t),
    )


def find_lost(
    store: PseudoLabelStore, video_id: str, frames: Sequence[int], table: FrameTable | None = None
) -> tuple[LostObject, ...]:
    """Every frame-object of ``frames`` whose stored mask is empty, with where it was last seen.

    An object counts as lost on a frame when it has a mask on disk there (not ``pending`` or
    ``not_started``) and that ``bool`` ``(H, W)`` mask has no pixel. Its ``last_seen`` is the
    latest earlier frame on which it has a non-empty stored mask (None: never seen).

    Args:
        store: an open store.
        video_id: a video of the store.
        frames: frame indices (each in range; repeats are looked at once).
        table: the video's frame table when the caller has it; default: read here.

    Returns:
        One :class:`~usam_video.evaluation.overlay.LostObject` per lost frame-object, by frame
        then by the video's object order.
    """
    table = table if table is not None else store.frame_table(video_id)
    stored = {int(t): store.read_masks(video_id, int(t)) for t in dict.fromkeys(frames)}
    return _last_seen(store, video_id, table, _empty_objects(table, stored))


def _empty_objects(table: FrameTable, stored: Mapping[int, np.ndarray]) -> dict[int, list[int]]:
    """``{frame: positions of the objects with a mask on disk that is empty}`` of ``stored``
    (``{frame: bool (O, H, W)}``); frames with none are left out."""
    empty = {}
    for t, masks in stored.items():
        positions = [o for o in drawn_objects(table.status[t]) if not masks[o].any()]
        if positions:
            empty[t] = positions
    return empty


def _last_seen(
    store: PseudoLabelStore,
    video_id: str,
    table: FrameTable,
    empty: Mapping[int, Sequence[int]],
    block: int = 16,
) -> tuple[LostObject, ...]:
    """Where each of ``empty`` (``{frame: object positions}``) was last seen: one backward scan
    from the latest of those frames, ``block`` frames per read, that stops once every one is
    found. A lost object is usually seen a few frames earlier, so the scan is short; only an
    object never seen reads the video's start."""
    wanted = {(t, o) for t, positions in empty.items() for o in positions}
    found: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
    end = max(empty, default=0)
    while wanted and end > 0:
        start = max(0, end - block)
        for f, masks in reversed(list(store.iter_masks(video_id, range(start, end), block=block))):
            with_mask = set(drawn_objects(table.status[f]))
            for t, o in [(t, o) for t, o in wanted if f < t and o in with_mask and masks[o].any()]:
                found[(t, o)] = (f, masks[o])
                wanted.discard((t, o))
        end = start
    lost = []
    for t in sorted(empty):
        for o in empty[t]:
            seen, mask = found.get((t, o), (None, None))
            lost.append(LostObject(t, int(table.object_ids[o]), seen, mask))
    return tuple(lost)
