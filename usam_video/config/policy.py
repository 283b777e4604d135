"""The decision policy config: threshold rules, the human budget and its review plan, and the
model that refinement reruns with."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from usam_video.config.base import StrictModel
from usam_video.config.model import ModelConfig
from usam_video.errors import ConfigError
from usam_video.score_registry import direction_of

__all__ = ["PolicyRule", "ReviewPlanConfig", "HumanBudget", "ModelRefinement", "PolicyConfig"]


class PolicyRule(StrictModel):
    """Route a frame-object when ``score <op> threshold``; rules are tried in order.

    Routes: ``task`` swaps in the candidate mask the USAM IoU heads prefer (no new inference;
    the rule only matches where such a candidate exists), ``model`` queues the frame-object for
    the larger SAM 2 of ``model_refinement``, ``human`` queues it for review, ``refine`` queues
    it for automatic refinement without saying which.
    """

    name: str = Field(description="the reason recorded in the store")
    score: str
    op: Literal["<", "<=", ">", ">="]
    threshold: float
    route: Literal["task", "model", "refine", "human"]


class ReviewPlanConfig(StrictModel):
    """How the review planner (``usam_video.review.planner``) spends a human budget.

    ``runs`` (the default) corrects the onset of each run of low frames, runs ranked by the
    error mass downstream of the pick (a correction, re-propagated, fixes the frames after it
    until the track fails again), spread across objects and videos; ``per_frame`` takes the
    most uncertain frame-objects one by one (with ``skip_after`` > 0: never within that many
    frames after an earlier pick of the same object). The defaults were chosen on held-out
    generated videos (usam_video/weights/MODEL_CARD.md), not on the reported ones.
    """

    kind: Literal["runs", "per_frame"] = "runs"
    low_quantile: float = Field(default=0.35, gt=0, le=1, description="share of frames that count as low")
    threshold: float | None = Field(default=None, description="absolute uncertainty threshold instead")
    merge_gap: int = Field(default=2, ge=0, description="low runs this close merge into one")
    mass: Literal["rank", "value"] = "rank"
    object_decay: float = Field(default=0.5, ge=0, le=1)
    video_decay: float = Field(default=1.0, ge=0, le=1)
    skip_after: int = Field(default=8, ge=0)


class HumanBudget(StrictModel):
    """At most this much goes to humans: the review planner (``plan``) picks which, by
    ``priority``.

    The budget is a run's total over every review round, not a round's, and ``rounds`` spreads
    it: the first pass plans its share (the cap over ``rounds``), and each relabel after an
    import (``usam-video import``) plans its share of what is left (the cap less the
    frame-objects humans corrected or confirmed so far, over the rounds left), as
    ``simulate-review --rounds`` splits a budget. After ``rounds`` rounds of corrections a relabel
    plans nothing: that is the review's stop. The run's ``max_per_run`` counts every correction
    of the run's videos the same way. One round is the default because more did not pay on
    held-out videos: 3 rounds of a 5 % budget gained 1.07x and 1.00x what one round gains with
    the default planner (BENCHMARKS.md section 10), for a relabel per round.
    """

    fraction_per_video: float | None = Field(
        default=None, gt=0, le=1, description="per video, this share of its frame-objects over all rounds"
    )
    max_per_video: int | None = Field(default=None, ge=0, description="per video, over all rounds")
    max_per_run: int | None = Field(
        default=None, ge=0, description="over the run's (the store's) videos and all rounds"
    )
    rounds: int = Field(
        default=1,
        ge=1,
        description="review rounds the budget is spent in: each plans its share of what is left, "
        "re-propagated and rescored after the corrections before it; after this many rounds of "
        "corrections a relabel plans nothing (1: the whole budget at once, as before rounds)",
        json_schema_extra={"fingerprint": "omit_default"},  # stores labelled before stay current
    )
    priority: str = Field(default="sam_iou", description="score ordering the queue")
    ascending: bool | None = Field(
        default=None,
        description="True: low scores are the most uncertain; default from the score registry "
        "(a confidence such as sam_iou: True, an uncertainty such as a gap: False)",
    )
    plan: ReviewPlanConfig = Field(default_factory=ReviewPlanConfig)

    def low_first(self) -> bool:
        """True when the lowest ``priority`` values are the most uncertain (they go first).

        An explicit ``ascending`` wins (configs written before the score registry); otherwise
        the registry's direction of ``priority`` decides.

        Raises:
            ConfigError: ``priority`` is unknown to the registry, or a video feature (no direction).
        """
        if self.ascending is not None:
            return self.ascending
        direction = direction_of(self.priority)
        if direction == "feature":
            raise ConfigError(
                f"human_budget priority {self.priority!r}: expected a confidence or an uncertainty "
                "score, got a video feature (no direction of its own). Set 'ascending' or pick a score."
            )
        return direction == "confidence"


class ModelRefinement(StrictModel):
    """The larger SAM 2 that ``model`` routes are rerun with."""

    model: ModelConfig


class PolicyConfig(StrictModel):
    """An ordered list of threshold rules (a frame-object matching none is accepted), the
    candidate score for task swaps, a human budget and the model for model refinement."""

    name: str = "default"
    rules: list[PolicyRule] = Field(default_factory=list)
    candidate_score: str | None = Field(
        default=None, description="per-candidate score picking task swaps (default: the first iou_* head)"
    )
    human_budget: HumanBudget | None = None
    model_refinement: ModelRefinement | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyConfig:
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rule names must be unique, got {names}")
        if any(r.route == "model" for r in self.rules) and self.model_refinement is None:
            raise ValueError("a rule routes to 'model' but no 'model_refinement' model is configured")
        return self
