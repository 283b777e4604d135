"""A release threshold with a finite-sample guarantee on the share of bad labels.

Method: Learn-then-Test (Angelopoulos, Bates, Candès, Jordan and Lei, "Learn then Test:
Calibrating Predictive Algorithms to Achieve Risk Control", arXiv:2110.01052, 2021) with
fixed-sequence testing and exact binomial p-values (their section 4 and Bates et al.,
"Distribution-free, risk-controlling prediction sets", JACM 2021, for the binomial tail).

The audit is a sample of the release's *candidates* (pseudo-labels the threshold decides on)
whose truth is known, drawn uniformly or stratified by score with proportional allocation
(every candidate equally likely to be audited). For a threshold ``lam`` let ``R(lam)`` be the
share of bad labels (IoU < ``bad_iou`` with the truth) among the candidates whose confidence is
at least ``lam``. The audited candidates at or above ``lam`` are a sample of that set, so with
``k`` bad among ``n`` of them::

    p(lam) = P(Binomial(n, alpha) <= k)

is a valid p-value for the null hypothesis ``R(lam) > alpha`` (sampling without replacement
only concentrates the count further). Thresholds are tested from the strictest down, in an order
fixed by the audit's *scores* alone (never its truth), and the sequence stops at the first
p-value above ``delta``: with probability at least ``1 - delta`` the chosen threshold's
risk is at most ``alpha`` (fixed-sequence testing controls the family-wise error at ``delta``
without a Bonferroni split). The sequence starts at the strictest threshold holding enough
audited candidates that a clean sample could pass at all (``n >= log(delta) / log(1 - alpha)``,
45 at 5 % and ``delta`` 0.1): stricter thresholds could never be certified, and starting among
them would stop the sequence before it began. With ``starts`` > 1, several sequences start at
points fixed by the audit's size alone and share ``delta`` (Bonferroni over the sequences).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from usam_video.errors import InputError

__all__ = [
    "METHOD",
    "RiskCertificate",
    "binomial_cdf",
    "binomial_upper_bound",
    "certify_threshold",
    "check_risk_target",
    "min_audit_for",
]

METHOD = (
    "learn-then-test, fixed-sequence, exact binomial p-values (Angelopoulos et al. 2021, arXiv:2110.01052)"
)


def check_risk_target(max_risk: float, delta: float) -> None:
    """Raise :class:`InputError` unless ``0 < max_risk < 1`` and ``0 < delta < 1``."""
    if not 0.0 < max_risk < 1.0:
        raise InputError(f"--max-risk: expected a share of bad labels in (0, 1), got {max_risk}.")
    if not 0.0 < delta < 1.0:
        raise InputError(f"--delta: expected a failure probability in (0, 1), got {delta}.")


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, summed in log space (exact up to rounding)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def binomial_upper_bound(k: int, n: int, delta: float) -> float:
    """The Clopper-Pearson upper confidence bound at level ``1 - delta`` of a proportion with
    ``k`` successes in ``n`` trials (1.0 when ``n`` is 0)."""
    if n == 0 or k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection to ~1e-18
        mid = (lo + hi) / 2
        if binomial_cdf(k, n, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def min_audit_for(max_risk: float, delta: float) -> int:
    """The fewest audited labels with which a set could be certified at all (none of them bad)."""
    return math.ceil(math.log(delta) / math.log1p(-max_risk))


@dataclass(frozen=True)
class RiskCertificate:
    """The threshold a release used and what its audit says about it.

    Attributes:
        threshold: the lowest confidence released (the policy score's confidence scale:
            an uncertainty is negated); ``inf`` when no threshold could be certified (no
            pseudo-label is released).
        certified: a threshold passed the test (``False``: nothing is released by score).
        audit_size, audit_bad: audited candidates, and how many of them were bad.
        released_audit, released_bad: audited candidates at or above the threshold, and bad ones.
        estimated_risk: ``released_bad / released_audit`` (NaN when none).
        upper_bound: Clopper-Pearson bound at ``1 - delta`` of the released set's risk.
        p_value: the last passing test's p-value (NaN when none passed).
        tested: thresholds tested before the sequence stopped.
    """

    method: str
    max_risk: float
    delta: float
    threshold: float
    certified: bool
    audit_size: int
    audit_bad: int
    released_audit: int
    released_bad: int
    estimated_risk: float
    upper_bound: float
    p_value: float
    tested: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None)."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


def certify_threshold(
    confidence: np.ndarray, bad: np.ndarray, max_risk: float, delta: float = 0.1, starts: int = 1
) -> RiskCertificate:
    """The loosest threshold whose risk is certified at most ``max_risk`` with probability
    ``1 - delta``, by fixed-sequence Learn-then-Test over the audit's distinct confidences.

    Args:
        confidence: ``float`` ``(N,)``: the audited candidates' confidence (NaN: never released,
            counted in ``audit_size`` only).
        bad: ``bool`` ``(N,)``: the candidate's label was bad (IoU < ``bad_iou`` with the truth).
        starts: fixed sequences run from this many starting points, each at ``delta / starts``
            (a Bonferroni split over sequences): the first where a clean set could pass, the
            others evenly spaced over the audit's size. A confidently wrong top stops the first
            sequence at once; a later start can still certify the sets below it.

    Raises:
        InputError: an empty audit, shapes that differ, or a target outside (0, 1).
    """
    check_risk_target(max_risk, delta)
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    bad = np.asarray(bad, dtype=bool).ravel()
    if confidence.shape != bad.shape:
        raise InputError(f"audit: expected one truth per score, got {bad.size} and {confidence.size}.")
    if confidence.size == 0:
        raise InputError(
            "audit: expected audited frame-objects with known truth, got none. Give a dataset with "
            "ground truth on labelled frames, or a reviewed audit folder ('usam-video audit')."
        )
    finite = np.isfinite(confidence)
    order = np.argsort(-confidence[finite], kind="stable")
    conf_sorted, bad_sorted = confidence[finite][order], bad[finite][order]
    # Candidate thresholds: the distinct audited confidences, strictest first; n and k of each
    # are the audited candidates at or above it (ties enter together).
    cum_bad = np.cumsum(bad_sorted)
    ends = np.r_[np.flatnonzero(np.diff(conf_sorted) != 0), conf_sorted.size - 1]
    level = delta / starts
    first = min_audit_for(max_risk, level)
    # The starts depend on the audit's size alone (never its truth): the first where a clean
    # set could pass at all, then evenly spaced over the rest of the audit.
    start_sizes = sorted({first + (conf_sorted.size - first) * i // starts for i in range(starts)})
    best: tuple[float, int, int, float] | None = None
    tested = 0
    for start in start_sizes:
        for idx in ends[ends + 1 >= start]:
            n, k = int(idx) + 1, int(cum_bad[idx])
            tested += 1
            p = binomial_cdf(k, n, max_risk)
            if p > level:
                break
            if best is None or n > best[1]:
                best = (float(conf_sorted[idx]), n, k, p)
    if best is None:
        return RiskCertificate(
            METHOD, max_risk, delta, math.inf, False, int(confidence.size), int(bad.sum()), 0, 0,
            math.nan, 1.0, math.nan, tested,
        )  # fmt: skip
    threshold, n, k, p = best
    return RiskCertificate(
        METHOD, max_risk, delta, threshold, True, int(confidence.size), int(bad.sum()), n, k,
        k / n, binomial_upper_bound(k, n, delta), p, tested,
    )  # fmt: skip
