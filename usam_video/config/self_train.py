"""The semi-supervised experiment's config (``usam-video self-train``): a pool of generated
videos a teacher labels, one release per arm, a student fine-tuned on each, all measured on
held-out generated test sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from usam_video.config.base import StrictModel
from usam_video.config.model import HeadsConfig, ModelConfig
from usam_video.config.policy import PolicyConfig
from usam_video.config.training import TrainingRecipe

__all__ = ["ARMS", "GeneratedSet", "SelfTrainConfig", "StudentConfig", "TeacherConfig"]

#: The arms: (a) the student's starting model untouched; students fine-tuned on (b) every
#: pseudo-label, (c) the risk-controlled release, (d) (c) after a simulated review, (e) the truth.
ARMS: tuple[str, ...] = ("a", "b", "c", "d", "e")


class GeneratedSet(StrictModel):
    """Generated videos of one purpose's seed stream (``datasets.rendering.GENERATED_STREAMS``)."""

    seed: int = Field(ge=0)
    count: int = Field(ge=1)
    frames: int = Field(default=48, ge=3)


class TeacherConfig(StrictModel):
    """What labels the pool: SAM 2 with its heads, routed by a policy (with no rules every
    frame-object is accepted, so arm (b) holds every pseudo-label)."""

    model: ModelConfig
    heads: HeadsConfig = Field(default_factory=HeadsConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)


class StudentConfig(StrictModel):
    """The model every arm fine-tunes, from ``init_weights``, with one recipe, once per seed.

    ``seeds``: further recipe seeds (its clips and prompts) beside ``recipe.seed``; every arm is
    trained once per seed and its J&F is their mean. One fine-tuning run is a noisy measurement
    (on a validation seed, the same recipe on the same data gave J&F 0.345 with one seed and
    0.523 with the next), so arms are compared over several seeds, paired by seed.
    """

    sam2_config: str
    init_weights: Path
    recipe: TrainingRecipe = Field(default_factory=TrainingRecipe)
    seeds: list[int] = Field(default_factory=list, description="further recipe seeds beside recipe.seed")
    threads: int | None = Field(default=1, ge=1)

    @property
    def all_seeds(self) -> list[int]:
        """The seeds every arm trains with, the recipe's own first."""
        return list(dict.fromkeys([self.recipe.seed, *self.seeds]))


class SelfTrainConfig(StrictModel):
    """``usam-video self-train CONFIG``: every output under ``out`` (resumable: a finished stage
    is kept and skipped).

    Attributes:
        pool: the unlabelled pool (only its first-frame masks prompt the teacher; its full
            ground truth is arm (e) and the audits' truth).
        tests: the held-out test sets every student is measured on (J&F, DAVIS protocol).
        release_policy: the release policy YAML of arms (c) and (d) (default: the project's).
        max_risk, delta, audit_size: the certified threshold of arms (c) and (d): an audit of
            ``audit_size`` ground-truth frame-objects (None: every candidate).
        review_fraction: arm (d)'s simulated review, a share of the pool's frame-objects,
            planned as ``review_policy``'s human budget plans (score and planner).
    """

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    out: Path
    pool: GeneratedSet
    tests: list[GeneratedSet] = Field(min_length=1)
    teacher: TeacherConfig
    student: StudentConfig
    release_policy: Path | None = None
    max_risk: float = Field(default=0.05, gt=0, lt=1)
    delta: float = Field(default=0.1, gt=0, lt=1)
    audit_size: int | None = Field(default=None, ge=1)
    review_fraction: float = Field(default=0.05, gt=0, lt=1)
    review_policy: PolicyConfig | None = None
    arms: list[Literal["a", "b", "c", "d", "e"]] = Field(default_factory=lambda: list(ARMS))

    @model_validator(mode="after")
    def _review_is_planned(self) -> SelfTrainConfig:
        if "d" in self.arms and (self.review_policy is None or self.review_policy.human_budget is None):
            raise ValueError("arm d: expected review_policy with a human_budget (its score and planner)")
        return self
