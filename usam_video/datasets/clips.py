"""Training clips cut from a dataset on disk (DAVIS or SA-V layout, a release included), for
``train-model`` on real annotations instead of generated videos.

A clip is ``clip_frames`` consecutive *annotated* frames of one video (SA-V annotates every 4th
frame: its clips step over the others, as SAM 2's own training does), drawn from the step
number alone, so a resumed training sees the same clip at the same step. Its objects are those
whose label is known and non-empty on the clip's first frame (that frame prompts them), at most
``max_objects``. A frame-object whose label the dataset leaves out (a release's null entry: a
pseudo-label not released) is marked unknown: the trainer takes no loss on it and never
prompts from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from usam_video.config import TrainingRecipe
from usam_video.datasets.base import DatasetReader
from usam_video.errors import InputError

__all__ = ["DatasetClip", "DatasetClips"]


@dataclass(frozen=True, eq=False)
class DatasetClip:
    """One training clip (the engine's ``TrainingClip``).

    Attributes:
        frames: ``uint8`` ``(T, H, W, 3)`` RGB at the video's size.
        labels: ``uint8`` ``(T, H, W)``: 0 background, ``n + 1`` object ``object_ids[n]`` (where
            masks overlap, the later object wins).
        known: ``bool`` ``(T, N)``: object ``n``'s label on frame ``t`` is known.
        video_id, frame_indices, object_ids: where it comes from.
    """

    frames: np.ndarray
    labels: np.ndarray
    known: np.ndarray
    video_id: str
    frame_indices: tuple[int, ...]
    object_ids: tuple[int, ...]


class DatasetClips:
    """The clip of each training step, cut from ``videos`` of ``reader`` (``clips(step)``).

    Raises (on construction):
        InputError: no video with at least two annotated frames and an object visible where
            its label is known.
    """

    def __init__(self, reader: DatasetReader, videos: Sequence[str], recipe: TrainingRecipe):
        self.reader, self.recipe = reader, recipe
        self._annotated = {v: reader.annotated_frames(v) for v in videos}
        self.videos = [v for v in videos if len(self._annotated[v]) >= 2]
        if not self.videos:
            raise InputError(
                f"dataset {reader.name!r}: expected a video with at least 2 annotated frames to train "
                f"on, got {len(videos)} video(s) with fewer."
            )

    def __call__(self, step: int) -> DatasetClip:
        # Its own stream of the recipe's seed (generated clips use spawn key 1, prompts 2).
        rng = np.random.default_rng([self.recipe.seed, 3, step])
        for _ in range(32):  # a window whose first frame shows no known object: draw again
            clip = self._draw(rng)
            if clip is not None:
                return clip
        raise InputError(
            f"dataset {self.reader.name!r}: expected annotated frames showing a known object to start "
            f"clips from, found none in 32 draws at step {step}."
        )

    def _draw(self, rng: np.random.Generator) -> DatasetClip | None:
        video_id = self.videos[int(rng.integers(len(self.videos)))]
        annotated = self._annotated[video_id]
        length = min(self.recipe.clip_frames, len(annotated))
        start = int(rng.integers(len(annotated) - length + 1))
        frame_indices = tuple(annotated[start : start + length])
        annotations = [self.reader.ground_truth(video_id, t) for t in frame_indices]
        if any(a is None for a in annotations):
            return None
        first = annotations[0]
        assert first is not None
        knows = [self.reader.known_objects(video_id, a) for a in annotations if a is not None]  # none is None
        visible = [o for o in first.object_ids if o in knows[0] and first.mask_of(o).any()]
        if not visible:
            return None
        count = min(len(visible), self.recipe.max_objects)
        object_ids = tuple(sorted(int(o) for o in rng.choice(visible, size=count, replace=False)))
        labels = np.zeros((length, *first.masks.shape[1:]), np.uint8)
        known = np.zeros((length, count), bool)
        for i, annotation in enumerate(annotations):
            assert annotation is not None
            for n, obj in enumerate(object_ids):
                known[i, n] = obj in knows[i]
                if known[i, n]:
                    labels[i][annotation.mask_of(obj)] = n + 1
        if not all((labels[0] == n + 1).any() for n in range(count)):
            return None  # an object hidden under another's mask on the prompt frame
        with self.reader.frames(video_id) as source:
            frames = np.stack([np.asarray(source[t]) for t in frame_indices])
        return DatasetClip(frames, labels, known, video_id, frame_indices, object_ids)
