"""Tests of usam_video.evaluation.ranking: hand-worked curves, oracle, random, correlations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from usam_video.errors import EvaluationError
from usam_video.evaluation import (
    DEFAULT_RATIOS,
    correlation,
    curve_area,
    evaluate_ranking,
    pearson,
    rankdata,
    ranking_curve,
    replaced_counts,
    spearman,
    uncertainty_from_confidence,
)

BASE = np.array([0.5, 0.6, 0.7, 0.8])
REFINED = np.array([0.9, 0.6, 0.5, 0.8])  # gains 0.4, 0, -0.2, 0
RATIOS = [0.0, 0.25, 0.5]  # k = 0, 1, 2 of N = 4


def test_hand_worked_curves_and_relative_auc() -> None:
    # Item 3 most uncertain (gain 0), then item 2 (gain -0.2).
    report = evaluate_ranking(BASE, REFINED, {"bad": [1, 2, 3, 4]}, ratios=RATIOS)
    bad = report.curve("bad")
    np.testing.assert_allclose(bad.miou, [0.65, 0.65, 0.60])
    np.testing.assert_allclose(report.oracle.miou, [0.65, 0.75, 0.75])
    # Trapezoids of mIoU - 0.65 over steps of 0.25.
    assert bad.area == pytest.approx(0.25 * (0 + 0) / 2 + 0.25 * (0 - 0.05) / 2)
    assert report.oracle.area == pytest.approx(0.25 * 0.1 / 2 + 0.25 * 0.2 / 2)
    assert bad.relative_auc == pytest.approx(-0.00625 / 0.0375)
    assert report.oracle.relative_auc == 1.0
    assert report.base_miou == pytest.approx(0.65)
    assert not report.degenerate


def test_ranking_curve_function_and_counts() -> None:
    np.testing.assert_allclose(ranking_curve(BASE, REFINED, [4, 3, 2, 1], RATIOS), [0.65, 0.75, 0.75])
    np.testing.assert_array_equal(replaced_counts(20000)[:3], [0, 200, 400])
    assert replaced_counts(20000)[-1] == 10000
    assert len(DEFAULT_RATIOS) == 51 and DEFAULT_RATIOS[-1] == 0.5
    np.testing.assert_array_equal(replaced_counts(3, [0.5, 1 / 6]), [2, 1])  # half up


def test_ties_are_broken_by_expectation() -> None:
    # A constant score cannot rank: every k gets the mean gain per refined item.
    flat = ranking_curve(BASE, REFINED, np.zeros(4), RATIOS)
    np.testing.assert_allclose(flat, [0.65, 0.65 + 0.2 / 4 / 4, 0.65 + 2 * 0.2 / 4 / 4])
    # The result does not depend on the input order.
    perm = np.array([2, 0, 3, 1])
    score = np.array([1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(
        ranking_curve(BASE, REFINED, score, RATIOS),
        ranking_curve(BASE[perm], REFINED[perm], score[perm], RATIOS),
    )


def test_confidence_flip() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(500)
    refined = np.ones(500)  # gain = 1 - base: the least confident item gains most
    confidence = base.copy()
    flipped = uncertainty_from_confidence(confidence)
    np.testing.assert_array_equal(flipped, -confidence)
    report = evaluate_ranking(base, refined, {"conf": flipped, "unflipped": confidence})
    assert report.curve("conf").relative_auc == pytest.approx(1.0)
    assert report.curve("unflipped").relative_auc < 0.5
    # A working uncertainty is negatively correlated with IoU.
    corr = report.curve("conf").correlation
    assert corr is not None and corr.spearman == pytest.approx(-1.0)


def test_oracle_is_one_and_random_is_near_zero_on_large_sample() -> None:
    rng = np.random.default_rng(1234)
    n = 20000
    base = rng.random(n)
    refined = rng.random(n)  # zero-mean, symmetric gains
    oracle_score = refined - base
    report = evaluate_ranking(base, refined, {"rand": rng.random(n), "gain": oracle_score})
    assert report.oracle.relative_auc == 1.0
    assert report.curve("gain").relative_auc == pytest.approx(1.0)
    assert abs(report.curve("rand").relative_auc) < 0.05
    assert abs(report.curve("rand").relative_auc_vs_random) < 0.05
    assert report.random.relative_auc_vs_random == 0.0
    # No ordering beats the oracle at any ratio.
    assert np.all(np.array(report.curve("rand").miou) <= np.array(report.oracle.miou) + 1e-12)


def test_random_baseline_variant_when_refinement_helps_on_average() -> None:
    rng = np.random.default_rng(5)
    n = 20000
    base = rng.random(n) * 0.8
    refined = np.clip(base + rng.normal(0.1, 0.1, n), 0, 1)  # mean gain ~ +0.1
    report = evaluate_ranking(base, refined, {"rand": rng.random(n)})
    rand = report.curve("rand")
    # Measured from the r = 0 level a random score gets mean(gain) * 1/8 of area: it is
    # NOT near 0 here. Measured above the expected random curve it is.
    assert rand.relative_auc > 0.3
    assert abs(rand.relative_auc_vs_random) < 0.05
    assert report.oracle.relative_auc_vs_random == 1.0


def test_degenerate_oracle_gives_nan_with_flag() -> None:
    report = evaluate_ranking(BASE, BASE, {"any": [1, 2, 3, 4]}, ratios=RATIOS)
    assert report.degenerate
    assert np.isnan(report.curve("any").relative_auc)
    assert np.isnan(report.oracle.relative_auc)
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["curves"][0]["relative_auc"] is None and data["degenerate"] is True
    # Refinement that always hurts: oracle area < 0 is degenerate too.
    assert evaluate_ranking(BASE, BASE - 0.1, {"any": [1, 2, 3, 4]}).degenerate


def test_curve_area_trapezoid() -> None:
    assert curve_area([0, 0.5], [0.2, 0.4]) == pytest.approx(0.5 * 0.2 / 2)
    assert curve_area([0, 0.1, 0.5], [1, 1, 1]) == 0.0


def test_validation_errors() -> None:
    with pytest.raises(EvaluationError, match="expected 4 values"):
        evaluate_ranking(BASE, REFINED[:3], {})
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate_ranking(BASE, REFINED, {"s": [1, np.nan, 2, 3]})
    with pytest.raises(EvaluationError, match="reserved|other than"):
        evaluate_ranking(BASE, REFINED, {"oracle": [1, 2, 3, 4]})
    with pytest.raises(EvaluationError, match="ratios"):
        evaluate_ranking(BASE, REFINED, {}, ratios=[0.1, 0.2])


# ----------------------------------------------------------------------------- correlations


def test_rankdata_average_ties() -> None:
    np.testing.assert_array_equal(rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(rankdata([3, 1, 2]), [3, 1, 2])
    np.testing.assert_array_equal(rankdata([7, 7, 7]), [2, 2, 2])


def test_pearson_and_spearman_known_values() -> None:
    # Pearson: deviations (-1, 0, 1) and (-7/3, -1/3, 8/3): 5 / sqrt(2 * 114/9).
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / np.sqrt(2 * 114 / 9))
    # Spearman: ranks of y = (1, 2, 3.5, 5, 3.5): 8 / sqrt(10 * 9.5).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert np.isnan(spearman([1], [2]))
    result = correlation([0.9, 0.5, 0.1], [0.2, 0.5, 0.8])
    assert result.n == 3 and result.pearson == pytest.approx(-1.0)


def test_correlations_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(9)
    x = rng.integers(0, 20, 300).astype(float)  # many ties
    y = x + rng.normal(0, 5, 300)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    np.testing.assert_allclose(rankdata(x), stats.rankdata(x))
