"""decide_frame: the per-frame decision of the labelling loop, case by case on hand-built frames.

Each case is one object on one 2x3 frame with K = 4 candidates; the policy swaps in a better
candidate when ``task_gap`` > 0.2 and queues for a human when ``sam_iou`` < 0.5. Candidate 0 is
SAM 2's choice; the candidate score (``sam_iou`` per candidate) prefers candidate 2 where the
case says ``better``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from usam_video.config import PolicyConfig, PolicyRule
from usam_video.scoring.policy import ThresholdPolicy, decide_frame
from usam_video.types import FramePrediction, FrameScores, MaskSource, Status

H, W, K = 2, 3, 4
POLICY = ThresholdPolicy(
    PolicyConfig(
        rules=[
            PolicyRule(name="swap", score="task_gap", op=">", threshold=0.2, route="task"),
            PolicyRule(name="low", score="sam_iou", op="<", threshold=0.5, route="human"),
        ],
        candidate_score="sam_iou",
    )
)
SWAP, LOW = 1, 2  # reason codes: 1 + the rule's position
SAM_MASK = np.array([[[True, False, False], [False, False, False]]])
CANDIDATE_MASKS = np.stack([np.full((H, W), k % 2 == 1) for k in range(K)])[None]  # (1, K, H, W)
PROMPT_MASK = np.array([[False, True, True], [False, True, True]])


def prediction(case: dict[str, Any]) -> FramePrediction:
    """A one-object frame 5 as the case describes it."""
    tracked = case.get("tracked", True)
    ious = np.array([[0.6, 0.1, 0.9 if case.get("better") else 0.2, 0.3]], np.float32)
    return FramePrediction(
        frame_index=5,
        object_ids=(3,),
        masks=SAM_MASK.copy() if tracked else np.zeros((1, H, W), bool),
        sam_iou=np.array([case.get("sam_iou", 0.6)], np.float32),
        candidate_ious=ious,
        chosen_candidate=np.array([0 if tracked else -1]),
        object_score_logits=np.zeros(1, np.float32),
        iou_tokens=np.zeros((1, 8), np.float32),
        mask_tokens=np.zeros((1, K, 8), np.float32),
        is_prompt=np.array([case.get("prompt", False)]),
        entropy=np.array([0.1], np.float32),
        stability=np.array([0.9], np.float32),
        tracked=np.array([tracked]),
        candidate_masks=CANDIDATE_MASKS.copy(),
        candidate_valid=np.ones((1, K), bool),
    )


def scorer(case: dict[str, Any], calls: list[FramePrediction]):
    """Scores of a prediction: its SamScore, the case's task gap, and SamScore per candidate."""

    def score(p: FramePrediction) -> FrameScores:
        calls.append(p)
        values = np.array([[p.sam_iou[0], case.get("task_gap", 0.0)]], np.float32)
        return FrameScores(
            p.frame_index,
            p.object_ids,
            ("sam_iou", "task_gap"),
            values,
            ("sam_iou",),
            p.candidate_ious[..., None],
        )

    return score


CASES = {
    "accepted": ({}, Status.ACCEPTED, 0, MaskSource.PROPAGATED, "sam"),
    "queued for a human": ({"sam_iou": 0.3}, Status.QUEUED_HUMAN, LOW, MaskSource.PROPAGATED, "sam"),
    "task swap": ({"task_gap": 0.4, "better": True}, Status.REFINED, SWAP, MaskSource.TASK, "candidate 2"),
    "task rule without a better candidate": (
        {"task_gap": 0.4},
        Status.ACCEPTED,
        0,
        MaskSource.PROPAGATED,
        "sam",
    ),
    "no better candidate, later rule decides": (
        {"task_gap": 0.4, "sam_iou": 0.3},
        Status.QUEUED_HUMAN,
        LOW,
        MaskSource.PROPAGATED,
        "sam",
    ),
    "better candidate, task rule not matched": (
        {"better": True},
        Status.ACCEPTED,
        0,
        MaskSource.PROPAGATED,
        "sam",
    ),
    "mask prompt": ({"prompt": True, "sam_iou": 0.3}, Status.ACCEPTED, 0, MaskSource.PROMPT, "prompt"),
    "click prompt (no mask)": (
        {"prompt": True, "sam_iou": 0.3, "clicks": True},
        Status.ACCEPTED,
        0,
        MaskSource.PROMPT,
        "sam",
    ),
    "prompt frame never swaps": (
        {"prompt": True, "task_gap": 0.4, "better": True},
        Status.ACCEPTED,
        0,
        MaskSource.PROMPT,
        "prompt",
    ),
    "human correction": (
        {"prompt": True, "corrected": True},
        Status.CORRECTED,
        0,
        MaskSource.HUMAN,
        "prompt",
    ),
    "not started": (
        {"tracked": False, "sam_iou": float("nan")},
        Status.NOT_STARTED,
        0,
        MaskSource.PROPAGATED,
        "none",
    ),
}


@pytest.mark.parametrize(("case", "status", "reason", "source", "mask"), CASES.values(), ids=CASES.keys())
def test_decide_frame(
    case: dict[str, Any], status: Status, reason: int, source: MaskSource, mask: str
) -> None:
    p = prediction(case)
    calls: list[FramePrediction] = []
    score = scorer(case, calls)
    key = (5, 3)
    prompt_masks = {} if case.get("clicks") or not case.get("prompt") else {key: PROMPT_MASK}
    corrected = {key} if case.get("corrected") else set()
    decision = decide_frame(p, score(p), POLICY, score, prompt_masks, corrected)
    assert (decision.status.tolist(), decision.reason.tolist(), decision.source.tolist()) == (
        [status],
        [reason],
        [source],
    )
    expected = {
        "sam": SAM_MASK[0],
        "candidate 2": CANDIDATE_MASKS[0, 2],
        "prompt": PROMPT_MASK,
        "none": np.zeros((H, W), bool),
    }[mask]
    np.testing.assert_array_equal(decision.masks[0], expected)
    np.testing.assert_array_equal(p.masks, prediction(case).masks)  # the prediction is left as it was
    assert len(calls) == (2 if source == MaskSource.TASK else 1)  # rescored only after a swap


def test_a_swapped_candidate_is_rescored_as_itself() -> None:
    """After a swap the scores are those of the candidate: its predicted IoU as SamScore, and
    no mask-based baselines (entropy and stability unknown)."""
    case = {"task_gap": 0.4, "better": True}
    p = prediction(case)
    calls: list[FramePrediction] = []
    score = scorer(case, calls)
    decision = decide_frame(p, score(p), POLICY, score, {}, set())
    rescored = calls[-1]
    assert rescored.chosen_candidate.tolist() == [2]
    assert rescored.sam_iou.tolist() == pytest.approx([0.9])
    assert np.isnan(rescored.entropy).all() and np.isnan(rescored.stability).all()
    assert decision.scores.column("sam_iou").tolist() == pytest.approx([0.9])


def test_objects_are_decided_independently() -> None:
    """Two objects: the first swapped, the second a mask prompt; neither affects the other."""
    one = prediction({"better": True})
    two = prediction({"prompt": True})

    def stack(field: str) -> Any:
        a, b = getattr(one, field), getattr(two, field)
        return None if a is None else np.concatenate([a, b])

    both = dataclasses.replace(
        one,
        object_ids=(3, 4),
        **{
            f.name: stack(f.name)
            for f in dataclasses.fields(one)
            if f.name not in ("frame_index", "object_ids")
        },
    )
    calls: list[FramePrediction] = []
    score = scorer({"task_gap": 0.4}, calls)
    decision = decide_frame(both, score(both), POLICY, score, {(5, 4): PROMPT_MASK}, set())
    assert decision.status.tolist() == [Status.REFINED, Status.ACCEPTED]
    assert decision.source.tolist() == [MaskSource.TASK, MaskSource.PROMPT]
    np.testing.assert_array_equal(decision.masks[0], CANDIDATE_MASKS[0, 2])
    np.testing.assert_array_equal(decision.masks[1], PROMPT_MASK)
