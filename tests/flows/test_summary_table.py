"""The run's summary table artifact stays bounded at SA-V scale: one row per video up to
SUMMARY_ROWS, then the failed and the most uncertain videos (issue #36)."""

from __future__ import annotations

from dataclasses import dataclass

from flows.pseudo_label import summary_table
from usam_video.types import VideoResult


@dataclass
class _Digest:
    video_id: str
    uncertainty: float


class _Ranked:
    """What summary_table reads of a RunReport: its digests and their ranking."""

    jf = None

    def __init__(self, order: list[str]):
        self.videos = [_Digest(v, 1.0 - i / 10) for i, v in enumerate(order)]
        self._rank = {v: i + 1 for i, v in enumerate(order)}

    def rank(self, video_id: str) -> int:
        return self._rank[video_id]


def test_a_long_run_shows_its_failed_and_most_uncertain_videos_in_run_order() -> None:
    results = [VideoResult(f"v{i}", "failed" if i in (2, 6) else "labelled") for i in range(8)]
    report = _Ranked(["v5", "v0", "v7", "v1", "v3", "v4"])  # the most uncertain first
    rows = summary_table(results, report, limit=4)  # type: ignore[arg-type]
    assert [r["video_id"] for r in rows] == ["v0", "v2", "v5", "v6"]
    assert [r["uncertainty_rank"] for r in rows] == [2, None, 1, None]
    assert len(summary_table(results, report, limit=8)) == 8  # type: ignore[arg-type]
    assert [r["video_id"] for r in summary_table(results, limit=3)] == ["v0", "v2", "v6"]
