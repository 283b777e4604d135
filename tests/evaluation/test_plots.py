"""Tests of usam_video.evaluation.plots: the ranking figure is a readable PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usam_video.errors import EvaluationError
from usam_video.evaluation import evaluate_ranking, plot_ranking_curves

pytest.importorskip("matplotlib")


def _report():
    rng = np.random.default_rng(0)
    base = rng.random(200)
    refined = np.clip(base + rng.normal(0.05, 0.2, 200), 0, 1)
    return evaluate_ranking(base, refined, {"rand": rng.random(200)})


def test_plot_report_writes_png(tmp_path: Path) -> None:
    out = plot_ranking_curves(_report(), tmp_path / "figs" / "ranking.png", title="test")
    assert out == tmp_path / "figs" / "ranking.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as image:
        assert image.size[0] > 100 and image.size[1] > 100


def test_plot_curve_list_and_empty(tmp_path: Path) -> None:
    report = _report()
    out = plot_ranking_curves([report.oracle, report.curves[0]], tmp_path / "two.png")
    assert out.stat().st_size > 0
    with pytest.raises(EvaluationError, match="at least one curve"):
        plot_ranking_curves([], tmp_path / "none.png")


def test_review_plan_marks_queued_and_corrected_frames(tmp_path: Path) -> None:
    from usam_video.evaluation.plots import plot_review_plan

    frames = list(range(30))
    timelines = {obj: (frames, [0.5 + 0.01 * obj * np.sin(t) for t in frames]) for obj in range(1, 11)}
    kwargs = {
        "score": "sam_iou",
        "conditioning": {1: [0, 12]},
        "queued": {1: [3, 4, 5], 2: [7]},
        "corrected": {1: [12]},
    }
    big = plot_review_plan("v", timelines, [(3, 1, 1)], tmp_path / "big.png", **kwargs)
    small = plot_review_plan("v", timelines, [(3, 1, 1)], tmp_path / "small.png", dpi=80, **kwargs)
    with Image.open(big) as a, Image.open(small) as b:
        assert a.size == (880, 352) and b.size == (640, 256)  # 8 x 3.2 inches at 110 and 80 dpi
    assert small.stat().st_size < big.stat().st_size < 150_000
