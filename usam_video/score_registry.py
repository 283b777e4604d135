"""What every stored score means, in one place.

Every consumer of scores (the policy, the human budget, the review planner, ``simulate-review``,
overlays, ``evaluate`` and the heads report) asks this module whether a score is a confidence
(higher = more certain: ``sam_iou``, ``iou_*`` heads) or an uncertainty (higher = less certain:
``entropy``, the ``*_gap`` heads), what range it lies in, and how to turn it into an uncertainty.
Nothing else derives a meaning from a name. An unknown name is an error, never a guess.

It sits beside ``types`` (stdlib and numpy only) because every layer reads it: ``evaluation``
and ``store`` may not import ``scoring``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from usam_video.errors import ConfigError

__all__ = [
    "Direction",
    "ScoreInfo",
    "VIDEO_FEATURES",
    "score_info",
    "is_known",
    "direction_of",
    "to_uncertainty",
    "known_scores",
]

Direction = Literal["confidence", "uncertainty", "feature"]


@dataclass(frozen=True)
class ScoreInfo:
    """The meaning of one score column.

    Attributes:
        name: the column name in the store.
        direction: ``"confidence"`` (higher = more certain), ``"uncertainty"`` (higher = less
            certain) or ``"feature"`` (a video feature with no direction of its own: an input of
            the video heads, stored so that it can be inspected and ranked by a fitted model).
        low, high: the range of the stored value (``-inf``/``inf`` when unbounded).
        shift: what the stored value was shifted by from the head's raw sigmoid output
            (``-0.5`` for the gap heads, which were trained on targets shifted by ``+0.5``).
        per_candidate: the score exists for every decoder candidate (``candidate_scores``).
        description: one line for reports and ``--help``.
    """

    name: str
    direction: Direction
    low: float
    high: float
    shift: float = 0.0
    per_candidate: bool = False
    description: str = ""


#: Per frame-object video features the engine computes while tracking (``FramePrediction.
#: video_features``), in column order. They see what a per-frame decoder token cannot: identity
#: switches (overlap with other objects), drift (area change, pointer similarity, colour) and time
#: since the last conditioning frame. New features go at the end: a column's position never
#: changes. The first eleven are what the shipped video heads were trained on
#: (:data:`VIDEO_HEAD_FEATURES`); ``colour_to_cond`` came later and only the release head reads it.
VIDEO_HEAD_FEATURES: tuple[str, ...] = (
    "prev_iou",
    "area_prev_ratio",
    "area_cond_ratio",
    "overlap_others",
    "ptr_cos_cond",
    "object_score_trend",
    "frames_since_cond",
    "area_fraction",
    "min_prev_iou_since_cond",
    "max_overlap_since_cond",
    "min_area_cond_ratio_since_cond",
)
VIDEO_FEATURES: tuple[str, ...] = (*VIDEO_HEAD_FEATURES, "colour_to_cond")

_INF = float("inf")
_FIXED: dict[str, ScoreInfo] = {
    s.name: s
    for s in (
        ScoreInfo("sam_iou", "confidence", 0.0, 1.0, per_candidate=True,
                  description="SAM's own predicted IoU of the chosen mask (SamScore)"),
        ScoreInfo("object_score", "confidence", 0.0, 1.0,
                  description="sigmoid of SAM 2's object-presence logit"),
        ScoreInfo("entropy", "uncertainty", 0.0, 1.0,
                  description="H_std: mean binary entropy of the mask probabilities"),
        ScoreInfo("stability", "confidence", 0.0, 1.0,
                  description="SAM's stability score of the chosen mask"),
        ScoreInfo("model_gap", "uncertainty", -0.5, 0.5, shift=-0.5,
                  description="predicted IoU gain of a larger SAM 2"),
        ScoreInfo("prompt_gap", "uncertainty", -0.5, 0.5, shift=-0.5,
                  description="predicted IoU gain of a dense prompt"),
        ScoreInfo("task_gap", "uncertainty", -0.5, 0.5, shift=-0.5,
                  description="predicted IoU gain of the best candidate"),
        ScoreInfo("lost_video", "uncertainty", 0.0, 1.0,
                  description="video head: probability that the track is lost or switched"),
        ScoreInfo("good_release", "confidence", 0.0, 1.0,
                  description="release head: probability that the label is good (IoU >= 0.5), "
                  "from the stored scores and video features (computed when read, not stored)"),
        ScoreInfo("prev_iou", "feature", 0.0, 1.0,
                  description="IoU with the object's mask on the previous frame"),
        ScoreInfo("area_prev_ratio", "feature", -_INF, _INF,
                  description="log area ratio to the previous frame's mask"),
        ScoreInfo("area_cond_ratio", "feature", -_INF, _INF,
                  description="log area ratio to the mask of the last conditioning frame"),
        ScoreInfo("overlap_others", "feature", 0.0, 1.0,
                  description="fraction of the mask covered by other objects' masks"),
        ScoreInfo("ptr_cos_cond", "feature", -1.0, 1.0,
                  description="cosine of the object pointer with its conditioning frames' (max)"),
        ScoreInfo("object_score_trend", "feature", -_INF, _INF,
                  description="object logit minus the previous frame's"),
        ScoreInfo("frames_since_cond", "feature", 0.0, _INF,
                  description="frames since the object's last conditioning frame"),
        ScoreInfo("area_fraction", "feature", 0.0, 1.0,
                  description="mask area over the frame's area"),
        # Once a track has jumped onto another object it follows it smoothly: the frame-to-frame
        # features look normal again. Their extremes since the last conditioning frame remember.
        ScoreInfo("min_prev_iou_since_cond", "feature", 0.0, 1.0,
                  description="lowest prev_iou since the last conditioning frame"),
        ScoreInfo("max_overlap_since_cond", "feature", 0.0, 1.0,
                  description="highest overlap_others since the last conditioning frame"),
        ScoreInfo("min_area_cond_ratio_since_cond", "feature", -_INF, _INF,
                  description="lowest area_cond_ratio since the last conditioning frame"),
        # A track that jumped onto another object or the background changes colour even where
        # its shape and area stay plausible (engine.features: mean Lab, eroded masks, a 128 x 128
        # grid; EMPTY_COLOUR_DISTANCE = 150 where the mask or its reference covers no cell).
        ScoreInfo("colour_to_cond", "feature", 0.0, _INF,
                  description="Lab distance of the mask's mean colour to its mean colour on the "
                  "last conditioning frame (150: an empty mask)"),
    )
}
# Heads predicting an IoU: iou_tiny, iou_large, iou_dense_prompt, iou_unsupervised, iou_micro,
# iou_video... Every such head also scores each candidate, except the video head (its features
# describe the tracked mask only).
_IOU_HEAD = re.compile(r"^iou_[a-z0-9_]+$")


def score_info(name: str) -> ScoreInfo:
    """The meaning of ``name``.

    Raises:
        ConfigError: the name is not a score this project knows (names the known ones).
    """
    info = _FIXED.get(name)
    if info is not None:
        return info
    if _IOU_HEAD.match(name):
        return ScoreInfo(
            name, "confidence", 0.0, 1.0, per_candidate=name != "iou_video",
            description=f"USAM head: predicted IoU ({name.removeprefix('iou_')})",
        )
    raise ConfigError(
        f"score {name!r}: expected a known score name ({', '.join(known_scores())}, or iou_<label> "
        "for an IoU head), got an unknown one."
    )


def is_known(name: str) -> bool:
    """True when :func:`score_info` knows ``name``."""
    return name in _FIXED or bool(_IOU_HEAD.match(name))


def direction_of(name: str) -> Direction:
    """``"confidence"``, ``"uncertainty"`` or ``"feature"`` (raises for unknown names)."""
    return score_info(name).direction


def to_uncertainty(name: str, values: np.ndarray) -> np.ndarray:
    """``float64`` values ordered so that higher means less certain (NaN stays NaN).

    A confidence in [0, 1] becomes ``1 - value``; an uncertainty stays as it is.

    Raises:
        ConfigError: ``name`` is unknown, or a feature (a feature has no direction: rank it
            through a fitted model instead).
    """
    info = score_info(name)
    v = np.asarray(values, np.float64)
    if info.direction == "confidence":
        return (info.high - v) if np.isfinite(info.high) else -v
    if info.direction == "uncertainty":
        return v.copy()
    raise ConfigError(
        f"score {name!r}: expected a confidence or an uncertainty to rank by, got a video feature "
        "(no direction of its own)."
    )


def known_scores() -> tuple[str, ...]:
    """The fixed names (IoU heads ``iou_<label>`` come on top)."""
    return tuple(_FIXED)
