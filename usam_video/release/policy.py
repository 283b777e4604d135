"""The release policy: which frame-objects of a store become training labels.

A frame-object is *released* when its status is one the policy names (never a queued one) and
either its mask is trusted (the dataset's prompt or a human correction, released as they are)
or its confidence, by the policy's registry score, reaches the threshold. The threshold is the
policy's own, or one chosen by :mod:`usam_video.release.risk` from an audit so that the share of
bad labels among the released stays under a target (``release --max-risk``).

An object that enters later in the video (status ``not_started``, before its first prompt) is
released as *absent* by default: the dataset's own annotation says where it first appears
(SA-V masklets, the DAVIS reader's late prompts), so an empty mask before it is a label, not a
guess. ``not_started: unreleased`` leaves such frame-objects out instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from usam_video.config import load_yaml_model
from usam_video.errors import InputError
from usam_video.release.head import RELEASE_SCORE, ReleaseHead
from usam_video.score_registry import direction_of, is_known
from usam_video.store import FrameTable
from usam_video.types import MaskSource, Status

__all__ = [
    "ReleasePolicy",
    "VideoSelection",
    "load_release_policy",
    "policy_confidence",
    "select_video",
]

_STATUS_NAMES = {"accepted": Status.ACCEPTED, "refined": Status.REFINED, "corrected": Status.CORRECTED}
_SOURCE_NAMES = {s.label: s for s in MaskSource}


class ReleasePolicy(BaseModel):
    """What a release takes from a store (``configs/release/*.yaml``).

    Attributes:
        statuses: frame-object statuses that may be released; queued ones never are.
        score: the registry score (a confidence or an uncertainty) the threshold applies to.
            ``good_release`` (the default) is the release head's P(label good), computed from the
            stored scores (:mod:`usam_video.release.head`).
        head: the release head's file for ``good_release``; default: ``release_head.json``
            beside the heads that labelled the store.
        threshold: release a pseudo-label whose score is at least this (a confidence) or at most
            this (an uncertainty); None releases every pseudo-label of the statuses (unless
            ``release --max-risk`` picks a threshold from an audit).
        trusted_sources: mask sources released without a threshold (their masks are truth).
        not_started: ``absent`` releases an object before its first prompt as an empty mask;
            ``unreleased`` leaves those frame-objects out.
        bad_iou: a label with IoU below this against the truth is *bad* (the risk counts them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    statuses: tuple[Literal["accepted", "refined", "corrected"], ...] = ("accepted", "refined", "corrected")
    score: str = "good_release"
    head: Path | None = None
    threshold: float | None = None
    trusted_sources: tuple[Literal["prompt", "human"], ...] = ("prompt", "human")
    not_started: Literal["absent", "unreleased"] = "absent"
    bad_iou: float = Field(default=0.5, gt=0, le=1)

    @field_validator("score")
    @classmethod
    def _directed(cls, value: str) -> str:
        if not is_known(value):
            raise ValueError(f"expected a score of the registry, got {value!r}")
        if direction_of(value) == "feature":
            raise ValueError(
                f"expected a confidence or an uncertainty score, got the video feature {value!r}"
            )
        return value

    def confidence_threshold(self, threshold: float | None = None) -> float | None:
        """``threshold`` (or the policy's) on the confidence scale of :func:`policy_confidence`."""
        value = self.threshold if threshold is None else threshold
        if value is None:
            return None
        return value if direction_of(self.score) == "confidence" else -value


def load_release_policy(path: Path) -> ReleasePolicy:
    """Load ``configs/release/<name>.yaml`` (a relative ``head`` is resolved against its folder).

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    policy = load_yaml_model(ReleasePolicy, path)
    if policy.head is not None and not policy.head.is_absolute():
        policy = policy.model_copy(update={"head": (Path(path).parent / policy.head).resolve()})
    return policy


def policy_confidence(
    table: FrameTable, score: str, where: str, head: ReleaseHead | None = None
) -> np.ndarray:
    """``float64`` ``(T, O)``: the policy's score turned into a confidence (higher = surer; an
    uncertainty is negated), NaN where it was never written (prompts, untracked objects).
    ``good_release`` is computed by ``head`` from the stored scores.

    Raises:
        InputError: the store has no such score column (its run had no such head), or
            ``good_release`` without a release head.
    """
    if score == RELEASE_SCORE:
        if head is None:
            raise InputError(
                f"{where}: expected a release head for the score {RELEASE_SCORE!r}, got none. Give 'head:' "
                "in the release policy, or pick a stored score (score: iou_video)."
            )
        return head.score_table(table, where)
    if score not in table.score_names:
        raise InputError(
            f"{where}: expected the release score {score!r} among the stored scores, got "
            f"{list(table.score_names)}. Pick one of them in the release policy (score: ...) or relabel "
            "with heads that provide it."
        )
    values = table.scores[:, :, table.score_names.index(score)].astype(np.float64)
    return values if direction_of(score) == "confidence" else -values


@dataclass(frozen=True, eq=False)
class VideoSelection:
    """What a release takes from one video.

    Attributes:
        object_ids: the ``O`` stored object ids.
        released: ``bool`` ``(T, O)``: a label (a mask, or absent).
        absent: ``bool`` ``(T, O)``: released as an empty mask (not started yet).
        trusted: ``bool`` ``(T, O)``: released without a threshold (prompt, human).
        candidate: ``bool`` ``(T, O)``: a pseudo-label the threshold decides on (eligible by status,
            not trusted, not absent).
        confidence: ``float64`` ``(T, O)``: the policy score as a confidence (NaN where missing).
    """

    video_id: str
    object_ids: tuple[int, ...]
    released: np.ndarray
    absent: np.ndarray
    trusted: np.ndarray
    candidate: np.ndarray
    confidence: np.ndarray

    @property
    def full_frames(self) -> np.ndarray:
        """``bool`` ``(T,)``: every object of the frame is released (the DAVIS and COCO layouts
        keep only these: a missing object there would read as "absent")."""
        return self.released.all(axis=1)


def select_video(
    table: FrameTable,
    policy: ReleasePolicy,
    where: str,
    threshold: float | None = None,
    head: ReleaseHead | None = None,
) -> VideoSelection:
    """Apply ``policy`` (with ``threshold`` instead of its own when given) to one video's table;
    ``head`` computes ``good_release``."""
    status = table.status
    eligible = np.isin(status, [int(_STATUS_NAMES[s]) for s in policy.statuses])
    source = table.source if table.source is not None else np.zeros_like(status)
    trusted = eligible & np.isin(source, [int(_SOURCE_NAMES[s]) for s in policy.trusted_sources])
    absent = (status == Status.NOT_STARTED) if policy.not_started == "absent" else np.zeros_like(eligible)
    confidence = policy_confidence(table, policy.score, where, head)
    candidate = eligible & ~trusted
    cut = policy.confidence_threshold(threshold)
    if cut is None:
        passed = candidate
    else:
        with np.errstate(invalid="ignore"):
            passed = candidate & (confidence >= cut)  # NaN never passes
    return VideoSelection(
        video_id=table.video_id,
        object_ids=tuple(int(i) for i in table.object_ids),
        released=passed | trusted | absent,
        absent=absent,
        trusted=trusted,
        candidate=candidate,
        confidence=confidence,
    )
