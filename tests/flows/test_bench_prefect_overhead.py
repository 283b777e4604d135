"""The Prefect overhead benchmark's small mode, on the session's Prefect test harness."""

import math

import pytest

from flows import bench_prefect_overhead as prefect_overhead


@pytest.mark.slow
def test_small_mode_reports_overhead_per_video(prefect_harness) -> None:
    figures = prefect_overhead.main(["--small", "--server", "current"])
    assert [r["videos"] for r in figures["results"]] == [1, 2]
    for row in figures["results"]:
        assert row["median_flow_s"] > 0 and row["median_plain_s"] > 0
        assert math.isfinite(row["overhead_fraction"]) and row["overhead_fraction"] > -1
        assert row["overhead_s_per_video"] == pytest.approx(
            (row["median_flow_s"] - row["median_plain_s"]) / row["videos"]
        )
