"""Review pages of a store (usam_video.pipeline.report, ``usam-video report``): the ranking of
videos by uncertainty, the page contents, the size cap, and the static report in Chromium."""

from __future__ import annotations

import html
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT, make_run_config
from usam_video.cli import app
from usam_video.config import DatasetConfig, HumanBudget, PolicyConfig, PolicyRule
from usam_video.errors import InputError, VideoNotFoundError
from usam_video.pipeline.report import (
    MAX_PAGE_BYTES,
    build_report,
    chosen_score,
    digest_video,
    run_markdown,
    video_markdown,
    write_static_report,
)
from usam_video.score_registry import to_uncertainty
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status

pytest.importorskip("matplotlib")

VIDEOS = ["synth-000", "synth-001", "synth-002"]  # 1, 2 and 3 objects, 6 frames of 96x128
ARTIFACTS_DIR = REPO_ROOT / "build" / "test-artifacts" / "report"
runner = CliRunner()


@pytest.fixture(scope="module")
def labelled(synth_root: Path, tmp_path_factory, small_model_config) -> tuple[Path, DatasetConfig]:
    """The three generated videos labelled with a human budget, so each has a review plan."""
    from usam_video.pipeline import label_dataset

    policy = PolicyConfig(
        name="report",
        rules=[PolicyRule(name="low_sam_iou", score="sam_iou", op="<", threshold=2.0, route="human")],
        human_budget=HumanBudget(max_per_video=2, priority="sam_iou"),
    )
    store = tmp_path_factory.mktemp("report") / "s.zarr"
    run = make_run_config(synth_root, store, VIDEOS, small_model_config, policy=policy)
    assert [r.outcome for r in label_dataset(run)] == ["labelled"] * 3
    return store, run.dataset


def test_videos_are_ranked_by_uncertainty_of_the_chosen_score(labelled) -> None:
    store_path, _ = labelled
    report = build_report(store_path, ground_truth=False)
    assert sorted(d.video_id for d in report.videos) == VIDEOS
    values = [d.uncertainty for d in report.videos]
    assert all(math.isfinite(v) for v in values) and values == sorted(values, reverse=True)
    assert report.paged == tuple(d.video_id for d in report.videos)  # no cap: every video has a page
    assert report.jf is None and "switched off" in report.jf_note

    store = PseudoLabelStore.open(store_path, "r")
    for d in report.videos:
        table = store.frame_table(d.video_id)
        assert d.score == "sam_iou"  # the human budget's priority
        assert d.queued_human == int((table.status == Status.QUEUED_HUMAN).sum()) > 0
        assert [p.rank for p in d.plan] == sorted(p.rank for p in d.plan) and d.plan
        assert {(p.frame, p.object_id) for p in d.plan} == set(store.review_plan(d.video_id))
        # The worst frames hold the highest frame uncertainty outside conditioning frame-objects.
        u = to_uncertainty("sam_iou", table.scores[..., table.score_names.index("sam_iou")])
        u[table.source == MaskSource.PROMPT] = np.nan
        frame_u = np.full(len(u), np.nan)
        frame_u[1:] = np.nanmax(u[1:], axis=1)  # frame 0: every object's prompt, nothing ranked
        assert len(d.worst_frames) == 4 and 0 not in d.worst_frames  # frame 0 holds the prompts
        assert math.isclose(np.nanmax(frame_u), frame_u[d.worst_frames[0]], rel_tol=1e-6)
        assert [round(frame_u[t], 5) for t in d.worst_frames] == sorted(
            (round(frame_u[t], 5) for t in d.worst_frames), reverse=True
        )
        assert math.isclose(d.uncertainty, float(np.sort(frame_u[1:])[-1]), rel_tol=1e-6)  # 10% of 5: 1


def test_chosen_score_falls_back_to_sam_iou(labelled) -> None:
    store = PseudoLabelStore.open(labelled[0], "r")
    names = store.frame_table("synth-000").score_names
    assert chosen_score(store, "synth-000", names) == "sam_iou"
    assert chosen_score(store, "synth-000", [n for n in names if n != "sam_iou"]) != "sam_iou"


def test_a_correction_is_counted_and_not_ranked(labelled, tmp_path: Path) -> None:
    store_path = shutil.copytree(labelled[0], tmp_path / "c.zarr")
    store = PseudoLabelStore.open(store_path)
    before = digest_video(store, "synth-000")
    t = before.worst_frames[0]
    mask = store.read_masks("synth-000", t)[0]
    store.replace_masks([MaskUpdate("synth-000", t, 1, mask, MaskSource.HUMAN, Status.CORRECTED)])
    after = digest_video(store, "synth-000")
    assert after.corrected == 1 and after.conditioning == before.conditioning + 1
    assert t not in after.worst_frames  # a human's mask is not doubtful


def test_video_page_has_timeline_strip_and_reasons_under_the_cap(labelled) -> None:
    store_path, dataset = labelled
    report = build_report(store_path, dataset=dataset)
    assert report.jf is not None and report.jf_baseline is not None and report.jf_videos == 3
    for video in VIDEOS:
        d = report.digest(video)
        assert d.jf is not None and d.jf_baseline is not None
        page = video_markdown(report, video)
        assert len(page.encode()) < MAX_PAGE_BYTES
        assert re.search(r"!\[timeline of [^]]+\]\(data:image/png;base64,", page)
        assert re.search(r"!\[worst frames of [^]]+\]\(data:image/jpeg;base64,", page)
        assert d.plan[0].reason and d.plan[0].reason.split(" (")[0] in page
        assert "J&F" in page and "copying the first mask" in page
        assert f"uncertainty rank {report.rank(video)} of 3" in page


def test_missing_frames_leave_the_strip_out(labelled, tmp_path: Path) -> None:
    store_path, _ = labelled
    gone = DatasetConfig(name="moved", root=tmp_path / "nowhere", videos=VIDEOS)
    report = build_report(store_path, dataset=gone, max_pages=1)
    assert report.jf is None and report.jf_note.startswith("no J&F")
    page = video_markdown(report, report.paged[0])
    assert "data:image/png;base64," in page and "data:image/jpeg" not in page
    assert "frames unavailable" in page


def test_size_cap_pages_for_the_most_uncertain_rows_for_all(labelled, tmp_path: Path) -> None:
    store_path, _ = labelled
    report = build_report(store_path, max_pages=1, ground_truth=False)
    assert report.paged == (report.videos[0].video_id,)
    overview = run_markdown(report, {report.paged[0]: "run-video-x"}, every_video="run-summary")
    rows = [line for line in overview.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 1 and "run-video-x" in rows[0] and "2 less uncertain videos" in overview

    index = write_static_report(store_path, tmp_path / "out", max_pages=1, ground_truth=False)
    page = index.read_text()
    assert page.count("<tr><td>") == 3  # a row for every video
    pages = sorted(p.name for p in (tmp_path / "out" / "videos").glob("*.html"))
    assert pages == [f"{report.paged[0]}.html"]
    assert f'href="videos/{report.paged[0]}.html"' in page


def test_bad_arguments(labelled) -> None:
    with pytest.raises(VideoNotFoundError, match="expected videos of the store"):
        build_report(labelled[0], ["nope"])
    with pytest.raises(InputError, match="expected max_pages >= 0"):
        build_report(labelled[0], max_pages=-1)
    with pytest.raises(VideoNotFoundError):
        build_report(labelled[0], ground_truth=False).digest("nope")


def test_cli_writes_the_static_report(labelled, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["report", str(labelled[0]), "--out", str(tmp_path / "r"), "--max-videos", "2", "--no-jf"]
    )
    assert result.exit_code == 0, result.output
    index = tmp_path / "r" / "index.html"
    assert str(index) in result.output.replace("\n", "")
    assert len(list((tmp_path / "r" / "videos").glob("*.html"))) == 2
    for image in (tmp_path / "r" / "videos").glob("*.png"):
        with Image.open(image) as png:
            assert png.size[0] <= 800 and image.stat().st_size < 100_000
    bad = runner.invoke(app, ["report", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "expected a usam-video Zarr store" in bad.output


@pytest.mark.browser
@pytest.mark.slow
def test_static_report_renders_in_chromium(labelled, tmp_path: Path) -> None:
    from tests.service.test_dashboard_browser import _visible_text, render

    store_path, dataset = labelled
    index = write_static_report(store_path, tmp_path / "report", dataset)
    profile = tmp_path / "chromium-profile"
    report = build_report(store_path, ground_truth=False)
    worst = report.videos[0]
    dom = render(index.as_uri(), [*VIDEOS, "copy-first-mask"], profile, ARTIFACTS_DIR / "index.png")
    text = html.unescape(_visible_text(dom))
    for item in [*VIDEOS, "uncertainty", "worst frames", "why", "J&F copy-first-mask"]:
        assert item in text, f"{item!r} not on the rendered index: {text[:2000]}"
    assert text.index(worst.video_id) < min(text.index(v) for v in VIDEOS if v != worst.video_id)

    page = index.parent / "videos" / f"{worst.video_id}.html"
    dom = render(page.as_uri(), [worst.video_id, "Review plan"], profile, ARTIFACTS_DIR / "video.png")
    text = html.unescape(_visible_text(dom))
    assert "Fix first: frame" in text and worst.plan[0].reason.split(" (")[0] in text
    sources = re.findall(r'<img src="([^"]+)"', dom)
    assert sources == [f"{worst.video_id}-timeline.png", f"{worst.video_id}-worst.jpg"]
    assert all((page.parent / s).stat().st_size > 5_000 for s in sources)
    for name in ("index.png", "video.png"):
        assert (ARTIFACTS_DIR / name).stat().st_size > 10_000  # a real picture, not an empty page
