"""The scoring benchmark's small mode: SAM 2 frame time and score_frame time per object count."""

import math

from usam_video.bench import scoring


def test_small_mode_reports_scoring_fractions() -> None:
    figures = scoring.main(["--small"])
    assert [r["objects"] for r in figures["results"]] == [1, 4]
    assert figures["heads"] == 9
    for row in figures["results"]:
        assert row["tracked_frames"] == len(row["frame_s"]) == len(row["score_s"]) == 2
        assert row["median_frame_s"] > 0 and row["median_score_s"] > 0
        # scoring a frame is cheaper than producing it, whatever the load on the machine
        assert math.isfinite(row["median_fraction"]) and 0 < row["median_fraction"] < 1
