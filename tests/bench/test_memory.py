"""The memory benchmark's small mode: four worker subprocesses, every figure present and sane."""

import math

import pytest

from usam_video.bench import memory


@pytest.mark.slow
def test_small_mode_reports_peaks_and_ratios(tmp_path) -> None:
    figures = memory.main(["--small", "--json", str(tmp_path / "memory.json")])
    assert (tmp_path / "memory.json").is_file()
    assert (figures["frames_short"], figures["frames_long"]) == (4, 12)
    assert set(figures["runs"]) == {"pipeline/short", "stock/short", "pipeline/long", "stock/long"}
    for run in (r for runs in figures["runs"].values() for r in runs):
        assert run["frames"] in (4, 12)
        # a model is loaded (well over 100 MiB) and the run's peak is at least what was resident
        assert 100 * 2**20 < run["rss_loaded"] <= run["peak_run"] + 2**20 < 16 * 2**30
        assert run["seconds"] > 0
    for kind in ("pipeline", "stock"):
        ratio = figures[kind]["peak_ratio"]
        assert math.isfinite(ratio) and 0.8 < ratio < 3.0
    assert isinstance(figures["goal_met"], bool)


def test_worker_refuses_an_unknown_kind(tmp_path) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        memory.run_worker("other", tmp_path, "v")
