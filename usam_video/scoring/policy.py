"""Threshold policy: each frame-object is accepted or queued, with the rule that queued it."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np

from usam_video.config import PolicyConfig
from usam_video.errors import ConfigError
from usam_video.types import Decision, FrameScores, Status

__all__ = ["ThresholdPolicy"]

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ROUTES = {"refine": Status.QUEUED_REFINE, "human": Status.QUEUED_HUMAN}


class ThresholdPolicy:
    """Applies a :class:`PolicyConfig`: the first matching rule queues, no match accepts."""

    def __init__(self, config: PolicyConfig):
        self.config = config

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason this policy can record; code ``i + 1`` in the store is ``reasons[i]``."""
        return tuple(rule.name for rule in self.config.rules)

    def check(self, score_names: Sequence[str]) -> None:
        """Fail early if a rule reads a score this run does not produce."""
        for rule in self.config.rules:
            if rule.score not in score_names:
                raise ConfigError(
                    f"policy {self.config.name!r} rule {rule.name!r}: expected score {rule.score!r} "
                    f"among this run's scores {list(score_names)}, found none. "
                    "Load that head or drop the rule."
                )

    def decide(self, scores: FrameScores) -> tuple[np.ndarray, np.ndarray]:
        """Decide every object of a frame.

        Returns:
            ``status`` ``uint8`` ``(O,)`` (:class:`Status` values) and ``reason`` ``uint8``
            ``(O,)`` (0 = none, ``i + 1`` = ``reasons[i]``).
        """
        n = len(scores.object_ids)
        status = np.full(n, Status.ACCEPTED, dtype=np.uint8)
        reason = np.zeros(n, dtype=np.uint8)
        undecided = np.ones(n, dtype=bool)
        for code, rule in enumerate(self.config.rules, start=1):
            hit = undecided & _OPS[rule.op](scores.column(rule.score), rule.threshold)
            status[hit] = _ROUTES[rule.route]
            reason[hit] = code
            undecided &= ~hit
        return status, reason

    def decision(self, status: int, reason: int) -> Decision:
        """The :class:`Decision` behind stored codes."""
        return Decision(Status(status), self.reasons[reason - 1] if reason else "")
