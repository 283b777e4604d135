"""The overhead benchmark's small mode: bare, session and pipeline timed on one tiny video."""

import math

import pytest

from usam_video.bench import overhead


@pytest.mark.slow
def test_small_mode_reports_time_per_frame_and_ratios() -> None:
    figures = overhead.main(["--small"])
    (case,) = figures["cases"]
    assert case["frames"] == 6
    assert set(case["s_per_frame"]) == {"bare", "bare_busy", "session", "pipeline"}
    for values in case["s_per_frame"].values():
        assert len(values) == figures["repeats"] == 1 and all(0 < v < 60 for v in values)
    for key in (
        "ratio_of_medians",
        "median_paired_ratio",
        "session_median_paired_ratio",
        "busy_core_median_paired_ratio",
        "with_prompt_median_paired_ratio",
    ):
        assert math.isfinite(case[key]) and case[key] > 0
    low, high = case["paired_ratio_range"]
    assert low <= case["median_paired_ratio"] <= high  # one round: all three the same
    # Timing bare sam2's prompt too can only lower the pipeline's ratio.
    assert case["with_prompt_median_paired_ratio"] < case["median_paired_ratio"]
    assert isinstance(figures["goal_met"], bool)
    # Host time by thread: the pipeline's own threads did work; bare sam2 starts none.
    host = case["host_per_frame"]
    assert set(host) == {"bare", "bare_busy", "pipeline"}
    for role in ("prefetch", "finisher", "writer"):
        assert host["pipeline"][f"{role}_cpu_ms"] > 0
        assert host["bare"][f"{role}_cpu_ms"] == 0
    assert 0 < host["bare"]["caller_cpu_ms"] < 60_000
