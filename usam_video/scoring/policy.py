"""Decision policy: each frame-object is accepted, refined on the spot, or queued, with the rule
that decided it; and the human budget that caps what goes to people.

:func:`decide_frame` is the whole per-frame decision of the labelling loop: the policy's rules,
the task swap of a better candidate (and its rescoring), prompt and correction frames, and
objects not yet started.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from usam_video.config import PolicyConfig
from usam_video.errors import ConfigError
from usam_video.score_registry import score_info, to_uncertainty
from usam_video.types import Decision, FramePrediction, FrameScores, MaskSource, Status

__all__ = ["FrameDecision", "ThresholdPolicy", "OVER_BUDGET", "decide_frame"]

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ROUTES = {
    "task": Status.REFINED,  # applied at once: the better candidate is already computed
    "model": Status.QUEUED_REFINE,
    "refine": Status.QUEUED_REFINE,
    "human": Status.QUEUED_HUMAN,
}
#: Reason recorded when the human budget turns a queued frame-object away (it is accepted).
OVER_BUDGET = "over_human_budget"


class ThresholdPolicy:
    """Applies a :class:`PolicyConfig`: the first matching rule decides, no match accepts."""

    def __init__(self, config: PolicyConfig):
        self.config = config

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason this policy can record; code ``i + 1`` in the store is ``reasons[i]``."""
        names = tuple(rule.name for rule in self.config.rules)
        return names + ((OVER_BUDGET,) if self.config.human_budget is not None else ())

    @property
    def swaps_candidates(self) -> bool:
        return any(rule.route == "task" for rule in self.config.rules)

    def candidate_score(self, candidate_names: Sequence[str]) -> str:
        """The per-candidate score that picks task swaps: the configured one, else the first
        head the score registry marks per-candidate, else SamScore."""
        if self.config.candidate_score is not None:
            return self.config.candidate_score
        heads = [n for n in candidate_names if n != "sam_iou" and score_info(n).per_candidate]
        return heads[0] if heads else "sam_iou"

    def check(self, score_names: Sequence[str], candidate_names: Sequence[str] = ()) -> None:
        """Fail early if a rule reads a score this run does not produce."""
        for rule in self.config.rules:
            if rule.score not in score_names:
                raise ConfigError(
                    f"policy {self.config.name!r} rule {rule.name!r}: expected score {rule.score!r} "
                    f"among this run's scores {list(score_names)}, found none. "
                    "Load that head or drop the rule."
                )
        wanted = self.candidate_score(candidate_names)
        if self.swaps_candidates:
            if wanted not in candidate_names:
                raise ConfigError(
                    f"policy {self.config.name!r}: expected candidate score {wanted!r} "
                    f"among the per-candidate scores {list(candidate_names)}."
                )
            if score_info(wanted).direction == "feature":  # also raises for an unknown name
                raise ConfigError(
                    f"policy {self.config.name!r}: expected a candidate score with a direction "
                    f"(a confidence or an uncertainty), got video feature {wanted!r}."
                )
        budget = self.config.human_budget
        if budget is not None:
            if budget.priority not in score_names:
                raise ConfigError(
                    f"policy {self.config.name!r} human_budget: expected priority score {budget.priority!r} "
                    f"among {list(score_names)}."
                )
            budget.low_first()  # an unknown priority, or a feature without 'ascending', fails now

    def better_candidate(
        self, scores: FrameScores, chosen: np.ndarray, valid: np.ndarray | None
    ) -> np.ndarray:
        """``int64`` ``(O,)``: per object the candidate the candidate score prefers, or -1 when it
        is the chosen one (or nothing is comparable).

        Args:
            chosen: ``int64`` ``(O,)``; valid: ``bool`` ``(O, K)`` candidates with a mask.
        """
        if scores.candidate_values is None:
            return np.full(len(chosen), -1, np.int64)
        name = self.candidate_score(scores.candidate_names)
        column = scores.candidate_names.index(name)
        # Best = least uncertain, whichever way the score points (the registry says).
        values = -to_uncertainty(name, scores.candidate_values[:, :, column])
        if valid is not None:
            values[~valid] = -np.inf
        values[~np.isfinite(values)] = -np.inf
        best = np.argmax(values, axis=1)
        rows = np.arange(len(chosen))
        better = (
            np.isfinite(values[rows, best])
            & (best != chosen)
            & (values[rows, best] > values[rows, np.maximum(chosen, 0)])
        )
        return np.where(better, best, -1)

    def decide(
        self, scores: FrameScores, can_swap: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decide every object of a frame.

        Args:
            can_swap: ``bool`` ``(O,)``: a better candidate exists (task rules match only there);
                None means nowhere.

        Returns:
            ``status`` ``uint8`` ``(O,)`` (:class:`Status` values; ``refined`` for task swaps) and
            ``reason`` ``uint8`` ``(O,)`` (0 = none, ``i + 1`` = ``reasons[i]``).
        """
        n = len(scores.object_ids)
        swap = np.zeros(n, bool) if can_swap is None else can_swap
        status = np.full(n, Status.ACCEPTED, dtype=np.uint8)
        reason = np.zeros(n, dtype=np.uint8)
        undecided = np.ones(n, dtype=bool)
        for code, rule in enumerate(self.config.rules, start=1):
            hit = undecided & _OPS[rule.op](scores.column(rule.score), rule.threshold)
            if rule.route == "task":
                hit &= swap
            status[hit] = _ROUTES[rule.route]
            reason[hit] = code
            undecided &= ~hit
        return status, reason

    def decision(self, status: int, reason: int) -> Decision:
        """The :class:`Decision` behind stored codes."""
        return Decision(Status(status), self.reasons[reason - 1] if reason else "")

    def route_of(self, reason: str) -> str | None:
        """The route of the rule named ``reason`` (None for no rule)."""
        for rule in self.config.rules:
            if rule.name == reason:
                return rule.route
        return None


@dataclass(frozen=True, eq=False)
class FrameDecision:
    """What the labelling loop writes for one frame (``O`` objects of ``H x W``).

    Attributes:
        masks: ``bool`` ``(O, H, W)``: SAM 2's mask, a swapped-in candidate, or the prompt.
        scores: the frame's scores (of the swapped-in candidate where one was swapped in).
        status: ``uint8`` ``(O,)`` :class:`~usam_video.types.Status` values.
        reason: ``uint8`` ``(O,)``: 0 none, ``i + 1`` = the policy's ``reasons[i]``.
        source: ``uint8`` ``(O,)`` :class:`~usam_video.types.MaskSource` values.
    """

    masks: np.ndarray
    scores: FrameScores
    status: np.ndarray
    reason: np.ndarray
    source: np.ndarray


def decide_frame(
    prediction: FramePrediction,
    scores: FrameScores,
    policy: ThresholdPolicy,
    rescore: Callable[[FramePrediction], FrameScores],
    prompt_masks: Mapping[tuple[int, int], np.ndarray],
    corrected: Collection[tuple[int, int]],
) -> FrameDecision:
    """Decide every object of one propagated frame.

    1. The policy's rules decide (a ``task`` rule matches only where a better candidate exists:
       tracked, not a prompt frame, and preferred by the candidate score).
    2. Task swaps: the candidate the candidate score prefers replaces SAM 2's mask, with source
       ``task``, and the frame is rescored as that candidate (its mask-based baselines,
       entropy and stability, are unknown: NaN).
    3. A prompt frame holds the prompt itself (its mask where it has one: sam2 would return it
       resized through its input resolution) and needs no decision: ``corrected`` with source
       ``human`` for a human correction, else ``accepted`` with source ``prompt``.
    4. Objects not yet started (before their first prompt) are ``not_started``, reason 0.

    Args:
        prediction: the frame as SAM 2 produced it (``candidate_masks`` needed when the policy
            swaps candidates).
        scores: ``rescore(prediction)``, the frame's scores.
        policy: the run's policy.
        rescore: scores a prediction (the run's :class:`~usam_video.scoring.Scorer`).
        prompt_masks: ``{(frame, object id): bool (H, W)}`` of every mask prompt.
        corrected: the ``(frame, object id)`` keys of the prompts that are human corrections.
    """
    object_ids = prediction.object_ids
    better = policy.better_candidate(scores, prediction.chosen_candidate, prediction.candidate_valid)
    can_swap = (better >= 0) & prediction.tracked & ~prediction.is_prompt
    status, reason = policy.decide(scores, can_swap)
    source = np.full(len(object_ids), MaskSource.PROPAGATED, np.uint8)
    masks = prediction.masks.copy()
    swapped = (status == Status.REFINED) & can_swap
    if swapped.any():
        assert prediction.candidate_masks is not None
        chosen = prediction.chosen_candidate.copy()
        chosen[swapped] = better[swapped]
        rows = np.arange(len(object_ids))
        masks[swapped] = prediction.candidate_masks[rows[swapped], chosen[swapped]]
        source[swapped] = MaskSource.TASK
        entropy, stability = prediction.entropy.copy(), prediction.stability.copy()
        entropy[swapped] = np.nan
        stability[swapped] = np.nan
        rescored = dataclasses.replace(
            prediction,
            chosen_candidate=chosen,
            sam_iou=prediction.candidate_ious[rows, np.maximum(chosen, 0)].astype(np.float32),
            entropy=entropy,
            stability=stability,
        )
        scores = rescore(rescored)
    t = prediction.frame_index
    for o, obj in enumerate(object_ids):
        if not prediction.is_prompt[o]:
            continue
        if (t, obj) in prompt_masks:
            masks[o] = prompt_masks[(t, obj)]
        human = (t, obj) in corrected
        status[o] = Status.CORRECTED if human else Status.ACCEPTED
        reason[o] = 0
        source[o] = MaskSource.HUMAN if human else MaskSource.PROMPT
    status[~prediction.tracked] = Status.NOT_STARTED
    reason[~prediction.tracked] = 0
    return FrameDecision(masks, scores, status, reason, source)
