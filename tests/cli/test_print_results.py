"""The run's table on the terminal: every row for a small run; counts and the videos not
labelled for a run of thousands (the flow's summary artifact keeps a row per video)."""

from __future__ import annotations

import pytest

from usam_video.cli.main import PRINTED_ROWS, print_results
from usam_video.types import VideoResult


def test_a_small_run_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    results = [VideoResult("v-a", "labelled", frames=4), VideoResult("v-b", "failed", error="broken.mp4")]
    assert print_results(results) == 1
    out = capsys.readouterr().out
    assert "v-a" in out and "v-b" in out and "broken.mp4" in out


def test_a_large_run_prints_counts_and_the_videos_not_labelled(capsys: pytest.CaptureFixture[str]) -> None:
    results = [VideoResult(f"v{i:05d}", "labelled", frames=4) for i in range(PRINTED_ROWS + 50)]
    results[7] = VideoResult("v00007", "failed", error="v00007.json: no masklet")
    results[9] = VideoResult("v00009", "skipped", error="being labelled by host-b:12:1")
    assert print_results(results) == 1
    out = capsys.readouterr().out
    assert f"{PRINTED_ROWS + 50} videos: 1 failed, {PRINTED_ROWS + 48} labelled, 1 skipped" in out
    assert "v00007" in out and "v00009" in out and "host-b" in out
    assert "v00000" not in out and "v00100" not in out  # labelled rows are not printed


def test_inspect_of_a_large_store_prints_totals_and_the_videos_to_look_at(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from usam_video.cli.main import _inspected_rows

    def video(i: int, complete: bool = True, human: int = 0) -> dict:
        counts = {"accepted": 10, "queued_refine": 1, "queued_human": human}
        return {"video_id": f"v{i:05d}", "complete": complete, "status_counts": counts}

    videos = [video(i, human=i % 7) for i in range(PRINTED_ROWS + 50)]
    videos[3] = video(3, complete=False)
    assert _inspected_rows(videos[:PRINTED_ROWS]) == videos[:PRINTED_ROWS]  # small: every row
    shown = _inspected_rows(videos)
    out = capsys.readouterr().out
    assert f"{PRINTED_ROWS + 50} videos: {PRINTED_ROWS + 49} complete, 1 incomplete" in out
    assert len(shown) == PRINTED_ROWS and videos[3] in shown  # incomplete first
    assert [v["video_id"] for v in shown] == sorted(v["video_id"] for v in shown)  # store order
    assert min(v["status_counts"]["queued_human"] for v in shown if v["complete"]) >= max(
        v["status_counts"]["queued_human"] for v in videos if v not in shown
    )
