"""``write_overlay``: a stored video's frames with its masks coloured by a score, as one PNG.

The orchestration: the store (masks, scores, statuses, provenance) and the dataset (frames) are
read here; :func:`usam_video.evaluation.overlay.draw_overlay` draws what they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.errors import EvaluationError, InputError, VideoNotFoundError
from usam_video.evaluation.overlay import (
    OverlayPanel,
    colour_scale,
    default_overlay_score,
    draw_overlay,
    drawn_objects,
    overlay_frames,
)
from usam_video.store import PseudoLabelStore

__all__ = ["write_overlay"]

#: Provenance flags of random weights and the words the figure's title gives them.
_UNTRAINED = (("model_untrained", "RANDOM model weights"), ("heads_untrained", "random heads"))


def write_overlay(
    store_path: str | Path,
    dataset: DatasetConfig,
    video_id: str,
    out_path: Path,
    frames: Sequence[int] | None = None,
    score: str | None = None,
    max_frames: int = 6,
) -> Path:
    """Write one PNG showing frames of a pseudo-labelled video with its stored masks on top.

    Each panel is a frame (``uint8`` ``(H, W, 3)`` RGB from the dataset's frame source) with
    every object's stored mask (``bool`` ``(H, W)``, a plane of the store's ``(T, O, H, W)``
    masks) blended over it in the colour of that frame-object's score (``float32``, a column
    of the store's ``(T, O, S)`` scores); see :func:`~usam_video.evaluation.overlay.draw_overlay`.
    Frame-objects with no mask (status ``pending`` or ``not_started``) are skipped. Random model
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

    Returns:
        ``out_path``.

    Raises:
        VideoNotFoundError: the store has no such video (the message lists its videos).
        InputError: an unknown score, a frame index out of range, or a bad ``max_frames``.
        EvaluationError: the dataset's video does not match the store's (size, frame count).
    """
    store = PseudoLabelStore.open(store_path, mode="r")
    videos = store.videos()
    if video_id not in videos:
        raise VideoNotFoundError(
            f"{store.location}: expected video {video_id!r} in the store, found {videos}."
        )
    summary = store.summary(video_id)
    table = store.frame_table(video_id)
    if score is None:
        score = default_overlay_score(table.score_names)
    elif score not in table.score_names:
        raise InputError(
            f"overlay: expected a score of video {video_id!r} in {list(table.score_names)}, got {score!r}."
        )
    column = table.score_names.index(score)
    indices = overlay_frames(frames, summary.num_frames, max_frames, video_id)
    colour_scale(score)  # a name the registry does not know raises ConfigError before any read
    height, width = summary.height, summary.width
    panels = []
    reader = open_dataset(dataset)
    with reader.frames(video_id) as source:
        if len(source) != summary.num_frames or (source.height, source.width) != (height, width):
            raise EvaluationError(
                f"overlay: video {video_id!r}: expected the dataset's video to match the store's "
                f"{summary.num_frames} frames of {height}x{width}, got {len(source)} frames of "
                f"{source.height}x{source.width}. Pass the dataset the store was labelled from."
            )
        for t in indices:
            status = table.status[t]
            drawn = drawn_objects(status)
            masks = store.read_masks(video_id, t)[drawn] if drawn else np.zeros((0, height, width), bool)
            panels.append(
                OverlayPanel(
                    frame_index=t,
                    image=np.asarray(source[t]),
                    object_ids=tuple(table.object_ids),
                    status=status,
                    masks=masks,
                    values=table.scores[t, drawn, column].astype(np.float64),
                )
            )
    flags = [text for key, text in _UNTRAINED if summary.provenance.get(key)]
    return draw_overlay(
        panels, out_path, video_id=video_id, score=score, flags=flags, complete=summary.complete
    )
