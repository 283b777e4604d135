"""The release benchmarks in their seconds-long mode: they run end to end and print figures
that hold together (a test of the scripts, not of the figures)."""

from __future__ import annotations

from pathlib import Path


def test_release_speed_bench_small(tmp_path: Path, capsys) -> None:
    from usam_video.bench.release import main

    figures = main(["--small", "--json", str(tmp_path / "f.json")])
    out = capsys.readouterr().out
    assert set(figures["fps"]) == {
        "palette PNG write",
        "release sav",
        "release davis",
        "release ytvis",
        "release coco",
    }
    assert all(v > 0 for v in figures["fps"].values()) and figures["frames"] == 42
    assert figures["davis_vs_png"] == figures["fps"]["palette PNG write"] / figures["fps"]["release davis"]
    assert "goal: davis release" in out and (tmp_path / "f.json").is_file()


def test_coverage_bench_small(capsys) -> None:
    from usam_video.bench.coverage import main

    figures = main(["--small"])
    out = capsys.readouterr().out
    seed = figures["seeds"]["41"]
    table = {row["score"]: row for row in seed["coverage"]["table"]}
    assert table["oracle"]["coverage@0.05"] >= table["iou_video"]["coverage@0.05"]
    assert "calibrated threshold of iou_video" in out and "calibrated threshold of good_release" in out
    assert set(seed["calibrated"]) == {"good_release", "iou_video"} and "good_release" in table
    for per_size in seed["calibrated"].values():
        for result in per_size.values():
            for method in ("ours", "plain"):
                assert 0.0 <= result[method]["coverage"] <= 1.0 and 0.0 <= result[method]["risk_held"] <= 1.0
