"""Coverage at a fixed risk: hand-checked prefixes, ties released together, the oracle as the
ceiling, and the figure in ``evaluate``'s JSON for a real store."""

from __future__ import annotations

import numpy as np
import pytest

from usam_video.errors import EvaluationError
from usam_video.evaluation.coverage import coverage_at_risk, coverage_report, top_share_iou


def test_coverage_is_the_longest_prefix_within_the_risk() -> None:
    conf = np.arange(10, 0, -1, dtype=float)  # item 0 most confident
    bad = np.zeros(10, bool)
    bad[[3, 8]] = True
    # prefixes: 3 clean (0 %), 4 with 1 bad (25 %), 8 -> 1/8 = 12.5 %, 9 -> 2/9, 10 -> 20 %
    assert coverage_at_risk(conf, bad, (0.0, 0.125, 0.2, 0.3)) == [0.3, 0.8, 1.0, 1.0]


def test_tied_scores_are_released_together() -> None:
    conf = np.array([1.0, 1.0, 0.5, 0.5])
    bad = np.array([False, True, False, False])
    assert coverage_at_risk(conf, bad, (0.0, 0.5)) == [0.0, 1.0]


def test_a_confidently_wrong_top_releases_nothing_at_a_low_risk() -> None:
    conf = np.linspace(1, 0, 100)
    bad = np.zeros(100, bool)
    bad[0] = True
    assert coverage_at_risk(conf, bad, (0.005,)) == [0.0]
    assert coverage_at_risk(conf, bad, (0.02,))[0] == 1.0


def test_the_oracle_bounds_every_score() -> None:
    rng = np.random.default_rng(0)
    iou = rng.uniform(size=500)
    report = coverage_report(
        iou,
        {"noisy": iou + rng.normal(0, 0.3, 500), "entropy": -iou},
        {"noisy": "confidence", "entropy": "uncertainty"},
    )
    oracle, noisy, entropy = (report.row(n) for n in ("oracle", "noisy", "entropy"))
    assert all(o >= n for o, n in zip(oracle.coverage, noisy.coverage, strict=True))
    assert entropy.coverage == oracle.coverage  # a perfect uncertainty, negated
    assert (
        oracle.top_half_iou == pytest.approx(top_share_iou(iou, iou))
        and oracle.top_half_iou > noisy.top_half_iou
    )
    assert report.as_dict()["table"][0]["score"] == "oracle"


def test_mismatched_input_is_refused() -> None:
    with pytest.raises(EvaluationError, match="one truth per score"):
        coverage_at_risk([1.0, 2.0], [True])


def test_evaluate_json_holds_coverage_for_every_directed_score(micro_store, generated) -> None:
    from usam_video.pipeline.evaluate import evaluate_predictions

    result = evaluate_predictions(micro_store, generated, "davis", list(generated.videos), random_seed=0)
    coverage = result.as_dict()["coverage"]
    names = [row["score"] for row in coverage["table"]]
    assert names[0] == "oracle" and "iou_video" in names and "sam_iou" in names and "entropy" in names
    assert "prev_iou" not in names  # a video feature has no direction
    assert coverage["items"] == result.ranking.n_items
    oracle = coverage["table"][0]
    for row in coverage["table"]:
        for key in ("coverage@0.02", "coverage@0.05", "coverage@0.1"):
            assert 0.0 <= row[key] <= oracle[key]
