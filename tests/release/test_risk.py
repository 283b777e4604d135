"""The risk-controlled threshold: exact binomial tails, the Clopper-Pearson bound, and the
guarantee itself, checked by simulation (the realised risk exceeds the target in at most
``delta`` of draws), plus the stratified audit sample and the release it certifies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from usam_video.errors import InputError
from usam_video.pipeline.release import release_store
from usam_video.release import (
    ReleasePolicy,
    binomial_cdf,
    binomial_upper_bound,
    certify_threshold,
    draw_audit,
    min_audit_for,
    select_video,
)
from usam_video.store import PseudoLabelStore


@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 10, 0.05), (3, 40, 0.05), (7, 200, 0.02), (50, 1000, 0.06), (5, 5, 0.5)]
)
def test_binomial_tail_and_bound_match_scipy(k: int, n: int, p: float) -> None:
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-15)
    expected = 1.0 if k >= n else stats.beta.ppf(0.9, k + 1, n - k)
    assert binomial_upper_bound(k, n, 0.1) == pytest.approx(expected, rel=1e-6)


def test_min_audit_is_the_smallest_clean_sample_that_passes() -> None:
    n = min_audit_for(0.05, 0.1)
    assert binomial_cdf(0, n, 0.05) <= 0.1 < binomial_cdf(0, n - 1, 0.05)


def _population(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth where the bad share falls with the score (as a calibrated head's)."""
    score = rng.uniform(size=size)
    bad = rng.uniform(size=size) < 0.4 * (1 - score) ** 2
    return score, bad


@pytest.mark.parametrize("starts", [1, 4])
def test_the_guarantee_holds_in_simulation_and_releases_something(starts: int) -> None:
    rng = np.random.default_rng(7)
    score, bad = _population(rng, 20_000)
    failures, coverages = 0, []
    for _ in range(200):
        audit = rng.choice(score.size, size=500, replace=False)
        rest = np.setdiff1d(np.arange(score.size), audit)
        cert = certify_threshold(score[audit], bad[audit], max_risk=0.05, delta=0.1, starts=starts)
        released = rest[score[rest] >= cert.threshold]
        if released.size and bad[released].mean() > 0.05:
            failures += 1
        coverages.append(released.size / rest.size)
    assert failures / 200 <= 0.1 + 0.04  # delta plus binomial slack of 200 draws
    assert np.mean(coverages) > 0.3  # and the threshold is not vacuous


def test_a_confidently_wrong_top_cannot_be_certified() -> None:
    score = np.linspace(1, 0, 300)
    bad = np.zeros(300, bool)
    bad[:30] = True  # the most confident tenth is wrong
    cert = certify_threshold(score, bad, max_risk=0.05, delta=0.1)
    assert not cert.certified and math.isinf(cert.threshold) and cert.released_audit == 0


def test_a_clean_audit_certifies_and_reports_its_bound() -> None:
    score = np.linspace(1, 0, 400)
    bad = score < 0.3
    cert = certify_threshold(score, bad, max_risk=0.05, delta=0.1)
    assert cert.certified and cert.threshold < 0.4
    assert cert.estimated_risk <= cert.upper_bound and cert.p_value <= 0.1
    assert cert.released_bad == int(bad[score >= cert.threshold].sum())


@pytest.mark.parametrize(("risk", "delta"), [(0.0, 0.1), (1.0, 0.1), (-0.1, 0.1), (0.05, 0.0), (0.05, 1.5)])
def test_a_target_outside_zero_one_is_refused(risk: float, delta: float) -> None:
    with pytest.raises(InputError, match="expected"):
        certify_threshold(np.ones(3), np.zeros(3, bool), risk, delta)


def test_the_audit_sample_is_stratified_by_score_in_proportion() -> None:
    rng = np.random.default_rng(0)
    score = rng.uniform(size=1000)
    from usam_video.release import AuditSet

    pool = AuditSet(
        np.array(["v"] * 1000, dtype=object),
        np.arange(1000),
        np.zeros(1000, np.int64),
        np.ones(1000),
        score,
        "gt",
    )
    picked = draw_audit(pool, 100, seed=1, strata=10)
    assert picked.size == 100 == np.unique(picked).size
    counts, _ = np.histogram(score[picked], bins=np.quantile(score, np.linspace(0, 1, 11)))
    assert counts.tolist() == [10] * 10
    assert np.array_equal(picked, draw_audit(pool, 100, seed=1, strata=10))
    with pytest.raises(InputError, match="audit size"):
        draw_audit(pool, 1001, seed=1)


def test_max_risk_release_uses_the_certified_threshold(micro_store: Path, tmp_path: Path) -> None:
    policy = ReleasePolicy(score="iou_video")
    outcome = release_store(micro_store, "ytvis", tmp_path / "out", policy=policy, max_risk=0.2, delta=0.2)
    cert = outcome.result.certificate
    assert cert is not None and outcome.audit is not None and len(outcome.audit) == cert.audit_size
    store = PseudoLabelStore.open(micro_store, "r")
    released = candidates = 0
    for video_id in store.videos():
        sel = select_video(store.frame_table(video_id), policy, video_id, threshold=outcome.result.threshold)
        assert (sel.confidence[sel.candidate & sel.released] >= cert.threshold).all()
        released += int((sel.candidate & sel.released).sum())
        candidates += int(sel.candidate.sum())
    assert outcome.result.counts["released_candidates"] == released
    assert outcome.result.counts["candidates"] == candidates
    if cert.certified:
        # on this audit (every candidate has ground truth) the released share of bad is known
        bad = outcome.audit.bad(0.5)[outcome.audit.confidence >= cert.threshold]
        assert bad.mean() == pytest.approx(cert.estimated_risk)


def test_later_starts_get_past_a_confidently_wrong_top() -> None:
    """A wrong top stops a single sequence at once; a later start (fixed by the audit's size
    alone, at delta / starts) certifies the clean middle."""
    score = np.linspace(1, 0, 1000)
    bad = np.zeros(1000, bool)
    bad[:20] = True  # the most confident 2 % are wrong
    bad[700:] = True
    one = certify_threshold(score, bad, max_risk=0.1, delta=0.1, starts=1)
    four = certify_threshold(score, bad, max_risk=0.1, delta=0.1, starts=4)
    assert not one.certified
    assert four.certified and four.released_audit > 500 and four.estimated_risk <= 0.1
