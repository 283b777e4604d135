"""Routing decisions on hand-built scores: each route, the better candidate by the heads' score,
the model route's config, and the human budget's choice (no model, no store)."""

import numpy as np
import pytest

from tests.budget_helpers import budget_keep
from usam_video.config import HumanBudget, ModelRefinement, PolicyConfig, PolicyRule
from usam_video.scoring import ThresholdPolicy
from usam_video.types import FrameScores, Status


def scores(rows: list[list[float]], cand: np.ndarray | None = None) -> FrameScores:
    v = np.array(rows, np.float32)
    return FrameScores(
        0, tuple(range(1, len(v) + 1)), ("sam_iou", "task_gap", "model_gap"), v, ("sam_iou", "iou_x"), cand
    )


POLICY = PolicyConfig(
    rules=[
        PolicyRule(name="swap", score="task_gap", op=">", threshold=0.1, route="task"),
        PolicyRule(name="bigger", score="model_gap", op=">", threshold=0.1, route="model"),
        PolicyRule(name="low", score="sam_iou", op="<", threshold=0.5, route="human"),
    ],
    candidate_score="iou_x",
    model_refinement=ModelRefinement(
        model={"name": "m", "sam2_config": "configs/sam2.1/sam2.1_hiera_l.yaml", "random_init": True}
    ),
)


def test_each_route_on_hand_built_scores() -> None:
    policy = ThresholdPolicy(POLICY)
    s = scores([[0.9, 0.2, 0.0], [0.9, 0.2, 0.0], [0.9, 0.0, 0.3], [0.2, 0.0, 0.0], [0.9, 0.0, 0.0]])
    can_swap = np.array([True, False, False, False, False])
    status, reason = policy.decide(s, can_swap)
    assert status.tolist() == [
        Status.REFINED,
        Status.ACCEPTED,
        Status.QUEUED_REFINE,
        Status.QUEUED_HUMAN,
        Status.ACCEPTED,
    ]
    assert [policy.decision(int(a), int(b)).reason for a, b in zip(status, reason, strict=True)] == [
        "swap",
        "",
        "bigger",
        "low",
        "",
    ]
    # without a better candidate the task rule does not match and later rules decide
    s2 = scores([[0.2, 0.9, 0.0]])
    assert policy.decide(s2, np.array([False]))[0].tolist() == [Status.QUEUED_HUMAN]


def test_better_candidate_uses_the_heads_score() -> None:
    policy = ThresholdPolicy(POLICY)
    cand = np.zeros((2, 4, 2), np.float32)
    cand[0, :, 1] = [0.9, 0.2, 0.5, 0.4]  # token 0 best, but invalid
    cand[1, :, 1] = [0.1, 0.2, 0.3, 0.8]
    valid = np.array([[False, True, True, True], [False, True, True, True]])
    better = policy.better_candidate(scores([[1, 0, 0], [1, 0, 0]], cand), np.array([2, 3]), valid)
    assert better.tolist() == [-1, -1]  # object 1 already has its best; object 2 too
    better = policy.better_candidate(scores([[1, 0, 0], [1, 0, 0]], cand), np.array([1, 1]), valid)
    assert better.tolist() == [2, 3]


def test_model_route_needs_a_model() -> None:
    with pytest.raises(ValueError, match="model_refinement"):
        PolicyConfig(rules=[PolicyRule(name="m", score="model_gap", op=">", threshold=0, route="model")])


def test_budget_keeps_the_most_uncertain() -> None:
    priority = np.array([0.9, 0.1, 0.5, np.nan, 0.3])
    keep = budget_keep(priority, HumanBudget(max_per_video=2), total_frames=100)
    assert keep.tolist() == [False, True, False, False, True]
    assert budget_keep(priority, HumanBudget(fraction_per_video=0.05), total_frames=60).sum() == 3
    desc = budget_keep(priority, HumanBudget(max_per_video=1, ascending=False), total_frames=10)
    assert desc.tolist() == [True, False, False, False, False]
